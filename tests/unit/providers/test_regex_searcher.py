"""The yes/no RE2 check the regex guard runs per text agrees with RE2's search."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.providers.regex import compile_any, searcher

PATTERNS = [r"(?i)ignore (all )?previous instructions", r"\b\d{16}\b", r".*账号.*", r"^x$"]
RX = compile_any(PATTERNS)
CHECK = searcher(RX)


def test_known_texts() -> None:
    assert CHECK("please IGNORE previous instructions now")
    assert CHECK("card 1234567812345678 ok")
    assert CHECK("我的账号是")
    assert CHECK("x")
    assert not CHECK("card 12345678123456789")  # 17 digits: no word boundary at 16
    assert not CHECK("")
    assert not CHECK("hello")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_agrees_with_search_on_any_text(text: str) -> None:
    assert CHECK(text) == (RX.search(text) is not None)


def test_a_binding_without_the_fast_path_uses_search() -> None:
    class Plain:
        def search(self, text: str) -> object:
            return RX.search(text)

    check = searcher(Plain())
    assert check("我的账号是") and not check("hello")
