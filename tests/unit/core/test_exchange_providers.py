"""The exchange state machine per provider type, without gRPC.

Each test compiles a config, feeds the events Envoy would send to
`Exchange.handle` and checks the decisions: the request rewrite (authority,
path, auth headers, removed client credentials, body) and the response
translation (buffered here; streams are in test_exchange_streaming.py).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

import orjson
import pytest

from extproc.config.compile import compile_config
from extproc.config.loader import load_text
from extproc.config.runtime import RouteTable, Runtime
from extproc.core.events import (
    CONTINUE,
    BodyMode,
    Continue,
    Decision,
    Reject,
    RequestBody,
    RequestHeaders,
    RequestTrailers,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, ExchangeRecord, Phase, PhaseError

CLIENT_KEY = "sk-client-gateway-key"

PROVIDERS = """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen]}
- {name: deepseek, type: deepseek, api_tokens: [sk-deepseek], default_model: deepseek-chat}
- name: azure
  type: azure
  host: myres.openai.azure.com
  api_tokens: [az-key]
  options: {deployment: gpt4o-prod, api_version: "2024-06-01"}
- {name: claude, type: claude, api_tokens: [sk-ant], default_model: claude-sonnet-4}
- {name: gemini, type: gemini, api_tokens: [g-key], default_model: gemini-2.0-flash}
- {name: ollama, type: ollama, base_url: "http://ollama.internal:11434", default_model: llama3.2}
routes:
- {name: r-qwen, match: {hosts: [qwen.test]}, provider: qwen}
- {name: r-deepseek, match: {hosts: [deepseek.test]}, provider: deepseek}
- {name: r-azure, match: {hosts: [azure.test]}, provider: azure}
- {name: r-claude, match: {hosts: [claude.test]}, provider: claude}
- {name: r-gemini, match: {hosts: [gemini.test]}, provider: gemini}
- {name: r-ollama, match: {hosts: [ollama.test]}, provider: ollama}
"""

CHAT = {
    "model": "m-client",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello?"},
    ],
}


def runtime(text: str, env: dict[str, str] | None = None) -> Runtime:
    return compile_config(load_text(text), env=env or {})


def hdrs(d: Decision) -> dict[str, str]:
    assert isinstance(d, Continue), d
    return dict(d.set_headers)


def req_headers(host: str, path: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    h = {
        ":authority": host,
        ":path": path,
        ":method": "POST",
        ":scheme": "http",
        "content-type": "application/json",
        "authorization": f"Bearer {CLIENT_KEY}",
        "x-request-id": "req-1",
    }
    h.update(extra or {})
    return h


async def send(
    ex: Exchange,
    host: str,
    body: Any,
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> Decision:
    d = await ex.handle(RequestHeaders(req_headers(host, path, headers), False))
    assert d == CONTINUE
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return await ex.handle(RequestBody(raw, True))


def upstream_body(d: Decision, sent: Any) -> Any:
    """The JSON body the provider receives after this decision."""
    assert isinstance(d, Continue), d
    raw = d.body if d.body is not None else orjson.dumps(sent)
    return orjson.loads(raw)


async def answer(
    ex: Exchange,
    status: int,
    body: bytes,
    ctype: str = "application/json",
    parts: int = 1,
    extra: dict[str, str] | None = None,
) -> tuple[Decision, Decision]:
    """Response headers then a buffered body (optionally in several parts)."""
    hd = await ex.handle(
        ResponseHeaders({":status": str(status), "content-type": ctype, **(extra or {})}, False)
    )
    assert isinstance(hd, Continue)
    assert hd.mode is not None and hd.mode.response_body is BodyMode.BUFFERED, hd
    step = max(1, -(-len(body) // parts))
    pieces = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    last: Decision = CONTINUE
    for i, p in enumerate(pieces):
        last = await ex.handle(ResponseBody(p, i == len(pieces) - 1))
        if i < len(pieces) - 1:
            assert last == CONTINUE
    return hd, last


def client_body(d: Decision, upstream: bytes) -> Any:
    assert isinstance(d, Continue), d
    return orjson.loads(d.body if d.body is not None else upstream)


@pytest.fixture
def rt() -> Runtime:
    # Per test: token pools remember 401/429 answers.
    return runtime(PROVIDERS)


# ---------------------------------------------------------------- requests


async def test_openai_compatible_qwen_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "qwen.test", CHAT)
    h = hdrs(d)
    assert h[":authority"] == "dashscope.aliyuncs.com"
    assert h[":path"] == "/compatible-mode/v1/chat/completions"
    assert h["authorization"] == "Bearer sk-qwen"  # the client's key is overwritten
    assert CLIENT_KEY not in repr(d)
    assert d.clear_route_cache is True
    # Nothing to change: the client's exact bytes go on.
    assert d.body is None
    assert upstream_body(d, CHAT) == CHAT


async def test_openai_compatible_default_model_filled(rt: Runtime) -> None:
    ex = Exchange(rt)
    sent = {"messages": [{"role": "user", "content": "hi"}]}
    d = await send(ex, "deepseek.test", sent)
    h = hdrs(d)
    assert h[":authority"] == "api.deepseek.com"
    assert h[":path"] == "/chat/completions"
    assert h["authorization"] == "Bearer sk-deepseek"
    assert h["content-length"] == str(len(d.body or b""))
    assert upstream_body(d, sent) == {**sent, "model": "deepseek-chat"}
    assert ex.record.model_served == "deepseek-chat"
    assert ex.record.model_requested == ""


async def test_azure_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "azure.test", CHAT)
    h = hdrs(d)
    assert h[":authority"] == "myres.openai.azure.com"
    assert h[":path"] == "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01"
    assert h["api-key"] == "az-key"
    assert "authorization" not in h
    assert "authorization" in d.remove_headers  # the gateway key must not reach Azure
    assert d.clear_route_cache


async def test_claude_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "claude.test", {**CHAT, "max_tokens": 50, "temperature": 0.2})
    h = hdrs(d)
    assert h[":authority"] == "api.anthropic.com"
    assert h[":path"] == "/v1/messages"
    assert h["x-api-key"] == "sk-ant"
    assert h["anthropic-version"] == "2023-06-01"
    assert h["content-type"] == "application/json"
    assert "authorization" in d.remove_headers
    body = orjson.loads(d.body or b"")
    assert h["content-length"] == str(len(d.body or b""))
    assert body == {
        "model": "m-client",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello?"}]}],
        "max_tokens": 50,
        "temperature": 0.2,
    }


async def test_claude_default_model_and_max_tokens(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "claude.test", {"messages": [{"role": "user", "content": "x"}]})
    body = orjson.loads(d.body or b"")  # type: ignore[union-attr]
    assert body["model"] == "claude-sonnet-4"
    assert body["max_tokens"] == 4096  # Anthropic requires it


async def test_gemini_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "gemini.test", {**CHAT, "model": "gemini-1.5-pro", "max_tokens": 10})
    h = hdrs(d)
    assert h[":authority"] == "generativelanguage.googleapis.com"
    assert h[":path"] == "/v1beta/models/gemini-1.5-pro:generateContent"
    assert h["x-goog-api-key"] == "g-key"
    assert "authorization" in d.remove_headers
    body = orjson.loads(d.body or b"")
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "Hello?"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 10},
    }


async def test_gemini_stream_path(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "gemini.test", {**CHAT, "stream": True})
    assert hdrs(d)[":path"] == "/v1beta/models/m-client:streamGenerateContent?alt=sse"


async def test_ollama_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "ollama.test", {**CHAT, "model": ""})
    h = hdrs(d)
    assert h[":authority"] == "ollama.internal:11434"
    assert h[":path"] == "/api/chat"
    assert "authorization" not in h  # no token configured: none sent ...
    assert "authorization" in d.remove_headers  # ... and the client's is not forwarded
    body = orjson.loads(d.body or b"")
    assert body == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello?"},
        ],
        "stream": False,  # Ollama streams unless told not to
    }


@pytest.mark.parametrize("header", ["x-api-key", "api-key", "x-goog-api-key"])
@pytest.mark.parametrize("host", ["qwen.test", "claude.test", "azure.test", "ollama.test"])
async def test_other_client_key_headers_removed(rt: Runtime, header: str, host: str) -> None:
    """Regression: a Gemini SDK's x-goog-api-key went on to non-Gemini providers."""
    ex = Exchange(rt)
    d = await send(ex, host, CHAT, headers={header: CLIENT_KEY})
    assert isinstance(d, Continue)
    # Either dropped, or overwritten with the provider's own key.
    assert header in d.remove_headers or dict(d.set_headers)[header] != CLIENT_KEY


async def test_gemini_client_key_header_overwritten(rt: Runtime) -> None:
    d = await send(Exchange(rt), "gemini.test", CHAT, headers={"x-goog-api-key": CLIENT_KEY})
    assert hdrs(d)["x-goog-api-key"] == "g-key"
    assert "x-goog-api-key" not in d.remove_headers  # type: ignore[union-attr]


async def test_unmatched_host_is_refused(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await ex.handle(
        RequestHeaders(req_headers("elsewhere.test", "/v1/chat/completions"), False)
    )
    assert isinstance(d, Reject) and d.status == 404 and d.reason == "no_route"
    assert ex.phase is Phase.DONE


# ---------------------------------------------------------------- buffered responses


async def test_openai_compatible_response_passes_through_with_usage(rt: Runtime) -> None:
    records: list[ExchangeRecord] = []
    ex = Exchange(rt, on_done=records.append)
    await send(ex, "qwen.test", CHAT)
    up = orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "model": "qwen-plus-2025",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )
    hd, d = await answer(ex, 200, up)
    assert hdrs(hd)["x-llm-provider"] == "qwen"
    assert isinstance(d, Continue) and d.body is None  # unchanged bytes
    meta = d.metadata["llm_extproc"]  # type: ignore[index]
    assert (meta["input_tokens"], meta["output_tokens"], meta["total_tokens"]) == (3, 2, 5)
    assert meta["provider"] == "qwen" and meta["route"] == "r-qwen"
    assert meta["model_served"] == "qwen-plus-2025"
    assert ex.phase is Phase.DONE
    assert len(records) == 1 and records[0].usage is not None
    assert records[0].usage.total_tokens == 5 and records[0].status == 200


@pytest.mark.parametrize("parts", [1, 3, 17])
async def test_claude_response_translated(rt: Runtime, parts: int) -> None:
    ex = Exchange(rt)
    await send(ex, "claude.test", CHAT)
    up = orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-20250514",
            "content": [{"type": "text", "text": "Bonjour"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 12, "output_tokens": 9},
        }
    )
    hd, d = await answer(ex, 200, up, parts=parts)
    assert hdrs(hd)["x-llm-provider"] == "claude"
    out = client_body(d, up)
    assert out["object"] == "chat.completion"
    assert out["model"] == "claude-sonnet-4-20250514"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Bonjour"}
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"]["prompt_tokens"] == 12 and out["usage"]["completion_tokens"] == 9
    assert hdrs(d)["content-length"] == str(len(d.body or b""))  # type: ignore[union-attr]
    assert d.metadata["llm_extproc"]["total_tokens"] == 21  # type: ignore[union-attr,index]


async def test_gemini_response_translated(rt: Runtime) -> None:
    ex = Exchange(rt)
    await send(ex, "gemini.test", CHAT)
    up = orjson.dumps(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Hallo"}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 4,
                "candidatesTokenCount": 1,
                "totalTokenCount": 5,
            },
            "modelVersion": "gemini-2.0-flash-001",
        }
    )
    _, d = await answer(ex, 200, up, parts=4)
    out = client_body(d, up)
    assert out["choices"][0]["message"]["content"] == "Hallo"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"]["total_tokens"] == 5
    assert ex.record.model_served == "gemini-2.0-flash-001"


async def test_ollama_response_translated(rt: Runtime) -> None:
    ex = Exchange(rt)
    await send(ex, "ollama.test", CHAT)
    up = orjson.dumps(
        {
            "model": "llama3.2",
            "message": {"role": "assistant", "content": "Hey"},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 8,
            "eval_count": 5,
        }
    )
    _, d = await answer(ex, 200, up)
    out = client_body(d, up)
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hey"}
    assert out["usage"]["prompt_tokens"] == 8 and out["usage"]["total_tokens"] == 13


# ---------------------------------------------------------------- upstream errors


@pytest.mark.parametrize(
    ("host", "status", "body", "message", "etype"),
    [
        (
            "claude.test",
            401,
            {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            },
            "invalid x-api-key",
            "authentication_error",
        ),
        (
            "gemini.test",
            400,
            {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}},
            "API key not valid.",
            "invalid_request_error",
        ),
        (
            "ollama.test",
            404,
            {"error": "model 'llama9' not found"},
            "model 'llama9' not found",
            "not_found_error",
        ),
        (
            "azure.test",
            429,
            {"error": {"code": "429", "message": "Rate limit is exceeded."}},
            "Rate limit is exceeded.",
            None,
        ),
        (
            "qwen.test",
            500,
            {"error": {"message": "internal", "type": "server_error", "code": "x"}},
            "internal",
            "server_error",
        ),
        ("deepseek.test", 503, b"upstream connect error", "upstream connect error", "server_error"),
    ],
)
async def test_upstream_error_becomes_openai_error(
    rt: Runtime, host: str, status: int, body: Any, message: str, etype: str | None
) -> None:
    ex = Exchange(rt)
    await send(ex, host, CHAT)
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    _hd, d = await answer(
        ex, status, raw, ctype="text/plain" if isinstance(body, bytes) else "application/json"
    )
    assert ex.record.upstream_error and ex.record.status == status
    out = client_body(d, raw)
    assert out["error"]["message"] == message
    if etype is not None:
        assert out["error"]["type"] == etype


async def test_streaming_request_upstream_error_is_buffered_error_body(rt: Runtime) -> None:
    ex = Exchange(rt)
    await send(ex, "claude.test", {**CHAT, "stream": True})
    raw = orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    _, d = await answer(ex, 529, raw)  # answer() asserts BUFFERED, not STREAMED
    out = client_body(d, raw)
    assert out["error"]["message"] == "Overloaded"
    assert out["error"]["type"] == "server_error"


# ---------------------------------------------------------------- model mapping, weights


async def test_model_mapping() -> None:
    rt = runtime(
        """
providers:
- name: q
  type: qwen
  api_tokens: [k]
  model_mapping: {"gpt-4o": "qwen-max", "gpt-3.5-*": "qwen-turbo", "*": "qwen-plus"}
routes:
- {name: r, match: {hosts: [a.test]}, provider: q}
"""
    )
    for asked, want in (
        ("gpt-4o", "qwen-max"),
        ("gpt-3.5-turbo", "qwen-turbo"),
        ("o1", "qwen-plus"),
    ):
        ex = Exchange(rt)
        sent = {**CHAT, "model": asked}
        d = await send(ex, "a.test", sent)
        assert upstream_body(d, sent)["model"] == want
        assert ex.record.model_requested == asked and ex.record.model_served == want


async def test_weighted_providers() -> None:
    rt = runtime(
        """
providers:
- {name: a, type: qwen, api_tokens: [ka]}
- {name: b, type: deepseek, api_tokens: [kb]}
routes:
- name: r
  match: {hosts: [w.test]}
  providers: [{provider: a, weight: 1}, {provider: b, weight: 3}]
"""
    )
    random.seed(1234)
    seen: Counter[str] = Counter()
    for _ in range(800):
        ex = Exchange(rt)
        h = hdrs(await send(ex, "w.test", CHAT))
        seen[h[":authority"]] += 1
        # The key always belongs to the provider picked.
        want = "Bearer ka" if h[":authority"] == "dashscope.aliyuncs.com" else "Bearer kb"
        assert h["authorization"] == want
    share_b = seen["api.deepseek.com"] / 800
    assert 0.68 < share_b < 0.82, seen


# ---------------------------------------------------------------- token rotation


TOKENS = """
providers:
- {name: q, type: qwen, api_tokens: [t-one, t-two], token_cooldown: 60s}
routes:
- {name: r, match: {hosts: [t.test]}, provider: q}
"""


async def _token_of(rt: Runtime) -> tuple[Exchange, str]:
    ex = Exchange(rt)
    d = await send(ex, "t.test", CHAT)
    return ex, hdrs(d)["authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize("status", [401, 429])
async def test_token_rotation_sets_rejected_token_aside(status: int) -> None:
    rt = runtime(TOKENS)
    ex1, t1 = await _token_of(rt)
    ex2, t2 = await _token_of(rt)
    assert {t1, t2} == {"t-one", "t-two"}  # round robin
    # The provider rejects the first token: it cools down.
    await answer(ex1, status, b'{"error":{"message":"no","type":"x"}}')
    await answer(ex2, 200, b'{"choices":[]}')
    for _ in range(4):
        _, t = await _token_of(rt)
        assert t == t2


async def test_all_tokens_cooling_down_is_503_with_retry_after() -> None:
    rt = runtime(TOKENS)
    for _ in range(2):
        ex, _t = await _token_of(rt)
        await answer(ex, 429, b"{}", extra={"retry-after": "30"})
    ex = Exchange(rt)
    d = await send(ex, "t.test", CHAT)
    assert isinstance(d, Reject) and d.status == 503
    assert dict(d.headers)["retry-after"] in ("29", "30")
    assert orjson.loads(d.body)["error"]["code"] == "no_token_available"
    assert b"t-one" not in d.body and b"t-two" not in d.body


# ---------------------------------------------------------------- protocol original


ORIGINAL = """
providers:
- {name: q, type: qwen, api_tokens: [sk-q], protocol: original, default_model: qwen-max}
- {name: c, type: claude, api_tokens: [sk-ant], protocol: original}
- {name: g, type: gemini, api_tokens: [g-key], protocol: original}
routes:
- {name: rq, match: {hosts: [q.test]}, provider: q}
- {name: rc, match: {hosts: [c.test]}, provider: c}
- {name: rg, match: {hosts: [g.test]}, provider: g}
"""


async def test_protocol_original_openai_compatible_keeps_body() -> None:
    ex = Exchange(runtime(ORIGINAL))
    sent = {"messages": [{"role": "user", "content": "x"}], "extra": [1, 2]}
    d = await send(ex, "q.test", sent)
    assert isinstance(d, Continue) and d.body is None  # untouched: no default model either
    h = hdrs(d)
    assert h["authorization"] == "Bearer sk-q"
    assert h[":authority"] == "dashscope.aliyuncs.com"
    assert h[":path"] == "/compatible-mode/v1/chat/completions"
    hd = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "application/json"}, False)
    )
    assert hd.mode is not None and hd.mode.response_body is BodyMode.NONE  # type: ignore[union-attr]
    assert hdrs(hd)["x-llm-provider"] == "q"


async def test_protocol_original_claude_native_body() -> None:
    """Regression: pass-through built a chat request from {} and raised TranslationError."""
    ex = Exchange(runtime(ORIGINAL))
    native = {"model": "claude-3", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    d = await send(
        ex, "c.test", native, path="/v1/messages", headers={"anthropic-version": "2024-01-01"}
    )
    assert isinstance(d, Continue) and d.body is None
    h = hdrs(d)
    assert h["x-api-key"] == "sk-ant"
    assert "anthropic-version" not in h  # the client's own version is kept
    assert "authorization" in d.remove_headers
    assert h[":authority"] == "api.anthropic.com"
    assert ":path" not in h  # the client's native path is kept


async def test_protocol_original_claude_sets_version_when_missing() -> None:
    ex = Exchange(runtime(ORIGINAL))
    d = await send(ex, "c.test", {"messages": []}, path="/v1/messages")
    assert hdrs(d)["anthropic-version"] == "2023-06-01"


async def test_protocol_original_gemini() -> None:
    ex = Exchange(runtime(ORIGINAL))
    d = await send(ex, "g.test", {"contents": []}, path="/v1beta/models/x:generateContent")
    h = hdrs(d)
    assert h["x-goog-api-key"] == "g-key" and "authorization" in d.remove_headers  # type: ignore[union-attr]


async def test_bodyless_request_to_claude_route() -> None:
    """Regression: a GET (no body) to a claude provider raised TranslationError."""
    rt = runtime(PROVIDERS)
    ex = Exchange(rt)
    d = await ex.handle(
        RequestHeaders(req_headers("claude.test", "/v1/models", {":method": "GET"}), True)
    )
    h = hdrs(d)
    assert h["x-api-key"] == "sk-ant" and h[":authority"] == "api.anthropic.com"
    assert "authorization" in d.remove_headers  # type: ignore[union-attr]


async def test_bodyless_models_request_maps_base_path() -> None:
    ex = Exchange(runtime(PROVIDERS))
    d = await ex.handle(
        RequestHeaders(req_headers("qwen.test", "/v1/models", {":method": "GET"}), True)
    )
    h = hdrs(d)
    assert h[":path"] == "/compatible-mode/v1/models" and h["authorization"] == "Bearer sk-qwen"


# ---------------------------------------------------------------- custom settings


async def test_custom_settings_per_protocol() -> None:
    rt = runtime(
        """
providers:
- name: q
  type: qwen
  api_tokens: [k]
  custom_settings:
  - {name: max_tokens, value: 100, overwrite: true}
  - {name: temperature, value: 0.1, overwrite: false}
  - {name: enable_search, value: true, mode: raw}
- name: c
  type: claude
  api_tokens: [k]
  custom_settings: [{name: max_tokens, value: 77, overwrite: true}]
- name: g
  type: gemini
  api_tokens: [k]
  custom_settings: [{name: max_tokens, value: 66, overwrite: true}]
routes:
- {name: rq, match: {hosts: [q.test]}, provider: q}
- {name: rc, match: {hosts: [c.test]}, provider: c}
- {name: rg, match: {hosts: [g.test]}, provider: g}
"""
    )
    sent = {**CHAT, "max_tokens": 5, "temperature": 0.9}
    d = await send(Exchange(rt), "q.test", sent)
    body = upstream_body(d, sent)
    assert body["max_tokens"] == 100  # overwritten
    assert body["temperature"] == 0.9  # overwrite: false keeps the client's
    assert body["enable_search"] is True  # raw: top level as given
    d = await send(Exchange(rt), "c.test", sent)
    assert upstream_body(d, sent)["max_tokens"] == 77
    d = await send(Exchange(rt), "g.test", sent)
    assert upstream_body(d, sent)["generationConfig"]["maxOutputTokens"] == 66


# ---------------------------------------------------------------- stream policy


POLICY = """
providers:
- {name: q, type: qwen, api_tokens: [k]}
routes:
- {name: only-batch, match: {hosts: [batch.test]}, provider: q}
- {name: only-stream, match: {hosts: [stream.test]}, provider: q}
"""


def policy_runtime() -> Runtime:
    """Routes with allow_streaming / allow_non_streaming off.

    Set on the compiled routes: the config path is broken (compile.py's _bool
    ignores an explicit false; see test_config_allow_streaming_false below).
    """
    rt = runtime(POLICY)
    batch, stream = rt.routes.routes
    routes = (
        dataclasses.replace(batch, allow_streaming=False),
        dataclasses.replace(stream, allow_non_streaming=False),
    )
    return dataclasses.replace(rt, routes=RouteTable(routes))


async def test_allow_streaming_false_rejects_stream_with_reason() -> None:
    rt = policy_runtime()
    d = await send(Exchange(rt), "batch.test", {**CHAT, "stream": True})
    assert isinstance(d, Reject) and d.status == 400
    err = orjson.loads(d.body)["error"]
    assert "does not allow streaming" in err["message"] and "only-batch" in err["message"]
    assert err["code"] == "streaming_not_allowed"
    assert isinstance(await send(Exchange(rt), "batch.test", CHAT), Continue)


async def test_allow_non_streaming_false_rejects_batch_with_reason() -> None:
    rt = policy_runtime()
    d = await send(Exchange(rt), "stream.test", CHAT)
    assert isinstance(d, Reject) and d.status == 400
    err = orjson.loads(d.body)["error"]
    assert "only allows streaming" in err["message"] and '"stream": true' in err["message"]
    assert err["code"] == "non_streaming_not_allowed"
    assert isinstance(await send(Exchange(rt), "stream.test", {**CHAT, "stream": True}), Continue)


async def test_provider_default_stream_counts_for_the_policy() -> None:
    rt = policy_runtime()
    (route, _), q = rt.routes.routes, rt.providers["q"]
    streaming_q = dataclasses.replace(q, default_stream=True)
    rt = dataclasses.replace(
        rt, routes=RouteTable((dataclasses.replace(route, providers=(streaming_q,)),))
    )
    d = await send(Exchange(rt), "batch.test", CHAT)  # no "stream": the provider default streams
    assert isinstance(d, Reject) and d.status == 400


def test_config_allow_streaming_false() -> None:
    rt = runtime(
        """
providers: [{name: q, type: qwen, api_tokens: [k]}]
routes: [{name: r, provider: q, allow_streaming: false, allow_non_streaming: false}]
"""
    )
    r = rt.routes.routes[0]
    assert (r.allow_streaming, r.allow_non_streaming) == (False, False)


async def test_custom_settings_overwrite_defaults_true() -> None:
    rt = runtime(
        """
providers:
- {name: q, type: qwen, api_tokens: [k], custom_settings: [{name: max_tokens, value: 100}]}
routes: [{name: r, provider: q}]
"""
    )
    sent = {**CHAT, "max_tokens": 5}
    d = await send(Exchange(rt), "any.test", sent)
    assert upstream_body(d, sent)["max_tokens"] == 100


# ---------------------------------------------------------------- ASM resources


ASM = """
apiVersion: istio.alibabacloud.com/v1beta1
kind: LLMProvider
metadata: {name: dashscope-qwen}
spec:
  host: dashscope.aliyuncs.com
  path: /compatible-mode/v1/chat/completions
  configs:
    defaultConfig:
      openAIConfig: {model: qwen-turbo, stream: false, apiKey: sk-default}
    routeSpecificConfigs:
      vip-rule:
        openAIConfig: {model: qwen-max, stream: true, apiKey: sk-vip}
---
apiVersion: istio.alibabacloud.com/v1beta1
kind: LLMRoute
metadata: {name: test-llm-route}
spec:
  host: test.com
  rules:
  - name: vip-rule
    matches:
    - headers:
        user-type: {exact: subscriber}
    backendRefs:
    - providerHost: dashscope.aliyuncs.com
  - backendRefs:
    - providerHost: dashscope.aliyuncs.com
"""


async def test_asm_seed_walkthrough() -> None:
    rt = runtime(ASM)
    ex = Exchange(rt)
    sent = {"messages": [{"role": "user", "content": "Please introduce yourself"}]}
    d = await send(ex, "test.com", sent, path="/")
    h = hdrs(d)
    assert h[":authority"] == "dashscope.aliyuncs.com"
    assert h[":path"] == "/compatible-mode/v1/chat/completions"
    assert h["authorization"] == "Bearer sk-default"
    assert upstream_body(d, sent) == {**sent, "model": "qwen-turbo"}  # stream: false default


async def test_asm_route_specific_config_by_header_and_default_stream() -> None:
    rt = runtime(ASM)
    ex = Exchange(rt)
    sent = {"messages": [{"role": "user", "content": "hi"}]}
    d = await send(ex, "test.com", sent, path="/", headers={"user-type": "subscriber"})
    h = hdrs(d)
    assert h["authorization"] == "Bearer sk-vip"
    body = upstream_body(d, sent)
    assert body["model"] == "qwen-max"
    # openAIConfig.stream: true is the provider's default when the client says nothing.
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert ex.record.stream is True
    hd = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "text/event-stream"}, False)
    )
    assert hd.mode is not None and hd.mode.response_body is BodyMode.STREAMED  # type: ignore[union-attr]


async def test_client_stream_false_beats_provider_default() -> None:
    rt = runtime(ASM)
    sent = {"messages": [{"role": "user", "content": "hi"}], "stream": False}
    d = await send(Exchange(rt), "test.com", sent, path="/", headers={"user-type": "subscriber"})
    assert upstream_body(d, sent)["stream"] is False


# ---------------------------------------------------------------- embeddings


async def test_embeddings_openai_compatible(rt: Runtime) -> None:
    ex = Exchange(rt)
    sent = {"model": "text-embedding-v3", "input": ["a", "b"]}
    d = await send(ex, "qwen.test", sent, path="/v1/embeddings")
    h = hdrs(d)
    assert h[":path"] == "/compatible-mode/v1/embeddings" and h["authorization"] == "Bearer sk-qwen"
    up = orjson.dumps(
        {"object": "list", "data": [], "usage": {"prompt_tokens": 4, "total_tokens": 4}}
    )
    _, d2 = await answer(ex, 200, up)
    assert d2.metadata["llm_extproc"]["input_tokens"] == 4  # type: ignore[union-attr,index]


async def test_embeddings_gemini_translated(rt: Runtime) -> None:
    ex = Exchange(rt)
    sent = {"model": "text-embedding-004", "input": "hello"}
    d = await send(ex, "gemini.test", sent, path="/v1/embeddings")
    assert hdrs(d)[":path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    up = orjson.dumps({"embeddings": [{"values": [0.5, 0.25]}]})
    _, d2 = await answer(ex, 200, up)
    out = client_body(d2, up)
    assert out["object"] == "list" and out["data"][0]["embedding"] == [0.5, 0.25]


async def test_embeddings_claude_is_400(rt: Runtime) -> None:
    d = await send(Exchange(rt), "claude.test", {"input": "x"}, path="/v1/embeddings")
    assert isinstance(d, Reject) and d.status == 400
    assert b"embeddings" in d.body


# ---------------------------------------------------------------- request validation


@pytest.mark.parametrize(
    ("body", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[1]", "application/json", 400, "invalid_body"),
        (b"", "application/json", 400, "empty_body"),
        (b'{"model":"x"}', "application/json", 400, "missing_messages"),
        (b'{"messages":"hi"}', "application/json", 400, "invalid_messages"),
        (b'{"messages":[]}', "text/plain", 415, "unsupported_media_type"),
    ],
)
async def test_bad_requests(rt: Runtime, body: bytes, ctype: str, status: int, code: str) -> None:
    ex = Exchange(rt)
    d = await send(ex, "qwen.test", body, headers={"content-type": ctype})
    assert isinstance(d, Reject) and d.status == status
    assert orjson.loads(d.body)["error"]["code"] == code
    assert ex.phase is Phase.DONE


async def test_request_body_limit() -> None:
    rt = runtime(PROVIDERS + "limits: {max_request_bytes: 100}\n")
    ex = Exchange(rt)
    big = {"messages": [{"role": "user", "content": "x" * 200}]}
    d = await send(ex, "qwen.test", big)
    assert isinstance(d, Reject) and d.status == 413


async def test_a_body_followed_by_trailers_is_the_whole_body(rt: Runtime) -> None:
    # BUFFERED mode: with trailers, Envoy sends the whole body without end_of_stream.
    ex = Exchange(rt)
    await ex.handle(RequestHeaders(req_headers("claude.test", "/v1/chat/completions"), False))
    d = await ex.handle(RequestBody(orjson.dumps(CHAT), False))
    assert orjson.loads(d.body or b"")["system"] == "Be brief."  # type: ignore[union-attr]
    assert await ex.handle(RequestTrailers({"x-t": "1"})) is CONTINUE


async def test_a_body_in_parts_is_refused(rt: Runtime) -> None:
    # A streamed request body would have sent its first part upstream unread.
    ex = Exchange(rt)
    await ex.handle(RequestHeaders(req_headers("claude.test", "/v1/chat/completions"), False))
    raw = orjson.dumps(CHAT)
    first = await ex.handle(RequestBody(raw[:7], False))
    assert isinstance(first, Reject) and first.status == 400
    ex = Exchange(rt)
    await ex.handle(RequestHeaders(req_headers("claude.test", "/v1/chat/completions"), False))
    assert isinstance(await ex.handle(RequestBody(raw, False)), Continue)
    d = await ex.handle(RequestBody(b"more", True))
    assert isinstance(d, Reject) and d.status == 500 and d.reason == "body_in_parts"


async def test_trailers_without_a_body_are_refused(rt: Runtime) -> None:
    ex = Exchange(rt)
    await ex.handle(RequestHeaders(req_headers("qwen.test", "/v1/chat/completions"), False))
    d = await ex.handle(RequestTrailers({}))
    assert isinstance(d, Reject) and d.status == 400 and d.reason == "trailers_without_body"


async def test_an_answer_to_a_request_no_leg_built_is_withheld(rt: Runtime) -> None:
    # Request headers, then straight to the answer: the body phase never ran.
    ex = Exchange(rt)
    await ex.handle(RequestHeaders(req_headers("qwen.test", "/v1/chat/completions"), False))
    d = await ex.handle(ResponseHeaders({":status": "200"}, False))
    assert isinstance(d, Reject) and d.status == 502 and d.reason == "unchecked_request"
    # An Envoy local reply (an error) still passes.
    ex = Exchange(rt)
    await ex.handle(RequestHeaders(req_headers("qwen.test", "/v1/chat/completions"), False))
    assert isinstance(await ex.handle(ResponseHeaders({":status": "413"}, True)), Continue)


@pytest.mark.parametrize(
    "path",
    [
        "//v1/chat/completions",
        "/v1//chat/completions",
        "/v1/%63hat/completions",
        "/v1/./chat/completions",
        "/x/../v1/chat/completions",
        "/v1/chat%2Fcompletions",
    ],
)
async def test_non_canonical_paths_are_refused(rt: Runtime, path: str) -> None:
    ex = Exchange(rt)
    d = await ex.handle(RequestHeaders(req_headers("qwen.test", path), False))
    assert isinstance(d, Reject) and d.status == 400 and d.reason == "path_not_canonical"
    assert ex.phase is Phase.DONE


# ---------------------------------------------------------------- phases


async def test_response_body_before_headers_is_phase_error(rt: Runtime) -> None:
    ex = Exchange(rt)
    await send(ex, "qwen.test", CHAT)
    with pytest.raises(PhaseError) as ei:
        await ex.handle(ResponseBody(b"{}", True))
    assert ei.value.current is Phase.REQUEST_BODY and ei.value.got is Phase.RESPONSE_BODY


async def test_body_before_headers_is_phase_error(rt: Runtime) -> None:
    with pytest.raises(PhaseError):
        await Exchange(rt).handle(RequestBody(b"{}", True))


async def test_second_request_headers_is_phase_error(rt: Runtime) -> None:
    ex = Exchange(rt)
    await ex.handle(RequestHeaders(req_headers("qwen.test", "/v1/chat/completions"), False))
    with pytest.raises(PhaseError):
        await ex.handle(RequestHeaders(req_headers("qwen.test", "/v1/chat/completions"), False))


async def test_request_body_after_response_headers_is_phase_error(rt: Runtime) -> None:
    ex = Exchange(rt)
    await send(ex, "qwen.test", CHAT)
    await ex.handle(ResponseHeaders({":status": "200", "content-type": "application/json"}, False))
    with pytest.raises(PhaseError):
        await ex.handle(RequestBody(b"{}", True))


async def test_events_after_skip_or_reject_are_phase_errors(rt: Runtime) -> None:
    ex = Exchange(rt)
    assert isinstance(await ex.handle(RequestHeaders(req_headers("nope.test", "/"), False)), Reject)
    with pytest.raises(PhaseError):
        await ex.handle(RequestBody(b"{}", True))
    ex = Exchange(rt)
    assert isinstance(await send(ex, "qwen.test", b"{bad"), Reject)
    with pytest.raises(PhaseError):
        await ex.handle(ResponseHeaders({":status": "200"}, False))


async def test_request_without_body_then_response(rt: Runtime) -> None:
    ex = Exchange(rt)
    await ex.handle(
        RequestHeaders(req_headers("qwen.test", "/v1/models", {":method": "GET"}), True)
    )
    hd = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "application/json"}, False)
    )
    assert hd.mode is not None and hd.mode.response_body is BodyMode.NONE  # type: ignore[union-attr]


async def test_close_reports_once(rt: Runtime) -> None:
    records: list[ExchangeRecord] = []
    ex = Exchange(rt, on_done=records.append)
    await send(ex, "qwen.test", CHAT)
    ex.close()
    ex.close()
    assert len(records) == 1 and records[0].route == "r-qwen"


async def test_envoys_local_reply_before_any_request_message_passes(rt: Runtime) -> None:
    # Envoy refused the request (an escaped slash) before the filters ran; its
    # 400 still goes through the encoding side of ext_proc.
    ex = Exchange(rt)
    d = await ex.handle(ResponseHeaders({":status": "400"}, False))
    assert isinstance(d, Continue) and d.mode is not None
    assert d.mode.response_body is BodyMode.NONE
