"""The response cache through the exchange, without gRPC: after every check
passed a hit is the immediate answer in the client's API (a stream when the
request streams); a miss stores the answer once it completed normally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.cache.service import ResponseCache
from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
from extproc.consumers.auth import Authenticator
from extproc.core.events import (
    CONTINUE,
    Continue,
    Decision,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, ExchangeRecord
from extproc.streaming.ndjson import NDJSONDecoder
from extproc.streaming.sse import SSEDecoder
from harness import free_port

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "providers"
OPENAI_ANSWER = orjson.dumps(orjson.loads((FIX / "openai/chat_response.json").read_text())["body"])
OPENAI_STREAM = (FIX / "openai/stream.sse").read_bytes()
OLLAMA_STREAM = (FIX / "ollama/stream.ndjson").read_bytes()

CONFIG = """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen], default_model: qwen-turbo}
- {name: ollama, type: ollama, base_url: "http://ollama.internal:11434", default_model: llama3.2}
routes:
- name: cached
  match: {hosts: [cached.test]}
  provider: qwen
  auth: {required: true}
  processors: [{regex_guard: {deny_patterns: ["forbidden"]}}]
  cache: {ttl: 60s}
- name: shared
  match: {hosts: [shared.test]}
  provider: qwen
  auth: {required: true}
  cache: {shared: true, max_entry_bytes: 2000}
- name: native
  match: {hosts: [native.test]}
  provider: ollama
  client_api: ollama
  cache: {}
- name: plain
  match: {hosts: [plain.test]}
  provider: qwen
consumers:
- {name: alice, keys: [key-alice]}
- {name: bob, keys: [key-bob]}
- {name: carol, keys: [key-carol], cache_disabled: true}
"""

CHAT = {"model": "qwen-turbo", "messages": [{"role": "user", "content": "Hello?"}]}


class Env:
    def __init__(self, extra: str = "") -> None:
        # `extra` routes go after the others, before the consumers.
        text = CONFIG.replace("consumers:", extra.lstrip("\n") + "consumers:")
        self.rt: Runtime = compile_config(load_text(text), env={})
        self.events: list[tuple[str, str]] = []
        self.cache = ResponseCache(lambda route, ev: self.events.append((route, ev)))
        self.records: list[ExchangeRecord] = []

    def exchange(self) -> Exchange:
        return Exchange(self.rt, self.records.append, Authenticator(self.rt), cache=self.cache)

    async def request(
        self,
        body: dict[str, Any],
        host: str = "cached.test",
        key: str = "key-alice",
        path: str = "/v1/chat/completions",
        **headers: str,
    ) -> tuple[Exchange, Decision]:
        ex = self.exchange()
        h = {
            ":authority": host,
            ":path": path,
            ":method": "POST",
            "content-type": "application/json",
            "authorization": f"Bearer {key}",
            **{k.replace("_", "-"): v for k, v in headers.items()},
        }
        assert await ex.handle(RequestHeaders(h, False)) == CONTINUE
        return ex, await ex.handle(RequestBody(orjson.dumps(body), True))

    async def answer(
        self, ex: Exchange, body: bytes, status: int = 200, ctype: str = "application/json"
    ) -> tuple[Continue, Decision]:
        hd = await ex.handle(
            ResponseHeaders({":status": str(status), "content-type": ctype}, False)
        )
        assert isinstance(hd, Continue)
        d = await ex.handle(ResponseBody(body, True))
        await self.cache.drain()
        return hd, d

    async def stream(self, ex: Exchange, data: bytes, ctype: str = "text/event-stream") -> None:
        hd = await ex.handle(ResponseHeaders({":status": "200", "content-type": ctype}, False))
        assert isinstance(hd, Continue)
        for i in range(0, len(data), 50):
            await ex.handle(ResponseBody(data[i : i + 50], i + 50 >= len(data)))
        await self.cache.drain()


def header(d: Continue | Reject, name: str) -> str | None:
    return (
        next((v for k, v in d.set_headers if k == name), None)
        if isinstance(d, Continue)
        else next((v for k, v in d.headers if k == name), None)
    )


async def test_miss_then_hit_buffered_and_stream() -> None:
    env = Env()
    ex, d = await env.request(CHAT)
    assert isinstance(d, Continue)  # a miss goes upstream
    hd, _ = await env.answer(ex, OPENAI_ANSWER)
    assert header(hd, "x-llm-cache") == "miss"
    assert ("cached", "stored") in env.events

    ex, d = await env.request(CHAT)
    assert isinstance(d, Reject) and d.status == 200 and d.reason == "cache_hit"
    assert header(d, "x-llm-cache") == "hit" and header(d, "content-type") == "application/json"
    assert orjson.loads(d.body) == orjson.loads(OPENAI_ANSWER)
    rec = env.records[-1]
    assert rec.cache == "hit" and rec.status == 200 and not rec.blocked_reason
    assert rec.usage is not None and rec.usage.total_tokens == 1163
    assert rec.consumer == "alice" and rec.provider == "qwen"
    assert d.metadata is not None and d.metadata["llm_extproc"]["cache"] == "hit"

    # The same request streaming: the cached answer as a well-formed stream.
    ex, d = await env.request({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert isinstance(d, Reject) and header(d, "content-type") == "text/event-stream"
    events = SSEDecoder().feed(d.body)
    assert events[-1].data == "[DONE]"
    text = "".join(
        c["delta"].get("content") or ""
        for e in events[:-1]
        for c in orjson.loads(e.data)["choices"]
    )
    assert text == "Hi there!"
    assert orjson.loads(events[-2].data)["usage"]["total_tokens"] == 1163


async def test_stream_miss_then_buffered_hit() -> None:
    env = Env()
    ex, d = await env.request({**CHAT, "stream": True})
    assert isinstance(d, Continue)
    await env.stream(ex, OPENAI_STREAM)
    assert ("cached", "stored") in env.events
    ex, d = await env.request(CHAT)
    assert isinstance(d, Reject) and d.status == 200
    answer = orjson.loads(d.body)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Héllo 世界"}
    assert answer["usage"]["total_tokens"] == 13


async def test_truncated_stream_and_errors_are_not_cached() -> None:
    env = Env()
    ex, _ = await env.request({**CHAT, "stream": True})
    await env.stream(ex, OPENAI_STREAM.replace(b"data: [DONE]\n\n", b""))
    ex, d = await env.request(CHAT)
    assert isinstance(d, Continue)
    hd, _ = await env.answer(ex, b'{"error": {"message": "overloaded"}}', status=503)
    assert header(hd, "x-llm-cache") == "miss"
    ex, d = await env.request(CHAT)
    assert isinstance(d, Continue)  # still nothing cached
    assert ("cached", "stored") not in env.events
    assert ("cached", "incomplete") in env.events


async def test_consumers_isolated_and_shared_routes() -> None:
    env = Env()
    ex, _ = await env.request(CHAT, key="key-alice")
    await env.answer(ex, OPENAI_ANSWER)
    _, d = await env.request(CHAT, key="key-bob")
    assert isinstance(d, Continue)  # bob never gets alice's entry
    ex, _ = await env.request(CHAT, host="shared.test", key="key-alice")
    await env.answer(ex, OPENAI_ANSWER)
    _, d = await env.request(CHAT, host="shared.test", key="key-bob")
    assert isinstance(d, Reject) and d.status == 200


async def test_checks_run_before_a_lookup() -> None:
    env = Env()
    ex, _ = await env.request(CHAT, host="shared.test")
    await env.answer(ex, OPENAI_ANSWER)
    # Shared entry, but no key: the consumer check answers first.
    _, d = await env.request(CHAT, host="shared.test", key="nope")
    assert isinstance(d, Reject) and d.status == 401
    assert header(d, "x-llm-cache") == "miss"
    # A request the regex guard refuses is refused, cached or not.
    bad = {**CHAT, "messages": [{"role": "user", "content": "forbidden"}]}
    _, d = await env.request(bad)
    assert isinstance(d, Reject) and d.status == 403


async def test_client_directives_and_consumer_switch() -> None:
    env = Env()
    ex, _ = await env.request(CHAT, cache_control="no-store")
    await env.answer(ex, OPENAI_ANSWER)
    assert ("cached", "stored") not in env.events
    ex, _ = await env.request(CHAT)
    await env.answer(ex, OPENAI_ANSWER)
    _, d = await env.request(CHAT, cache_control="no-cache")
    assert isinstance(d, Continue)  # lookup skipped
    _, d = await env.request(CHAT)
    assert isinstance(d, Reject)
    # carol has the cache switched off: neither looked up nor stored.
    ex, d = await env.request(CHAT, host="shared.test", key="key-carol")
    assert isinstance(d, Continue)
    await env.answer(ex, OPENAI_ANSWER)
    assert ("shared", "stored") not in env.events


async def test_tool_results_and_large_answers_bypass() -> None:
    env = Env()
    tool = {
        **CHAT,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
    }
    ex, _ = await env.request(tool)
    await env.answer(ex, OPENAI_ANSWER)
    _, d = await env.request(tool)
    assert isinstance(d, Continue)
    assert ("cached", "bypass") in env.events
    big = orjson.loads(OPENAI_ANSWER)
    big["choices"][0]["message"]["content"] = "x" * 3000
    ex, _ = await env.request(CHAT, host="shared.test")
    await env.answer(ex, orjson.dumps(big))
    assert ("shared", "too_large") in env.events
    _, d = await env.request(CHAT, host="shared.test")
    assert isinstance(d, Continue)


async def test_ollama_native_stream_then_buffered() -> None:
    env = Env()
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    ex, d = await env.request(body, host="native.test", path="/api/chat")
    assert isinstance(d, Continue)  # Ollama streams unless told not to
    await env.stream(ex, OLLAMA_STREAM, "application/x-ndjson")
    _, d = await env.request({**body, "stream": False}, host="native.test", path="/api/chat")
    assert isinstance(d, Reject) and d.status == 200
    assert orjson.loads(d.body)["message"]["content"] == "Héllo 世界"
    _, d = await env.request(body, host="native.test", path="/api/chat")
    assert isinstance(d, Reject) and header(d, "content-type") == "application/x-ndjson"
    lines = NDJSONDecoder().feed(d.body)
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 282


async def test_uncached_route_has_no_header() -> None:
    env = Env()
    ex, _ = await env.request(CHAT, host="plain.test")
    hd, _ = await env.answer(ex, OPENAI_ANSWER)
    assert header(hd, "x-llm-cache") is None
    assert env.events == [] and env.records[-1].cache == ""


async def test_redis_unreachable_goes_upstream() -> None:
    env = Env(
        f"""
- name: remote
  match: {{hosts: [remote.test]}}
  provider: qwen
  cache: {{backend: redis, redis_url: "redis://127.0.0.1:{free_port()}/0"}}
"""
    )
    ex, d = await env.request(CHAT, host="remote.test")
    assert isinstance(d, Continue)
    hd, _ = await env.answer(ex, OPENAI_ANSWER)
    assert header(hd, "x-llm-cache") == "miss"
    assert ("remote", "unavailable") in env.events
    await env.cache.aclose()


@pytest.mark.parametrize(
    ("cache", "path"),
    [
        ("{backend: disk}", "routes[0].cache.backend"),
        ("{backend: redis}", "routes[0].cache.redis_url"),
        ("{ttl: 0s}", "routes[0].cache.ttl"),
        ("{lookup_timeout: 5s}", "routes[0].cache.lookup_timeout"),
        ('{key_includes: ["authorization"]}', "routes[0].cache.key_includes[0]"),
        ('{key_includes: [":path"]}', "routes[0].cache.key_includes[0]"),
        ("{max_entry_bytes: 100, max_bytes: 10}", "routes[0].cache.max_entry_bytes"),
        ("{redis_url: 'redis://x'}", "routes[0].cache.redis_url"),
        ("{}, fallback: [qwen2]", "routes[0].cache"),
        ("{}, provider: raw", "routes[0].cache"),
    ],
)
def test_config_errors_name_the_field(cache: str, path: str) -> None:
    text = f"""
providers:
- {{name: qwen, type: qwen, api_tokens: [sk-qwen]}}
- {{name: qwen2, type: qwen, api_tokens: [sk-qwen]}}
- {{name: raw, type: qwen, api_tokens: [sk-qwen], protocol: original}}
routes:
- {{name: r, match: {{hosts: [a.test]}}, provider: qwen, cache: {cache}}}
"""
    with pytest.raises(ConfigError) as ei:
        compile_config(load_text(text), env={})
    assert path in [p for p, _ in ei.value.problems], ei.value.problems


def test_config_defaults_and_budget_redis_url() -> None:
    rt = compile_config(
        load_text(
            """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen]}
routes:
- {name: r, match: {hosts: [a.test]}, provider: qwen, cache: {backend: redis, key_includes: [X-Tenant]}}
budgets: {redis_url: "redis://127.0.0.1:1/0"}
"""
        ),
        env={},
    )
    p = rt.routes.routes[0].cache
    assert p is not None
    assert (p.backend, p.redis_url, p.ttl_s, p.lookup_timeout_s) == (
        "redis",
        "redis://127.0.0.1:1/0",
        300.0,
        0.02,
    )
    assert p.key_includes == ("x-tenant",) and not p.shared


async def test_a_hit_has_no_cost_a_miss_does() -> None:
    env = Env()
    prices = 'observability: {prices: [{provider: qwen, model: "*", input: 1, output: 2}]}\n'
    env.rt = compile_config(load_text(CONFIG + prices), env={})
    ex, _ = await env.request(CHAT)
    await env.answer(ex, OPENAI_ANSWER)
    assert env.records[-1].cost is not None and env.records[-1].cost > 0
    _, d = await env.request(CHAT)
    assert isinstance(d, Reject) and d.metadata is not None
    assert env.records[-1].cache == "hit" and env.records[-1].cost is None
    assert "cost_usd" not in d.metadata["llm_extproc"]


async def test_responses_api_buffered_then_streamed_hit() -> None:
    env = Env(
        """
- name: resp
  match: {hosts: [resp.test]}
  provider: qwen
  client_api: responses
  cache: {}
"""
    )
    body = {"model": "qwen-turbo", "input": "Hello?"}
    ex, d = await env.request(body, host="resp.test", path="/v1/responses")
    assert isinstance(d, Continue)
    _, out = await env.answer(ex, OPENAI_ANSWER)
    assert isinstance(out, Continue) and out.body is not None
    answer = orjson.loads(out.body)
    assert answer["object"] == "response"
    assert ("resp", "stored") in env.events
    _, d = await env.request({**body, "stream": True}, host="resp.test", path="/v1/responses")
    assert isinstance(d, Reject) and header(d, "content-type") == "text/event-stream"
    events = SSEDecoder().feed(d.body)
    assert events[0].event == "response.created" and events[-1].event == "response.completed"
    assert orjson.loads(events[-1].data)["response"] == answer
    _, d = await env.request(body, host="resp.test", path="/v1/responses")
    assert isinstance(d, Reject) and orjson.loads(d.body) == answer
