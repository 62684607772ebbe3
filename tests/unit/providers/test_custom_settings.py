from __future__ import annotations

from typing import Any

import pytest

from extproc.providers.custom_settings import (
    CustomSetting,
    ResolvedSetting,
    apply_resolved,
    resolve_custom_settings,
)
from extproc.translators.registry import spec_of

# A provider type per wire API; each module's spec says where auto settings go.
PROTOCOLS = ("openai", "azure", "claude", "gemini", "ollama")


def apply_custom_settings(
    body: dict[str, Any], provider_type: str, settings: list[CustomSetting]
) -> dict[str, Any]:
    return apply_resolved(
        body, resolve_custom_settings(spec_of(provider_type).settings_paths, settings)
    )


ALL_AUTO = [
    CustomSetting("max_tokens", 256),
    CustomSetting("temperature", 0.2),
    CustomSetting("top_p", 0.9),
    CustomSetting("top_k", 40),
    CustomSetting("seed", 7),
]

OPENAI_EXPECTED = {"model": "m", "max_tokens": 256, "temperature": 0.2, "top_p": 0.9, "seed": 7}


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("openai", OPENAI_EXPECTED),
        ("azure", OPENAI_EXPECTED),
        (
            "claude",
            {"model": "m", "max_tokens": 256, "temperature": 0.2, "top_p": 0.9, "top_k": 40},
        ),
        (
            "gemini",
            {
                "model": "m",
                "generationConfig": {
                    "maxOutputTokens": 256,
                    "temperature": 0.2,
                    "topP": 0.9,
                    "topK": 40,
                    "seed": 7,
                },
            },
        ),
        (
            "ollama",
            {
                "model": "m",
                "options": {
                    "num_predict": 256,
                    "temperature": 0.2,
                    "top_p": 0.9,
                    "top_k": 40,
                    "seed": 7,
                },
            },
        ),
    ],
)
def test_auto_mode_places_each_setting(protocol: str, expected: dict[str, Any]) -> None:
    assert apply_custom_settings({"model": "m"}, protocol, ALL_AUTO) == expected


# (protocol, client body, setting, expected body)
OVERWRITE_CASES: list[tuple[str, dict[str, Any], CustomSetting, dict[str, Any]]] = [
    # overwrite=True replaces the client's value
    ("openai", {"max_tokens": 10}, CustomSetting("max_tokens", 99), {"max_tokens": 99}),
    ("claude", {"top_k": 1}, CustomSetting("top_k", 5), {"top_k": 5}),
    (
        "gemini",
        {"generationConfig": {"topP": 0.1, "candidateCount": 1}},
        CustomSetting("top_p", 0.5),
        {"generationConfig": {"topP": 0.5, "candidateCount": 1}},
    ),
    (
        "ollama",
        {"options": {"seed": 1, "num_ctx": 4096}},
        CustomSetting("seed", 2),
        {"options": {"seed": 2, "num_ctx": 4096}},
    ),
    # overwrite=False keeps what the client sent ...
    (
        "openai",
        {"temperature": 1.0},
        CustomSetting("temperature", 0.0, overwrite=False),
        {"temperature": 1.0},
    ),
    (
        "openai",
        {"max_completion_tokens": 10},
        CustomSetting("max_tokens", 99, overwrite=False),
        {"max_completion_tokens": 10},
    ),
    (
        "claude",
        {"max_tokens": 10},
        CustomSetting("max_tokens", 99, overwrite=False),
        {"max_tokens": 10},
    ),
    (
        "gemini",
        {"generationConfig": {"maxOutputTokens": 10}},
        CustomSetting("max_tokens", 99, overwrite=False),
        {"generationConfig": {"maxOutputTokens": 10}},
    ),
    (
        "ollama",
        {"options": {"num_predict": 10}},
        CustomSetting("max_tokens", 99, overwrite=False),
        {"options": {"num_predict": 10}},
    ),
    # ... and a client null counts as sent
    (
        "openai",
        {"seed": None},
        CustomSetting("seed", 3, overwrite=False),
        {"seed": None},
    ),
    # ... but fills it in when absent
    (
        "gemini",
        {"generationConfig": {"topK": 3}},
        CustomSetting("max_tokens", 99, overwrite=False),
        {"generationConfig": {"topK": 3, "maxOutputTokens": 99}},
    ),
    (
        "ollama",
        {},
        CustomSetting("temperature", 0.3, overwrite=False),
        {"options": {"temperature": 0.3}},
    ),
    # a non-object where an object must go is replaced
    (
        "ollama",
        {"options": "bogus"},
        CustomSetting("top_k", 4),
        {"options": {"top_k": 4}},
    ),
]


@pytest.mark.parametrize(("protocol", "body", "setting", "expected"), OVERWRITE_CASES)
def test_overwrite_semantics(
    protocol: str, body: dict[str, Any], setting: CustomSetting, expected: dict[str, Any]
) -> None:
    assert apply_custom_settings(body, protocol, [setting]) == expected


@pytest.mark.parametrize(
    ("protocol", "name"),
    [
        ("openai", "top_k"),
        ("azure", "top_k"),
        ("claude", "seed"),
        ("openai", "frequency_penalty"),  # not an auto setting at all
        ("gemini", "stop"),
    ],
)
def test_auto_mode_skips_settings_without_a_place(protocol: str, name: str) -> None:
    assert apply_custom_settings({"model": "m"}, protocol, [CustomSetting(name, 1)]) == {
        "model": "m"
    }


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_raw_mode_sets_top_level_key_as_given(protocol: str) -> None:
    settings = [
        CustomSetting("top_k", 5, mode="raw"),
        CustomSetting("enable_search", True, mode="raw"),
        CustomSetting("generationConfig.x", 1, mode="raw"),
    ]
    body = apply_custom_settings({"top_k": 1}, protocol, settings)
    assert body == {"top_k": 5, "enable_search": True, "generationConfig.x": 1}


def test_raw_mode_respects_overwrite_false() -> None:
    body = apply_custom_settings(
        {"stream": True}, "openai", [CustomSetting("stream", False, mode="raw", overwrite=False)]
    )
    assert body == {"stream": True}


def test_settings_apply_in_order_later_wins() -> None:
    settings = [CustomSetting("temperature", 0.1), CustomSetting("temperature", 0.7)]
    assert apply_custom_settings({}, "claude", settings) == {"temperature": 0.7}


def test_body_is_updated_in_place_and_values_are_copied() -> None:
    value = {"a": [1, 2]}
    resolved = resolve_custom_settings(
        spec_of("openai").settings_paths, [CustomSetting("metadata", value, mode="raw")]
    )
    first: dict[str, Any] = {}
    assert apply_resolved(first, resolved) is first
    first["metadata"]["a"].append(3)
    second = apply_resolved({}, resolved)
    assert second == {"metadata": {"a": [1, 2]}}
    assert value == {"a": [1, 2]}


def test_resolve_is_per_protocol() -> None:
    resolved = resolve_custom_settings(spec_of("gemini").settings_paths, ALL_AUTO[:1])
    assert resolved == (ResolvedSetting(("generationConfig", "maxOutputTokens"), 256, True),)
    resolved = resolve_custom_settings(spec_of("openai").settings_paths, ALL_AUTO[:1])
    assert resolved == (ResolvedSetting(("max_tokens",), 256, True, (("max_completion_tokens",),)),)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "value": 1}, "empty name"),
        ({"name": "x", "value": 1, "mode": "magic"}, "mode must be"),
    ],
)
def test_invalid_setting(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CustomSetting(**kwargs)


def test_defaults_match_higress() -> None:
    setting = CustomSetting("max_tokens", 1)
    assert setting.mode == "auto"
    assert setting.overwrite is True
