"""OpenAI chat completion -> Anthropic message, validated with the official SDK's types."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.types import Message

from extproc.translators.anthropic.response import (
    message_id,
    response_body,
    stop_reason,
    to_anthropic,
    tool_input,
    usage_dict,
)
from extproc.translators.base import TranslationError
from extproc.usage import Usage


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 7,
            "total_tokens": 37,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
        **extra,
    }


def test_text_answer() -> None:
    out = to_anthropic(completion({"role": "assistant", "content": "Hello"}), "fallback")
    msg = Message.model_validate(out)
    assert msg.id == "msg_chatcmpl-1"
    assert msg.model == "gpt-4o"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Hello"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    assert msg.stop_sequence is None
    # Anthropic's input_tokens excludes cache reads.
    assert msg.usage.input_tokens == 20
    assert msg.usage.cache_read_input_tokens == 10
    assert msg.usage.output_tokens == 7


def test_tool_calls_become_tool_use_blocks() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "think",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
        ],
    }
    out = to_anthropic(completion(message, "tool_calls"), "m")
    msg = Message.model_validate(out)
    assert msg.stop_reason == "tool_use"
    assert [b.type for b in msg.content] == ["thinking", "tool_use", "tool_use"]
    assert out["content"][1] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert out["content"][2]["input"] == {}


def test_model_falls_back_and_usage_may_be_missing() -> None:
    obj = {"choices": [{"message": {"content": "x"}, "finish_reason": "length"}]}
    out = to_anthropic(obj, "asked-model")
    msg = Message.model_validate(out)
    assert msg.model == "asked-model"
    assert msg.stop_reason == "max_tokens"
    assert msg.usage.input_tokens == 0
    assert msg.id.startswith("msg_")


def test_content_parts_answer_is_joined() -> None:
    obj = completion({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})
    assert to_anthropic(obj, "m")["content"] == [{"type": "text", "text": "ab"}]


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("weird", "end_turn"),
    ],
)
def test_stop_reason(finish: Any, reason: str) -> None:
    assert stop_reason(finish) == reason


def test_tool_input_is_always_an_object() -> None:
    assert tool_input('{"a": 1}') == {"a": 1}
    assert tool_input("[1]") == {}
    assert tool_input("{broken") == {}
    assert tool_input({"b": 2}) == {"b": 2}
    assert tool_input(None) == {}


def test_usage_dict_and_ids() -> None:
    assert usage_dict(Usage.of(5, 3, cached_tokens=2)) == {
        "input_tokens": 3,
        "output_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 2,
    }
    assert message_id("msg_x") == "msg_x"
    assert message_id("abc") == "msg_abc"


def test_response_body_bytes_and_bad_answers() -> None:
    raw = orjson.dumps(completion({"role": "assistant", "content": "hi"}))
    assert orjson.loads(response_body(raw, "m"))["content"] == [{"type": "text", "text": "hi"}]
    for bad in (b"<html>", b"[1]", b'{"object": "list"}'):
        with pytest.raises(TranslationError):
            response_body(bad, "m")
