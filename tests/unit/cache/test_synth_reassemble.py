"""Streams from cached answers and answers from streams, per client API.

Round trips: a non-stream answer synthesised into a stream and reassembled is
the same answer; recorded provider streams (tests/fixtures/providers), split
anywhere, reassemble into the answer they spell; broken streams give None.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.cache.reassemble import reassembler_for
from extproc.cache.synth import CannotSynthesise, synthesise
from extproc.streaming.ndjson import NDJSONDecoder
from extproc.streaming.sse import SSEDecoder
from extproc.usage import Usage

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "providers"

OPENAI = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
            "logprobs": None,
        },
        {
            "index": 1,
            "message": {"role": "assistant", "content": "Héllo 世界\nline two"},
            "finish_reason": "stop",
            "logprobs": None,
        },
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
}

ANTHROPIC = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Héllo 世界"},
        {"type": "tool_use", "id": "tu_1", "name": "f", "input": {"a": [1, 2]}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 7},
}

OLLAMA_CHAT = {
    "model": "llama3.2",
    "created_at": "2024-01-01T00:00:00Z",
    "message": {"role": "assistant", "content": "Héllo"},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 26,
    "eval_count": 5,
}

OLLAMA_GENERATE = {
    "model": "llama3.2",
    "created_at": "2024-01-01T00:00:00Z",
    "response": "The sky is blue.",
    "done": True,
    "done_reason": "stop",
    "context": [1, 2, 3],
    "prompt_eval_count": 8,
    "eval_count": 5,
}


def split_feed(api: str, endpoint: str, data: bytes, seed: int, usage: Usage | None = None) -> Any:
    r = reassembler_for(endpoint, 1 << 20)
    assert r is not None
    rnd = random.Random(seed)
    i = 0
    while i < len(data):
        n = rnd.randint(1, 40)
        r.feed(data[i : i + n])
        i += n
    out = r.result(usage)
    return None if out is None else orjson.loads(out)


@pytest.mark.parametrize("seed", range(5))
def test_openai_round_trip(seed: int) -> None:
    stream, ctype = synthesise("chat", orjson.dumps(OPENAI), include_usage=True)
    assert ctype == "text/event-stream"
    events = SSEDecoder().feed(stream)
    assert events[-1].data == "[DONE]"
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["usage"] == OPENAI["usage"] and chunks[-1]["choices"] == []
    assert split_feed("openai", "chat", stream, seed) == OPENAI


def test_openai_usage_chunk_only_when_asked() -> None:
    stream, _ = synthesise("chat", orjson.dumps(OPENAI), include_usage=False)
    assert b'"usage"' not in stream
    # Reassembled without a usage chunk: the usage the leg read fills it in.
    back = split_feed("openai", "chat", stream, 0, Usage(9, 4, 13))
    assert back["usage"] == OPENAI["usage"]


@pytest.mark.parametrize("seed", range(5))
def test_anthropic_round_trip(seed: int) -> None:
    stream, ctype = synthesise("anthropic_messages", orjson.dumps(ANTHROPIC), False)
    assert ctype == "text/event-stream"
    events = SSEDecoder().feed(stream)
    names = [e.event for e in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert all(orjson.loads(e.data)["type"] == e.event for e in events)
    start = orjson.loads(events[0].data)["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert split_feed("anthropic", "anthropic_messages", stream, seed) == ANTHROPIC


@pytest.mark.parametrize(
    ("endpoint", "final"), [("ollama_chat", OLLAMA_CHAT), ("ollama_generate", OLLAMA_GENERATE)]
)
def test_ollama_round_trip(endpoint: str, final: dict[str, Any]) -> None:
    stream, ctype = synthesise(endpoint, orjson.dumps(final), False)
    assert ctype == "application/x-ndjson"
    lines = NDJSONDecoder().feed(stream)
    assert [ln["done"] for ln in lines] == [False, True]
    assert split_feed("ollama", endpoint, stream, 3) == final


@pytest.mark.parametrize("seed", range(3))
def test_recorded_provider_streams(seed: int) -> None:
    got = split_feed("openai", "chat", (FIX / "openai/stream.sse").read_bytes(), seed)
    assert got["choices"][0]["message"]["content"] == "Héllo 世界"
    assert got["choices"][0]["finish_reason"] == "stop"
    assert got["usage"]["total_tokens"] == 13
    assert got["model"] == "gpt-4o-mini-2024-07-18"
    msg = split_feed(
        "anthropic", "anthropic_messages", (FIX / "claude/stream.sse").read_bytes(), seed
    )
    assert msg["type"] == "message" and msg["stop_reason"]
    assert msg["content"] and all("type" in b for b in msg["content"])
    final = split_feed("ollama", "ollama_chat", (FIX / "ollama/stream.ndjson").read_bytes(), seed)
    assert final["message"]["content"] == "Héllo 世界" and final["eval_count"] == 282


def test_broken_streams_are_not_cached() -> None:
    assert (
        split_feed(
            "anthropic", "anthropic_messages", (FIX / "claude/stream_error.sse").read_bytes(), 0
        )
        is None
    )
    openai = (FIX / "openai/stream.sse").read_bytes()
    assert split_feed("openai", "chat", openai.replace(b"data: [DONE]\n\n", b""), 0) is None
    cut = openai[: openai.index(b'"finish_reason":"stop"')]
    assert split_feed("openai", "chat", cut, 0) is None
    err = openai.replace(b"data: [DONE]", b'data: {"error": {"message": "x"}}\n\ndata: [DONE]')
    assert split_feed("openai", "chat", err, 0) is None
    ndjson = (FIX / "ollama/stream.ndjson").read_bytes()
    assert split_feed("ollama", "ollama_chat", ndjson.rsplit(b"\n", 2)[0] + b"\n", 0) is None
    assert split_feed("ollama", "ollama_chat", b'{"error": "boom"}\n', 0) is None
    assert split_feed("openai", "chat", b"data: not json\n\n", 0) is None


def test_oversized_stream_stops_collecting() -> None:
    r = reassembler_for("chat", 10)
    assert r is not None
    r.feed(b"x" * (200 << 10))
    assert r.failed and r.result() is None


def test_unknown_shapes() -> None:
    assert reassembler_for("embeddings", 10) is None
    with pytest.raises(CannotSynthesise):
        synthesise("chat", b"[1]", False)
    with pytest.raises(CannotSynthesise):
        synthesise("anthropic_count_tokens", b"{}", False)
    with pytest.raises(CannotSynthesise):  # embeddings never stream
        synthesise("embeddings", b'{"data": []}', False)


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=60, deadline=None)
@given(content=texts, args=texts, seed=st.integers(0, 1000))
def test_openai_round_trip_any_text(content: str, args: str, seed: int) -> None:
    resp = {
        **OPENAI,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content or None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": args},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
    }
    stream, _ = synthesise("chat", orjson.dumps(resp), True)
    assert split_feed("openai", "chat", stream, seed) == resp


@settings(max_examples=60, deadline=None)
@given(text=texts, thinking=texts, seed=st.integers(0, 1000))
def test_anthropic_and_ollama_round_trip_any_text(text: str, thinking: str, seed: int) -> None:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if thinking:
        blocks.insert(0, {"type": "thinking", "thinking": thinking, "signature": "s"})
    msg = {**ANTHROPIC, "content": blocks, "stop_reason": "end_turn"}
    stream, _ = synthesise("anthropic_messages", orjson.dumps(msg), False)
    assert split_feed("anthropic", "anthropic_messages", stream, seed) == msg
    final = {**OLLAMA_CHAT, "message": {"role": "assistant", "content": text}}
    stream, _ = synthesise("ollama_chat", orjson.dumps(final), False)
    assert split_feed("ollama", "ollama_chat", stream, seed) == final


RESPONSES = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1700000000,
    "status": "completed",
    "model": "gpt-4o-mini",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Héllo 世界", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "f",
            "arguments": '{"a":1}',
            "status": "completed",
        },
    ],
    "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
}


@pytest.mark.parametrize("seed", range(3))
def test_responses_round_trip(seed: int) -> None:
    stream, ctype = synthesise("responses", orjson.dumps(RESPONSES), False)
    assert ctype == "text/event-stream"
    events = SSEDecoder().feed(stream)
    kinds = [e.event for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert "response.function_call_arguments.delta" in kinds
    seqs = [orjson.loads(e.data)["sequence_number"] for e in events]
    assert seqs == list(range(len(events)))
    assert split_feed("responses", "responses", stream, seed) == RESPONSES


def test_responses_failed_or_incomplete_not_cached() -> None:
    stream, _ = synthesise("responses", orjson.dumps(RESPONSES), False)
    for bad in (b"response.failed", b"response.incomplete"):
        cut = stream.replace(b"response.completed", bad)
        assert split_feed("responses", "responses", cut, 0) is None
    assert split_feed("responses", "responses", stream.rsplit(b"event:", 1)[0], 0) is None


def test_responses_stream_reads_in_the_official_sdk() -> None:
    """The Responses API has no e2e here yet: the openai SDK reads the
    synthesised stream (served by an httpx transport) into the same response."""
    stream, ctype = synthesise("responses", orjson.dumps(RESPONSES), False)

    def serve(_req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=stream, headers={"content-type": ctype})

    client = openai.OpenAI(
        api_key="k",
        base_url="http://gateway.test/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(serve)),
        max_retries=0,
    )
    with client.responses.stream(model="gpt-4o-mini", input="hi") as st:
        deltas = [e.delta for e in st if e.type == "response.output_text.delta"]
        final = st.get_final_response()
    assert "".join(deltas) == "Héllo 世界"
    assert final.output_text == "Héllo 世界"
    assert final.id == "resp_1" and final.usage is not None and final.usage.total_tokens == 8
