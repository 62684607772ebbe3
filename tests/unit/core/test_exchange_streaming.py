"""Streamed responses through the exchange, without gRPC.

The upstream bytes are fed as Envoy would in STREAMED mode, split at
arbitrary points; the client must get the same events whatever the split.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.config.runtime import RouteTable, Runtime
from extproc.core.events import (
    CONTINUE,
    BodyMode,
    Continue,
    Decision,
    Reject,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, ExchangeRecord, Phase
from extproc.streaming.sse import SSEDecoder
from support import provider_routes, request_headers, send_request
from support import runtime as compile_runtime

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers"

CONFIG = (
    """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen], default_model: qwen-turbo}
- {name: claude, type: claude, api_tokens: [sk-ant], default_model: claude-sonnet-4}
- {name: gemini, type: gemini, api_tokens: [g-key], default_model: gemini-2.0-flash}
- {name: ollama, type: ollama, base_url: "http://ollama.internal:11434", default_model: llama3.2}
routes:
"""
    + provider_routes("qwen", "claude", "gemini", "ollama")
    + """
- {name: r-native, match: {hosts: [native.test]}, provider: ollama, client_api: ollama}
"""
)

CHAT = {"messages": [{"role": "user", "content": "Hello?"}], "stream": True}


def runtime(extra: str = "") -> Runtime:
    return compile_runtime(CONFIG + extra)


async def start(
    ex: Exchange, host: str, body: dict[str, Any], path: str = "/v1/chat/completions"
) -> Decision:
    h = request_headers(host, path, authorization="Bearer client")
    d = await send_request(ex, h, body)
    assert isinstance(d, Continue), d
    return d


async def stream_headers(ex: Exchange, ctype: str = "text/event-stream") -> Continue:
    d = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": ctype, "content-length": "999"}, False)
    )
    assert isinstance(d, Continue)
    assert d.mode is not None and d.mode.response_body is BodyMode.STREAMED
    assert "content-length" in d.remove_headers  # the translated body has another length
    return d


def pieces(data: bytes, seed: int | None) -> list[bytes]:
    if seed is None:
        return [data]
    rng = random.Random(seed)
    out, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, 40)
        out.append(data[pos : pos + step])
        pos += step
    return out


async def feed(
    ex: Exchange, chunks: list[bytes], empty_end: bool = False
) -> tuple[bytes, Decision]:
    """Feed the chunks (the last with end_of_stream); return what the client got."""
    got = bytearray()
    last: Decision = CONTINUE
    if empty_end:
        chunks = [*chunks, b""]
    for i, c in enumerate(chunks):
        end = i == len(chunks) - 1
        last = await ex.handle(ResponseBody(c, end))
        assert isinstance(last, Continue), last
        if not end:
            assert last.metadata is None
        got += c if last.body is None else last.body
    return bytes(got), last


def events(body: bytes) -> list[Any]:
    out: list[Any] = []
    for ev in SSEDecoder().feed(body):
        out.append("[DONE]" if ev.data == "[DONE]" else orjson.loads(ev.data))
    return out


def text_of(evs: list[Any]) -> str:
    return "".join(
        c["delta"].get("content") or ""
        for e in evs
        if isinstance(e, dict)
        for c in e.get("choices", ())
    )


def usage_chunks(evs: list[Any]) -> list[Any]:
    return [e for e in evs if isinstance(e, dict) and e.get("usage") and not e.get("choices")]


def meta(d: Decision) -> dict[str, Any]:
    assert isinstance(d, Continue) and d.metadata is not None
    return dict(d.metadata["llm_extproc"])


# ---------------------------------------------------------------- OpenAI-compatible


def openai_stream(with_usage: bool) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": "qwen-turbo-2025",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": None,
        }
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": w}) for w in ("Héllo", " 世界", "!")]
    parts.append(chunk({}, "stop"))
    if with_usage:
        usage = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
        obj = {"id": "c1", "object": "chat.completion.chunk", "model": "qwen-turbo-2025"}
        parts.append(b"data: " + orjson.dumps({**obj, "choices": [], "usage": usage}) + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


async def test_openai_request_asks_upstream_for_usage() -> None:
    ex = Exchange(runtime())
    d = await start(ex, "qwen.test", CHAT)
    body = orjson.loads(d.body or b"")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("seed", [None, 1, 2, 3, 4, 5])
async def test_openai_client_asked_usage_gets_bytes_unchanged(seed: int | None) -> None:
    ex = Exchange(runtime())
    await start(ex, "qwen.test", {**CHAT, "stream_options": {"include_usage": True}})
    await stream_headers(ex)
    up = openai_stream(with_usage=True)
    got, last = await feed(ex, pieces(up, seed))
    assert got == up
    m = meta(last)
    assert (m["input_tokens"], m["output_tokens"], m["total_tokens"]) == (9, 4, 13)
    assert m["model_served"] == "qwen-turbo-2025"


@pytest.mark.parametrize("seed", [None, 11, 12, 13, 14, 15, 16, 17])
async def test_openai_usage_chunk_hidden_when_client_did_not_ask(seed: int | None) -> None:
    records: list[ExchangeRecord] = []
    ex = Exchange(runtime(), on_done=records.append)
    await start(ex, "qwen.test", CHAT)
    await stream_headers(ex)
    got, last = await feed(ex, pieces(openai_stream(with_usage=True), seed))
    evs = events(got)
    assert usage_chunks(evs) == []  # the client did not ask for it
    assert text_of(evs) == "Héllo 世界!"
    assert evs[-1] == "[DONE]"
    assert meta(last)["total_tokens"] == 13  # but the gateway metered it
    assert records[0].usage is not None and records[0].usage.total_tokens == 13


async def test_openai_every_two_way_split() -> None:
    up = openai_stream(with_usage=True)
    rt = runtime()
    want: bytes | None = None
    for i in range(1, len(up)):
        ex = Exchange(rt)
        await start(ex, "qwen.test", CHAT)
        await stream_headers(ex)
        got, last = await feed(ex, [up[:i], up[i:]])
        want = want if want is not None else got
        assert got == want, i
        assert meta(last)["total_tokens"] == 13


async def test_openai_stream_ends_with_empty_chunk() -> None:
    ex = Exchange(runtime())
    await start(ex, "qwen.test", CHAT)
    await stream_headers(ex)
    got, last = await feed(ex, pieces(openai_stream(True), 3), empty_end=True)
    assert events(got)[-1] == "[DONE]" and meta(last)["total_tokens"] == 13
    assert ex.phase is Phase.DONE


# ---------------------------------------------------------------- Claude


@pytest.mark.parametrize("seed", [None, 21, 22, 23, 24])
@pytest.mark.parametrize("include_usage", [False, True])
async def test_claude_stream_translated(seed: int | None, include_usage: bool) -> None:
    ex = Exchange(runtime())
    body = {**CHAT, "stream_options": {"include_usage": True}} if include_usage else CHAT
    d = await start(ex, "claude.test", body)
    assert orjson.loads(d.body or b"")["stream"] is True  # type: ignore[union-attr]
    hd = await stream_headers(ex)
    assert dict(hd.set_headers)["content-type"] == "text/event-stream"
    up = (FIXTURES / "claude" / "stream.sse").read_bytes()
    got, last = await feed(ex, pieces(up, seed))
    evs = events(got)
    assert evs[-1] == "[DONE]"
    assert all(e["object"] == "chat.completion.chunk" for e in evs[:-1])
    assert text_of(evs) == "Héllo 世界!"
    assert evs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(usage_chunks(evs)) == (1 if include_usage else 0)
    m = meta(last)
    # input 25 + 10 cache reads, output 15 (message_delta's cumulative count)
    assert (m["input_tokens"], m["output_tokens"]) == (35, 15)
    assert m["model_served"] == "claude-sonnet-4-20250514"


async def test_claude_stream_every_two_way_split() -> None:
    up = (FIXTURES / "claude" / "stream.sse").read_bytes()
    rt = runtime()
    for i in range(1, len(up), 7):
        ex = Exchange(rt)
        await start(ex, "claude.test", CHAT)
        await stream_headers(ex)
        got, _ = await feed(ex, [up[:i], up[i:]])
        evs = events(got)
        assert text_of(evs) == "Héllo 世界!" and evs[-1] == "[DONE]", i


# ---------------------------------------------------------------- Gemini


@pytest.mark.parametrize("seed", [None, 31, 32, 33])
async def test_gemini_stream_translated(seed: int | None) -> None:
    ex = Exchange(runtime())
    d = await start(ex, "gemini.test", CHAT)
    assert dict(d.set_headers)[":path"].endswith(":streamGenerateContent?alt=sse")
    await stream_headers(ex)
    up = (FIXTURES / "gemini" / "stream.sse").read_bytes()
    got, last = await feed(ex, pieces(up, seed))
    evs = events(got)
    assert evs[-1] == "[DONE]"
    assert text_of(evs) == "Héllo 世界!"
    assert evs[-2]["choices"][0]["finish_reason"] == "stop"
    m = meta(last)
    assert (m["input_tokens"], m["output_tokens"], m["total_tokens"]) == (4, 3, 7)
    assert m["model_served"] == "gemini-2.0-flash-001"


# ---------------------------------------------------------------- Ollama


@pytest.mark.parametrize("seed", [None, 41, 42, 43])
async def test_ollama_ndjson_to_openai_chunks(seed: int | None) -> None:
    ex = Exchange(runtime())
    d = await start(ex, "ollama.test", CHAT)
    assert orjson.loads(d.body or b"")["stream"] is True  # type: ignore[union-attr]
    hd = await stream_headers(ex, "application/x-ndjson")
    assert dict(hd.set_headers)["content-type"] == "text/event-stream"
    up = (FIXTURES / "ollama" / "stream.ndjson").read_bytes()
    got, last = await feed(ex, pieces(up, seed))
    evs = events(got)
    assert evs[-1] == "[DONE]"
    assert text_of(evs) == "Héllo 世界"
    assert evs[-2]["choices"][0]["finish_reason"] == "stop"
    m = meta(last)
    assert (m["input_tokens"], m["output_tokens"]) == (26, 282)


@pytest.mark.parametrize("seed", [None, 51, 52])
async def test_ollama_native_client_stream_passes_through(seed: int | None) -> None:
    ex = Exchange(runtime())
    sent = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}  # stream omitted
    d = await start(ex, "native.test", sent, path="/api/chat")
    h = dict(d.set_headers)
    assert h[":path"] == "/api/chat" and h[":authority"] == "ollama.internal:11434"
    assert d.body is None  # the client's bytes go on untouched
    assert ex.record.stream is True  # Ollama streams unless told not to
    hd = await stream_headers(ex, "application/x-ndjson")
    assert dict(hd.set_headers)["content-type"] == "application/x-ndjson"
    up = (FIXTURES / "ollama" / "stream.ndjson").read_bytes()
    got, last = await feed(ex, pieces(up, seed))
    assert got == up  # Ollama's own shape, byte for byte
    assert meta(last)["total_tokens"] == 26 + 282


async def test_ollama_native_client_non_stream() -> None:
    ex = Exchange(runtime())
    sent = {"model": "llama3.2", "prompt": "hi", "stream": False}
    await start(ex, "native.test", sent, path="/api/generate")
    hd = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "application/json"}, False)
    )
    assert hd.mode is not None and hd.mode.response_body is BodyMode.BUFFERED  # type: ignore[union-attr]
    up = b'{"model":"llama3.2","response":"yo","done":true,"prompt_eval_count":3,"eval_count":2}'
    d = await ex.handle(ResponseBody(up, True))
    assert isinstance(d, Continue) and d.body is None and meta(d)["total_tokens"] == 5


async def test_ollama_native_client_error_in_ollama_shape() -> None:
    ex = Exchange(runtime())
    await start(ex, "native.test", {"model": "nope", "messages": []}, path="/api/chat")
    await ex.handle(ResponseHeaders({":status": "404", "content-type": "application/json"}, False))
    up = b'{"error":"model \\"nope\\" not found"}'
    d = await ex.handle(ResponseBody(up, True))
    assert isinstance(d, Continue)
    assert orjson.loads(d.body if d.body is not None else up) == {"error": 'model "nope" not found'}


# ---------------------------------------------------------------- errors and limits


async def test_stream_request_with_upstream_error_is_buffered() -> None:
    ex = Exchange(runtime())
    await start(ex, "gemini.test", CHAT)
    hd = await ex.handle(
        ResponseHeaders({":status": "429", "content-type": "application/json"}, False)
    )
    assert hd.mode is not None and hd.mode.response_body is BodyMode.BUFFERED  # type: ignore[union-attr]
    err = b'{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}'
    d = await ex.handle(ResponseBody(err, True))
    out = orjson.loads(d.body or b"")  # type: ignore[union-attr]
    assert out["error"]["message"] == "Quota exceeded"
    assert out["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(
    ("host", "ctype", "line"),
    [
        ("qwen.test", "text/event-stream", b"data: " + b"x" * 100),
        ("claude.test", "text/event-stream", b"data: " + b"x" * 100),
        ("gemini.test", "text/event-stream", b"data: " + b"x" * 100),
        ("ollama.test", "application/x-ndjson", b'{"message":"' + b"x" * 100),
        ("native.test", "application/x-ndjson", b'{"message":"' + b"x" * 100),
    ],
)
async def test_endless_line_is_cut_at_configured_limit(
    host: str, ctype: str, line: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: limits.max_stream_line_bytes was not passed to the decoders."""
    records: list[ExchangeRecord] = []
    ex = Exchange(runtime("limits: {max_stream_line_bytes: 1024}\n"), on_done=records.append)
    path = "/api/chat" if host == "native.test" else "/v1/chat/completions"
    await start(ex, host, {"model": "m", **CHAT}, path=path)
    await stream_headers(ex, ctype)
    d: Decision = CONTINUE
    sent = 0
    with caplog.at_level("ERROR", logger="extproc.exchange"):
        for _ in range(100):  # 10 KiB of one line, in 100-byte chunks
            d = await ex.handle(ResponseBody(line if sent == 0 else b"y" * 100, False))
            sent += 100
            if isinstance(d, Reject):
                break
    assert isinstance(d, Reject), "the decoder never gave up on the line"
    assert sent <= 1024 + 200  # cut right after the limit, not at the old 1 MiB default
    assert d.status == 502 and d.reason == "stream_limit"
    assert ex.phase is Phase.DONE
    assert records and records[0].blocked_reason == "stream_limit" and records[0].upstream_error
    assert any("cut off" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


async def test_stream_usage_off_keeps_client_stream_options() -> None:
    rt = runtime()
    q = dataclasses.replace(rt.providers["qwen"], options={"include_usage": False})
    route = dataclasses.replace(rt.routes.routes[0], providers=(q,))
    rt = dataclasses.replace(rt, routes=RouteTable((route,)))
    ex = Exchange(rt)
    d = await start(ex, "qwen.test", CHAT)
    assert "stream_options" not in orjson.loads(d.body or b"")  # type: ignore[union-attr]
    await stream_headers(ex)
    up = openai_stream(with_usage=False)
    got, last = await feed(ex, pieces(up, 9))
    assert got == up  # nothing to hide: the bytes pass unchanged
    assert meta(last)["total_tokens"] == 0
