from __future__ import annotations

import pytest

from extproc.providers.model_mapping import ModelMapper
from extproc.providers.regex import compile_re2

MAPPING: dict[str, str] = {
    "gpt-4o": "qwen-max",
    "gpt-4*": "qwen-plus",
    "gpt-4o-*": "qwen-vl-max",
    "gpt-3*": "qwen-turbo",
    "gpt-3.5*": "qwen-long",  # longer prefix than gpt-3*, declared later: still wins
    "keep-me": "",
    "keep-*": "",
    "~claude-(\\d)-(\\w+)": "anthropic/$2-$1",
    "~claude-.*": "never-reached-for-claude-3-x",
    "~(llama)-(.*)": "$1:$2",
    "~dollar-(.*)": "$$1-$1",
    "~empty-(.*)": "",
    "*": "qwen-default",
}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # exact beats everything
        ("gpt-4o", "qwen-max"),
        # prefix: longest wins
        ("gpt-4o-mini", "qwen-vl-max"),
        ("gpt-4-turbo", "qwen-plus"),
        ("gpt-4", "qwen-plus"),
        ("gpt-3.5-turbo", "qwen-long"),
        ("gpt-3-davinci", "qwen-turbo"),
        # empty target keeps the original
        ("keep-me", "keep-me"),
        ("keep-this-too", "keep-this-too"),
        ("empty-xyz", "empty-xyz"),
        # regex: first declared that fully matches, with groups
        ("claude-3-opus", "anthropic/opus-3"),
        ("claude-x", "never-reached-for-claude-3-x"),
        ("llama-3.1:8b", "llama:3.1:8b"),
        ("dollar-a", "$1-a"),
        # fallback
        ("mistral", "qwen-default"),
        ("", "qwen-default"),
    ],
)
def test_mapping_table(model: str, expected: str) -> None:
    mapper = ModelMapper(MAPPING)
    assert mapper.map(model) == expected
    assert mapper.map(model) == expected  # memoised answer is the same


def test_regex_is_full_match() -> None:
    mapper = ModelMapper({"~gpt": "x"})
    assert mapper.map("gpt") == "x"
    assert mapper.map("gpt-4") == "gpt-4"
    assert mapper.map("my-gpt") == "my-gpt"


def test_prefix_key_beats_earlier_declared_regex() -> None:
    mapper = ModelMapper({"~ab.*": "regex", "ab*": "prefix"})
    assert mapper.map("abc") == "prefix"


def test_prefix_beats_regex_and_regex_beats_fallback() -> None:
    mapper = ModelMapper({"*": "fb", "~q.*": "re", "qw*": "pre"})
    assert mapper.map("qwen") == "pre"
    assert mapper.map("qx") == "re"
    assert mapper.map("z") == "fb"


def test_no_match_without_fallback_keeps_model() -> None:
    assert ModelMapper({"a": "b"}).map("c") == "c"
    assert ModelMapper({}).map("c") == "c"


def test_empty_fallback_keeps_model() -> None:
    assert ModelMapper({"*": ""}).map("anything") == "anything"


def test_empty_prefix_matches_everything_before_regex() -> None:
    mapper = ModelMapper({"~.*": "re", "*": "fb"})
    assert mapper.map("x") == "re"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"~(?=lookahead)x": "y"}, "(?=lookahead)x"),
        ({"~(unclosed": "y"}, "(unclosed"),
        ({"~": "y"}, "empty regex"),
        ({"~a(b)": "$2"}, "refers to $2"),
        ({"gpt-*-mini": "y"}, "only allowed at the end"),
        ({"g*pt*": "y"}, "only allowed at the end"),
        ({"": "y"}, "empty key"),
    ],
)
def test_invalid_mappings_raise_value_error(mapping: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        ModelMapper(mapping)
    assert message in str(info.value)


def test_memo_is_bounded() -> None:
    mapper = ModelMapper({"~m-(\\d+)": "n-$1"})
    for i in range(10_000):
        assert mapper.map(f"m-{i}") == f"n-{i}"
    assert len(mapper._memo) <= 4096


def test_repr_has_counts_only() -> None:
    text = repr(ModelMapper({"a": "secret-model", "b*": "c", "~d": "e", "*": "f"}))
    assert "secret-model" not in text
    assert "exact=1" in text


def test_compile_re2_error_names_pattern() -> None:
    with pytest.raises(ValueError, match=r"where: RE2 cannot compile pattern '\(\?<!x\)y'"):
        compile_re2("(?<!x)y", "where")
