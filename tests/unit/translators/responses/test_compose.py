"""(Responses, X) = (Responses, chat) + (chat, X): on Claude and an OpenAI-compatible vendor."""

from __future__ import annotations

import orjson
from openai.types.responses import Response

from extproc.translators.base import ProviderTarget
from extproc.translators.registry import spec_of
from extproc.translators.responses.compose import ResponsesVia


def test_claude_request_and_answer() -> None:
    via = ResponsesVia(spec_of("claude").translator, openai_wire=False)
    target = ProviderTarget("claude", "api.anthropic.com", "", "k", "claude-x", False)
    up = via.chat_request(
        {
            "model": "any",
            "input": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            "reasoning": {"effort": "low"},
            "tools": [{"type": "web_search"}],
        },
        target,
    )
    assert up.path.endswith("/v1/messages") and up.payload is not None
    assert up.payload["system"] == "Be brief." and up.payload["model"] == "claude-x"
    assert "reasoning_effort" not in up.payload
    assert via.dropped == ("web_search",)
    answer = orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [{"type": "text", "text": "Hello"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 2},
        }
    )
    out = via.chat_response(200, answer, target)
    r = Response.model_validate(orjson.loads(out.body))
    assert r.output_text == "Hello" and out.usage is not None and out.usage.total_tokens == 5


def test_claude_stream() -> None:
    via = ResponsesVia(spec_of("claude").translator, openai_wire=False)
    target = ProviderTarget("claude", "api.anthropic.com", "", "k", "claude-x", True)
    via.chat_body({"input": "Hi", "stream": True})
    st = via.chat_stream(target)
    frames = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "m",
                    "model": "claude-x",
                    "usage": {"input_tokens": 3, "output_tokens": 0},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi!"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 2},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    raw = b"".join(
        b"event: " + k.encode() + b"\ndata: " + orjson.dumps(v) + b"\n\n" for k, v in frames
    )
    out = st.feed(raw) + st.finish()
    assert b"response.output_text.delta" in out and b"response.completed" in out
    assert st.usage is not None and st.usage.total_tokens == 5


def test_openai_compatible_keeps_effort_and_asks_for_usage() -> None:
    via = ResponsesVia(spec_of("qwen").translator)
    target = ProviderTarget("qwen", "dashscope", "/compatible-mode/v1", "k", "qwen-plus", True)
    up = via.chat_request({"input": "Hi", "stream": True, "reasoning": {"effort": "high"}}, target)
    assert up.path == "/compatible-mode/v1/chat/completions" and up.payload is not None
    assert up.payload["reasoning_effort"] == "high"
    assert up.payload["stream_options"] == {"include_usage": True}
