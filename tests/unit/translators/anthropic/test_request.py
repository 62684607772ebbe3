"""Anthropic Messages request -> OpenAI chat request."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.translators.anthropic.request import system_text, to_openai
from extproc.translators.base import TranslationError

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def test_full_request_maps_every_field() -> None:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4",
        "max_tokens": 512,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["END", "STOP"],
        "stream": True,
        "metadata": {"user_id": "u-42"},
        "tools": TOOLS,
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    assert to_openai(body) == {
        "model": "claude-sonnet-4",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 512,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END", "STOP"],
        "stream": True,
        "user": "u-42",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": TOOLS[0]["input_schema"],
                    "description": "Weather for a city",
                },
            }
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
    }


def test_tool_round_trip_conversation() -> None:
    body = {
        "model": "m",
        "max_tokens": 100,
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "20"}, {"type": "text", "text": "C"}],
                        "is_error": False,
                    },
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    }
    msgs = to_openai(body)["messages"]
    assert msgs == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "20C"},
        {"role": "user", "content": "And tomorrow?"},
    ]


def test_assistant_with_only_tool_use_has_null_content() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            },
        ]
    }
    assert to_openai(body)["messages"][1]["content"] is None


def test_images_become_image_url_parts() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}},
                ],
            }
        ]
    }
    assert to_openai(body)["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}},
    ]


def test_image_in_tool_result_follows_in_a_user_message() -> None:
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "B"}}
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "screenshot"}, img],
                    }
                ],
            }
        ]
    }
    assert to_openai(body)["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "screenshot"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,B"}}],
        },
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        ({"type": "none"}, "none"),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    out = to_openai(
        {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": choice}
    )
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_optional_fields_absent_stay_absent() -> None:
    out = to_openai({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert out == {"model": "m", "messages": [{"role": "user", "content": "x"}]}


def test_system_string_and_blocks() -> None:
    assert system_text("s") == "s"
    # Joined as the checks join text parts (extproc/content/texts.py).
    assert system_text([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "a\nb"
    assert system_text(None) == ""


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"messages": []}, "non-empty"),
        ({"messages": "hi"}, "non-empty"),
        ({"messages": [{"role": "system", "content": "x"}]}, "role 'system'"),
        ({"messages": [{"role": "user", "content": 3}]}, "string or a list"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "'document'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "'file'",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
            "tool_use_id",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "server tool",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "stop_sequences": "END"},
            "stop_sequences",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "system": 5}, "system"),
        (
            {"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "maybe"}},
            "tool_choice",
        ),
    ],
)
def test_untranslatable_requests_name_the_problem(body: dict[str, Any], match: str) -> None:
    with pytest.raises(TranslationError, match=match):
        to_openai(body)


def test_caller_body_is_not_mutated() -> None:
    body = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "tools": TOOLS,
    }
    before = orjson.dumps(body)
    to_openai(body)
    assert orjson.dumps(body) == before
