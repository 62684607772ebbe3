"""Upstream bodies of the wrong shape that crashed the translators (found by
tests/fuzz): each now translates to something, or raises TranslationError."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.translators.anthropic.compose import AnthropicVia
from extproc.translators.base import ProviderTarget, TranslationError
from extproc.translators.registry import spec_of


def get_translator(kind: str) -> Any:
    return spec_of(kind).translator


def target(kind: str) -> ProviderTarget:
    return ProviderTarget(kind, "up.test", "", "k", "m", True, {})


def j(o: Any) -> bytes:
    return orjson.dumps(o)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("claude", {"content": "text instead of blocks"}),
        ("claude", {"content": True}),
        ("claude", {"content": ["x", 5, {"type": "text", "text": "ok"}]}),
        ("gemini", {"candidates": True}),
        ("gemini", {"candidates": ["x", {"content": "y"}, {"content": {"parts": 7}}]}),
        ("gemini", {"candidates": [{"content": {"parts": [{"functionCall": "f"}]}}]}),
        ("gemini", {"candidates": [], "promptFeedback": "blocked"}),
        ("ollama", {"message": "hello", "done": True}),
        ("ollama", {"message": {"tool_calls": [{"function": "f"}, "x"]}, "done": True}),
    ],
)
def test_chat_response_of_the_wrong_shape(kind: str, body: dict[str, Any]) -> None:
    out = get_translator(kind).chat_response(200, j(body), target(kind))
    assert orjson.loads(out.body)["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("kind", "body", "vectors"),
    [
        ("gemini", {"embeddings": True}, []),
        ("gemini", {"embeddings": [None, {"values": 5}, {"values": [0.5]}]}, [[0.5]]),
        ("ollama", {"embeddings": True}, []),
        ("ollama", {"embeddings": [5, [0.5]]}, [[0.5]]),
    ],
)
def test_embeddings_response_of_the_wrong_shape(
    kind: str, body: dict[str, Any], vectors: list[Any]
) -> None:
    out = get_translator(kind).embeddings_response(200, j(body), target(kind))
    assert [d["embedding"] for d in orjson.loads(out.body)["data"]] == vectors


@pytest.mark.parametrize(
    ("kind", "events"),
    [
        (
            "claude",
            b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":"x"}\n\n'
            b'event: message_start\ndata: {"type":"message_start","message":[1]}\n\n'
            b'event: content_block_start\ndata: {"type":"content_block_start","content_block":5}\n\n'
            b'event: message_delta\ndata: {"type":"message_delta","delta":true}\n\n'
            b'event: error\ndata: {"type":"error","error":"boom"}\n\n',
        ),
        (
            "gemini",
            b'data: {"candidates":[true, {"content":"x"}]}\n\n'
            b'data: {"candidates":[],"promptFeedback":1.5}\n\n',
        ),
        ("ollama", b'{"message":"hi"}\n{"message":[1],"done":true}\n'),
    ],
)
def test_stream_events_of_the_wrong_shape(kind: str, events: bytes) -> None:
    tx = get_translator(kind).chat_stream(target(kind), True, 4096)
    out = tx.feed(events) + tx.finish()
    assert out.startswith(b"data: ")


@pytest.mark.parametrize("kind", ["claude", "gemini", "ollama"])
@pytest.mark.parametrize("calls", [{"id": "x"}, ["x"], [{"function": "f"}], [{"id": "1"}]])
def test_client_tool_calls_of_the_wrong_shape_are_a_translation_error(
    kind: str, calls: Any
) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": calls},
        ]
    }
    with pytest.raises(TranslationError, match=r"tool_calls|tool call"):
        get_translator(kind).chat_request(body, target(kind))


@pytest.mark.parametrize(
    "answer",
    [
        {"choices": [{"message": {"content": "hi", "tool_calls": True}}]},
        {"choices": [{"message": {"tool_calls": [{"function": "f"}, 5]}}]},
    ],
)
def test_anthropic_client_openai_answer_of_the_wrong_shape(answer: dict[str, Any]) -> None:
    via = AnthropicVia(get_translator("openai"))
    out = orjson.loads(via.chat_response(200, j(answer), target("openai")).body)
    assert out["type"] == "message"


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": 5},
        {"choices": [{"index": 0, "delta": {"tool_calls": 1}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [3, {"function": "f"}]}}]},
    ],
)
def test_anthropic_client_openai_stream_of_the_wrong_shape(chunk: dict[str, Any]) -> None:
    st = AnthropicVia(get_translator("openai")).chat_stream(target("openai"), 4096)
    out = st.feed(b"data: " + j(chunk) + b"\n\ndata: [DONE]\n\n") + st.finish()
    assert b"event: message_stop" in out


@pytest.mark.parametrize("kind", ["openai", "claude", "gemini", "ollama"])
def test_negative_token_counts_count_as_zero(kind: str) -> None:
    body = {
        "openai": {"choices": [], "usage": {"prompt_tokens": -5, "completion_tokens": -1}},
        "claude": {"content": [], "usage": {"input_tokens": -5, "output_tokens": -1}},
        "gemini": {
            "candidates": [],
            "usageMetadata": {"promptTokenCount": -5, "totalTokenCount": -9},
        },
        "ollama": {"message": {"content": ""}, "prompt_eval_count": -5, "eval_count": -1},
    }[kind]
    usage = get_translator(kind).chat_response(200, j(body), target(kind)).usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (0, 0, 0)
