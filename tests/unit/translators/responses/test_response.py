"""Chat completion -> Responses API response object, checked with the official SDK's model."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.responses import Response

from extproc.translators.base import TranslationError
from extproc.translators.responses.request import to_chat
from extproc.translators.responses.response import response_body

USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 7,
    "total_tokens": 27,
    "prompt_tokens_details": {"cached_tokens": 5},
    "completion_tokens_details": {"reasoning_tokens": 2},
}


def completion(message: dict[str, Any], finish: str = "stop") -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "qwen-plus",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": USAGE,
        }
    )


def translate(raw: bytes, body: dict[str, Any] | None = None) -> Response:
    req = to_chat(body or {"input": "x"})
    out = orjson.loads(response_body(raw, "fallback", req.names, req.echo))
    return Response.model_validate(out)  # the SDK's own model, validated


def test_text_answer() -> None:
    r = translate(
        completion({"role": "assistant", "content": "Hello"}),
        {"input": "x", "instructions": "Be brief.", "temperature": 0.5},
    )
    assert r.object == "response" and r.status == "completed"
    assert r.id == "resp_chatcmpl-9" and r.model == "qwen-plus" and r.created_at == 1700000000
    assert r.output_text == "Hello"
    assert r.instructions == "Be brief." and r.temperature == 0.5
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (20, 7, 27)
    assert r.usage.input_tokens_details.cached_tokens == 5
    assert r.usage.output_tokens_details.reasoning_tokens == 2


def test_function_calls_and_namespace_round_trip() -> None:
    body = {
        "input": "x",
        "tools": [
            {
                "type": "namespace",
                "name": "fs",
                "description": "files",
                "tools": [{"type": "function", "name": "read"}],
            },
            {"type": "function", "name": "shell"},
        ],
    }
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "fs__read", "arguments": "{}"}},
        {"id": "call_2", "type": "function", "function": {"name": "shell", "arguments": '{"a":1}'}},
    ]
    r = translate(
        completion({"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"), body
    )
    assert r.status == "completed"
    fc = [o for o in r.output if o.type == "function_call"]
    assert [(c.call_id, c.name, c.namespace, c.arguments) for c in fc] == [
        ("call_1", "read", "fs", "{}"),
        ("call_2", "shell", None, '{"a":1}'),
    ]
    assert all(c.id and c.id.startswith("fc_") for c in fc)


def test_length_is_incomplete_and_reasoning_is_an_item() -> None:
    r = translate(
        completion({"role": "assistant", "content": "Hel", "reasoning_content": "think"}, "length")
    )
    assert r.status == "incomplete"
    assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"
    assert [o.type for o in r.output] == ["reasoning", "message"]
    assert r.output_text == "Hel"


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'{"object": "chat.completion"}'])
def test_not_a_completion(raw: bytes) -> None:
    with pytest.raises(TranslationError):
        translate(raw)
