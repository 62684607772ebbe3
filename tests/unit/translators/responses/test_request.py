"""Responses API request -> OpenAI chat request."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.translators.base import TranslationError
from extproc.translators.responses.request import to_chat

CODEX_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "shell",
        "description": "Run a command",
        "strict": False,
        "parameters": {"type": "object", "properties": {"command": {"type": "array"}}},
    },
    {
        "type": "namespace",
        "name": "mcp_fs",
        "description": "files",
        "tools": [{"type": "function", "name": "read", "parameters": {"type": "object"}}],
    },
    {"type": "web_search", "external_web_access": False},
]


def test_string_input_and_instructions() -> None:
    out = to_chat({"model": "m", "instructions": "Be brief.", "input": "Hi", "stream": True})
    assert out.body == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "stream": True,
    }
    assert out.dropped == ()


def test_codex_request_shape() -> None:
    """Developer role, item ids, namespace and web_search tools, include,
    prompt_cache_key, client_metadata, store: the shape Codex sends."""
    body = {
        "model": "gpt-5-codex",
        "input": [
            {
                "type": "message",
                "id": "msg_1",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are Codex."}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ls"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xx"},
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "shell",
                "arguments": '{"command":["ls"]}',
            },
            {
                "type": "function_call",
                "call_id": "call_2",
                "namespace": "mcp_fs",
                "name": "read",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
            {
                "type": "function_call_output",
                "call_id": "call_2",
                "output": [{"type": "input_text", "text": "file body"}],
            },
        ],
        "tools": CODEX_TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "abc",
        "client_metadata": {"x": "y"},
        "service_tier": "auto",
        "truncation": "auto",
    }
    out = to_chat(body)
    msgs = out.body["messages"]
    assert msgs[0] == {"role": "system", "content": "You are Codex."}
    assert msgs[1] == {"role": "user", "content": "ls"}
    # Both calls of the turn in one assistant message, then the tool results.
    assert msgs[2]["role"] == "assistant" and msgs[2]["content"] is None
    assert [c["function"]["name"] for c in msgs[2]["tool_calls"]] == ["shell", "mcp_fs__read"]
    assert msgs[2]["tool_calls"][0]["id"] == "call_1"
    assert msgs[3] == {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"}
    assert msgs[4] == {"role": "tool", "tool_call_id": "call_2", "content": "file body"}
    assert len(msgs) == 5
    assert [t["function"]["name"] for t in out.body["tools"]] == ["shell", "mcp_fs__read"]
    assert out.names == {"mcp_fs__read": ("mcp_fs", "read")}
    assert out.dropped == ("web_search",)
    assert out.body["tool_choice"] == "auto"
    assert out.body["parallel_tool_calls"] is False
    assert out.body["reasoning_effort"] == "low"
    for gone in ("store", "include", "prompt_cache_key", "client_metadata", "service_tier"):
        assert gone not in out.body
    assert "truncation" not in out.body and "input" not in out.body


def test_settings_map() -> None:
    out = to_chat(
        {
            "input": "x",
            "max_output_tokens": 50,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u1",
            "metadata": {"k": "v"},
            "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}},
        }
    )
    b = out.body
    assert b["max_tokens"] == 50 and b["temperature"] == 0.2 and b["top_p"] == 0.9
    assert b["user"] == "u1" and b["metadata"] == {"k": "v"}
    assert b["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object"}},
    }
    assert to_chat({"input": "x", "text": {"format": {"type": "json_object"}}}).body[
        "response_format"
    ] == {"type": "json_object"}
    assert (
        "response_format" not in to_chat({"input": "x", "text": {"format": {"type": "text"}}}).body
    )


def test_assistant_text_then_call_is_one_turn_and_images_pass() -> None:
    out = to_chat(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAA"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            ]
        }
    )
    msgs = out.body["messages"]
    assert msgs[0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAA"},
    }
    assert msgs[1]["content"] == "Looking." and msgs[1]["tool_calls"][0]["id"] == "c"


def test_tool_choice_forms() -> None:
    tools = [{"type": "function", "name": "f"}]
    pick = to_chat({"input": "x", "tools": tools, "tool_choice": {"type": "function", "name": "f"}})
    assert pick.body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    ns = [
        {
            "type": "namespace",
            "name": "fs",
            "description": "d",
            "tools": [{"type": "function", "name": "read"}],
        }
    ]
    pick_ns = to_chat(
        {
            "input": "x",
            "tools": ns,
            "tool_choice": {"type": "function", "name": "read", "namespace": "fs"},
        }
    )
    assert pick_ns.body["tool_choice"] == {"type": "function", "function": {"name": "fs__read"}}
    # Only hosted tools: nothing left to choose from, no tools sent.
    hosted = to_chat({"input": "x", "tools": [{"type": "web_search"}], "tool_choice": "required"})
    assert "tools" not in hosted.body and "tool_choice" not in hosted.body


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": "x", "background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
        ({"input": [{"type": "computer_call_output"}]}, "'computer_call_output'"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input_file",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "image_url",
        ),
        ({"input": [{"role": "tool", "content": "x"}]}, "role"),
        ({"input": 3}, "input must be"),
        ({"input": []}, "empty"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "call_id"),
    ],
)
def test_untranslatable_requests_name_the_field(body: dict[str, Any], words: str) -> None:
    with pytest.raises(TranslationError, match=words.replace("(", r"\(")):
        to_chat(body)
