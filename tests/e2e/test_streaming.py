"""Streaming through the real Envoy: chunks reach the client as the upstream
drips them, in order, translated, with usage metered at the end."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from extproc.streaming.sse import SSEDecoder
from fake_provider import Scripted
from harness import Stack
from support import provider_routes

pytestmark = pytest.mark.e2e

DRIP = 0.3  # seconds between the fake's stream chunks

CONFIG = (
    """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen-stream], default_model: qwen-turbo}
- {name: claude, type: claude, api_tokens: [sk-ant-stream], default_model: claude-sonnet-4}
- {name: gemini, type: gemini, api_tokens: [g-key-stream], default_model: gemini-2.0-flash}
- {name: ollama, type: ollama, base_url: "http://ollama.fake:11434", default_model: llama3.2}
- {name: hostile, type: generic, host: hostile.fake, base_path: /v1, api_tokens: [sk-h]}
routes:
"""
    + provider_routes("qwen", "claude", "gemini", "ollama")
    + """
- {name: r-native, match: {hosts: [native.test]}, provider: ollama, client_api: ollama}
"""
    + provider_routes("hostile")
    + """
limits: {max_stream_line_bytes: 65536}
"""
)

KEYS = {"openai": "sk-qwen-stream", "claude": "sk-ant-stream", "gemini": "g-key-stream"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("streaming"), CONFIG, fake_keys=KEYS, drip_s=DRIP) as s:
        yield s


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    stack.fake.take()
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        yield c


@dataclass
class Arrival:
    at: float  # seconds since the request was sent
    data: Any  # parsed JSON, or "[DONE]"


@dataclass
class Streamed:
    status: int
    headers: httpx.Headers
    arrivals: list[Arrival]
    raw: bytes
    total: float


def stream_sse(c: httpx.Client, host: str, body: dict[str, Any], path: str) -> Streamed:
    dec = SSEDecoder()
    arrivals: list[Arrival] = []
    raw = bytearray()
    t0 = time.monotonic()
    with c.stream("POST", path, headers={"host": host}, json=body) as r:
        for chunk in r.iter_raw():
            now = time.monotonic() - t0
            raw += chunk
            for ev in dec.feed(chunk):
                data = "[DONE]" if ev.data == "[DONE]" else json.loads(ev.data)
                arrivals.append(Arrival(now, data))
        return Streamed(r.status_code, r.headers, arrivals, bytes(raw), time.monotonic() - t0)


def check_timing(s: Streamed, upstream_parts: int) -> None:
    """The first chunk came right away, the rest followed the drip schedule."""
    schedule = DRIP * (upstream_parts - 1)  # the fake's time from first to last part
    first, last = s.arrivals[0].at, s.arrivals[-1].at
    # Streamed, not buffered: the first chunk long before the upstream finished ...
    assert first < schedule / 3, (first, schedule)
    # ... and the stream took about as long as the fake dripped it.
    assert last - first >= schedule * 0.8, (first, last, schedule)
    # Arrival times never go backwards, and they are spread out, not one burst.
    ats = [a.at for a in s.arrivals]
    assert ats == sorted(ats)
    assert len({round(a / DRIP) for a in ats}) >= upstream_parts // 2


def content(s: Streamed) -> str:
    return "".join(
        c["delta"].get("content") or ""
        for a in s.arrivals
        if isinstance(a.data, dict)
        for c in a.data.get("choices", ())
    )


def access_line(stack: Stack, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [ln for ln in stack.access_lines() if needle in ln]
        if lines:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError(f"no access log line with {needle!r}: {stack.access_lines()[-5:]}")


MSG = [{"role": "user", "content": "Tell me a story"}]


# ---------------------------------------------------------------- per provider


def test_openai_compatible_stream(stack: Stack, client: httpx.Client) -> None:
    s = stream_sse(client, "qwen.test", {"messages": MSG, "stream": True}, "/v1/chat/completions")
    assert s.status == 200 and s.headers["content-type"] == "text/event-stream"
    assert s.headers["x-llm-provider"] == "qwen"
    # 5 text chunks + finish + usage (added by us upstream, hidden) + [DONE]
    check_timing(s, upstream_parts=8)
    assert s.arrivals[-1].data == "[DONE]"
    assert s.raw.endswith(b"data: [DONE]\n\n")
    # No usage chunk: the client did not ask for one.
    assert not [a for a in s.arrivals if isinstance(a.data, dict) and a.data.get("usage")]
    assert content(s).startswith("Hello from the fake provider. model=qwen-turbo")
    (rec,) = stack.fake.take()
    assert rec.path == "/compatible-mode/v1/chat/completions"
    assert rec.headers["host"] == "dashscope.aliyuncs.com"
    assert rec.headers["authorization"] == "Bearer sk-qwen-stream"
    assert rec.json()["stream_options"] == {"include_usage": True}
    line = access_line(stack, "route=r-qwen")
    assert "input_tokens=11 output_tokens=7 total_tokens=18" in line


def test_openai_compatible_stream_client_asked_usage(stack: Stack, client: httpx.Client) -> None:
    body = {"messages": MSG, "stream": True, "stream_options": {"include_usage": True}}
    s = stream_sse(client, "qwen.test", body, "/v1/chat/completions")
    usage = [
        a.data["usage"] for a in s.arrivals if isinstance(a.data, dict) and a.data.get("usage")
    ]
    assert usage == [{"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}]
    assert s.arrivals[-1].data == "[DONE]"


def test_claude_stream(stack: Stack, client: httpx.Client) -> None:
    s = stream_sse(client, "claude.test", {"messages": MSG, "stream": True}, "/v1/chat/completions")
    assert s.status == 200 and s.headers["content-type"] == "text/event-stream"
    # message_start, block start, 5 deltas, block stop, message_delta, message_stop
    check_timing(s, upstream_parts=10)
    chunks = [a.data for a in s.arrivals[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert s.arrivals[-1].data == "[DONE]"
    assert content(s) == (
        "Hello from fake Claude. model=claude-sonnet-4 system=False last_user=Tell me a story"
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    (rec,) = stack.fake.take()
    assert rec.path == "/v1/messages" and rec.headers["host"] == "api.anthropic.com"
    assert rec.headers["x-api-key"] == "sk-ant-stream"
    assert "authorization" not in rec.headers
    assert rec.json()["stream"] is True
    line = access_line(stack, "route=r-claude")
    assert "input_tokens=12 output_tokens=9 total_tokens=21" in line


def test_gemini_stream(stack: Stack, client: httpx.Client) -> None:
    s = stream_sse(client, "gemini.test", {"messages": MSG, "stream": True}, "/v1/chat/completions")
    assert s.status == 200
    check_timing(s, upstream_parts=5)
    assert s.arrivals[-1].data == "[DONE]"
    assert content(s) == "Hello from fake Gemini. model=gemini-2.0-flash"
    (rec,) = stack.fake.take()
    assert rec.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert rec.headers["host"] == "generativelanguage.googleapis.com"
    assert rec.headers["x-goog-api-key"] == "g-key-stream"
    assert "authorization" not in rec.headers
    line = access_line(stack, "route=r-gemini")
    assert "input_tokens=10 output_tokens=6 total_tokens=16" in line


def test_ollama_stream_ndjson_to_openai(stack: Stack, client: httpx.Client) -> None:
    s = stream_sse(client, "ollama.test", {"messages": MSG, "stream": True}, "/v1/chat/completions")
    assert s.status == 200 and s.headers["content-type"] == "text/event-stream"
    check_timing(s, upstream_parts=6)
    assert s.arrivals[-1].data == "[DONE]"
    assert content(s) == "Hello from fake Ollama. model=llama3.2 last_user=Tell me a story"
    (rec,) = stack.fake.take()
    assert rec.path == "/api/chat" and rec.headers["host"] == "ollama.fake:11434"
    assert "authorization" not in rec.headers
    assert rec.json()["stream"] is True
    line = access_line(stack, "route=r-ollama")
    assert "input_tokens=8 output_tokens=5 total_tokens=13" in line


def test_ollama_native_client_gets_ndjson(stack: Stack, client: httpx.Client) -> None:
    body = {"model": "llama3.2", "messages": MSG}  # stream omitted: Ollama streams
    lines: list[tuple[float, dict[str, Any]]] = []
    t0 = time.monotonic()
    buf = b""
    with client.stream("POST", "/api/chat", headers={"host": "native.test"}, json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ndjson"
        for chunk in r.iter_raw():
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                lines.append((time.monotonic() - t0, json.loads(line)))
    assert buf == b""
    assert [o["done"] for _, o in lines] == [False] * 5 + [True]
    text = "".join(o["message"]["content"] for _, o in lines)
    assert text == "Hello from fake Ollama. model=llama3.2 last_user=Tell me a story"
    assert lines[-1][1]["eval_count"] == 5
    assert lines[0][0] < DRIP * 5 / 3 and lines[-1][0] - lines[0][0] >= DRIP * 5 * 0.8
    (rec,) = stack.fake.take()
    assert rec.path == "/api/chat" and "stream" not in rec.json()
    line = access_line(stack, "route=r-native")
    assert "total_tokens=13" in line


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("host", "path_part", "status", "body", "message"),
    [
        (
            "qwen.test",
            "/compatible-mode/",
            429,
            {"error": {"message": "Requests rate limit exceeded", "type": "rate_limit"}},
            "Requests rate limit exceeded",
        ),
        (
            "claude.test",
            "/v1/messages",
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            "Overloaded",
        ),
        (
            "gemini.test",
            "streamGenerateContent",
            400,
            {"error": {"code": 400, "message": "Bad model", "status": "INVALID_ARGUMENT"}},
            "Bad model",
        ),
    ],
)
def test_upstream_error_on_stream_is_openai_error_body(
    stack: Stack,
    client: httpx.Client,
    host: str,
    path_part: str,
    status: int,
    body: dict[str, Any],
    message: str,
) -> None:
    stack.fake.script(path_part, Scripted(status, json.dumps(body).encode()))
    r = client.post(
        "/v1/chat/completions", headers={"host": host}, json={"messages": MSG, "stream": True}
    )
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["message"] == message
    assert err["type"]


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_hostile_endless_line_is_cut_off(stack: Stack, client: httpx.Client) -> None:
    extproc_pid = stack.procs[0].pid
    rss_before = _rss_kib(extproc_pid)
    stack.fake.script(
        "/v1/chat/completions",
        Scripted(
            200,
            b'data: {"choices":[{"delta":{"content":"',
            {"content-type": "text/event-stream"},
            endless=b"A" * 16384,
            endless_max=64 << 20,
        ),
    )
    t0 = time.monotonic()
    got = 0
    ended_by: str = "end"
    try:
        with client.stream(
            "POST",
            "/v1/chat/completions",
            headers={"host": "hostile.test"},
            json={"messages": MSG, "stream": True},
        ) as r:
            assert r.status_code == 200
            for chunk in r.iter_raw():
                got += len(chunk)
    except httpx.RemoteProtocolError:
        ended_by = "reset"  # Envoy resets a stream it can no longer answer
    elapsed = time.monotonic() - t0
    # The client's stream ended soon, with no more than the decoder's limit passed on.
    assert ended_by == "reset" and elapsed < 10
    assert got <= 65536 + 16384 * 2
    # The upstream was stopped long before its 64 MiB.
    assert stack.fake.endless_sent < 8 << 20
    deadline = time.monotonic() + 5
    while "upstream stream cut off" not in stack.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    errors = [
        json.loads(ln)
        for ln in stack.logs().splitlines()
        if ln.startswith("{") and '"level":"error"' in ln
    ]
    assert any("SSE line exceeds max_line_bytes (65536 bytes)" in e["msg"] for e in errors)
    assert _rss_kib(extproc_pid) - rss_before < 32 * 1024
    # The gateway still serves (ollama: no token the 429 test above set aside).
    r2 = client.post(
        "/v1/chat/completions", headers={"host": "ollama.test"}, json={"messages": MSG}
    )
    assert r2.status_code == 200, r2.text
