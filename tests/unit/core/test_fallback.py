"""A fallback route without gRPC: the router-level exchange (FallbackLeg) and
each attempt's upstream exchange (an Exchange handed an Attempt), fed the events Envoy sends."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.config.fallback import ATTEMPTS_HEADER, FALLBACK_AUTHORITY
from extproc.config.runtime import Runtime
from extproc.core.attempt import Attempt
from extproc.core.events import (
    CONTINUE,
    BodyMode,
    Continue,
    Decision,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, ExchangeRecord
from support import runtime

CONFIG = """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen], default_model: qwen-turbo}
- name: claude
  type: claude
  api_tokens: [sk-ant-1, sk-ant-2]
  model_mapping: {"*": claude-3-5-haiku-latest}
- {name: slow, type: qwen, api_tokens: [sk-slow], default_stream: true}
routes:
- name: chat
  match: {hosts: [chat.test]}
  provider: qwen
  fallback: [claude]
  auth: {forward_consumer_header: x-consumer}
- {name: streamy, match: {hosts: [s.test]}, provider: slow, fallback: [claude], allow_streaming: false}
- {name: messages, match: {hosts: [m.test]}, provider: claude, fallback: [qwen], client_api: anthropic}
consumers:
- {name: team-a, keys: [ck-team-a]}
"""

CHAT = {"messages": [{"role": "user", "content": "Hello?"}]}


@pytest.fixture
def rt() -> Runtime:
    return runtime(CONFIG)


def cont(d: Decision) -> Continue:
    assert isinstance(d, Continue), d
    return d


# -- router level ----------------------------------------------------------------


async def router_request(
    rt: Runtime, body: dict[str, Any], host: str = "chat.test"
) -> tuple[Exchange, Decision]:
    ex = Exchange(rt)
    h = {
        ":authority": host,
        ":path": "/v1/chat/completions",
        ":method": "POST",
        "content-type": "application/json",
        "authorization": "Bearer ck-team-a",
        "x-request-id": "rid-1",
    }
    assert await ex.handle(RequestHeaders(h, False)) is CONTINUE
    return ex, await ex.handle(RequestBody(orjson.dumps(body), True))


async def test_router_level_routes_to_the_fallback_route_by_metadata(rt: Runtime) -> None:
    _, d = await router_request(rt, CHAT)
    c = cont(d)
    assert dict(c.set_headers)[":authority"] == FALLBACK_AUTHORITY
    assert c.clear_route_cache
    # No provider key, and the client's key headers are gone.
    assert "authorization" in c.remove_headers and "x-api-key" in c.remove_headers
    assert all("sk-" not in v for _, v in c.set_headers)
    assert c.metadata == {
        "llm_extproc": {"fallback": "chat", "consumer": "", "path": "/v1/chat/completions"}
    }
    # The stream decision is pinned in the body, so every attempt agrees.
    assert c.body is not None and orjson.loads(c.body)["stream"] is False


async def test_a_provider_whose_keys_all_cool_down_goes_last(rt: Runtime) -> None:
    from google.protobuf import json_format

    from extproc.transport.codec import to_proto

    tokens = rt.providers["qwen"].tokens
    assert tokens is not None
    tokens.report("sk-qwen", 429)
    ex, d = await router_request(rt, CHAT)
    c = cont(d)
    assert c.metadata is not None
    # Envoy's priority-group specifier reads the order from its own namespace.
    order = {"priority_groups": [{"name": "attempt-2"}, {"name": "attempt-1"}]}
    assert c.metadata["llm_extproc.fallback"] == order
    sent = to_proto("request_body", c).dynamic_metadata
    assert json_format.MessageToDict(sent)["llm_extproc.fallback"] == order
    # An attempt without a response is named from this request's order.
    resp = {":status": "200", "x-llm-provider": "qwen", "x-envoy-attempt-count": "2"}
    await ex.handle(ResponseHeaders({**resp, ATTEMPTS_HEADER: "2:qwen:200"}, True))
    assert [a["provider"] for a in ex.record.attempt_statuses()] == ["claude", "qwen"]
    tokens.report("sk-qwen", 200)  # back: the default order, no override
    _, d = await router_request(rt, CHAT)
    assert "llm_extproc.fallback" not in (cont(d).metadata or {})


async def test_router_level_applies_the_route_stream_policy_with_the_first_provider(
    rt: Runtime,
) -> None:
    # slow streams by default; the route forbids streaming: the client must say.
    _, d = await router_request(rt, CHAT, host="s.test")
    assert isinstance(d, Reject) and d.status == 400 and d.reason == "streaming_not_allowed"


async def test_router_level_reads_the_answer_and_hides_the_attempt_list(rt: Runtime) -> None:
    done: list[ExchangeRecord] = []
    ex = Exchange(rt, on_done=done.append)
    h = {":authority": "chat.test", ":path": "/v1/chat/completions", "x-request-id": "r"}
    await ex.handle(RequestHeaders(h, False))
    await ex.handle(RequestBody(orjson.dumps({**CHAT, "model": "gpt-4o"}), True))
    resp = {
        ":status": "200",
        "content-type": "application/json",
        "x-llm-provider": "claude",
        "x-envoy-attempt-count": "2",
        ATTEMPTS_HEADER: "1:qwen:429,2:claude:200",
    }
    c = cont(await ex.handle(ResponseHeaders(resp, False)))
    assert c.remove_headers == (ATTEMPTS_HEADER,)
    assert c.set_headers == ()  # x-llm-provider is the attempt's to set
    assert c.mode is not None and c.mode.response_body is BodyMode.BUFFERED
    body = {
        "object": "chat.completion",
        "model": "claude-x",
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    c = cont(await ex.handle(ResponseBody(orjson.dumps(body), True)))
    assert c.body is None  # already the client's shape: untouched
    (rec,) = done
    assert (rec.provider, rec.provider_type, rec.attempts) == ("claude", "claude", 2)
    assert rec.attempt_statuses() == [
        {"attempt": 1, "provider": "qwen", "status": 429},
        {"attempt": 2, "provider": "claude", "status": 200},
    ]
    assert rec.usage is not None and rec.usage.total_tokens == 7
    assert rec.model_requested == "gpt-4o" and rec.model_served == "claude-x"
    assert c.metadata is not None and c.metadata["llm_extproc"]["attempts"] == 2


async def test_attempts_without_a_response_are_filled_in(rt: Runtime) -> None:
    """Attempt 1 never reported (no connection, reset or timeout): its provider
    is the chain's first, its status 0."""
    done: list[ExchangeRecord] = []
    ex = Exchange(rt, on_done=done.append)
    h = {":authority": "chat.test", ":path": "/v1/chat/completions"}
    await ex.handle(RequestHeaders(h, False))
    await ex.handle(RequestBody(orjson.dumps(CHAT), True))
    resp = {
        ":status": "200",
        "x-llm-provider": "claude",
        "x-envoy-attempt-count": "3",
        ATTEMPTS_HEADER: "2:claude:503,3:qwen:200",
    }
    await ex.handle(ResponseHeaders(resp, True))
    (rec,) = done
    assert [(a["attempt"], a["provider"], a["status"]) for a in rec.attempt_statuses()] == [
        (1, "qwen", 0),
        (2, "claude", 503),
        (3, "qwen", 200),
    ]


async def test_an_answer_envoy_made_itself_becomes_the_clients_error(rt: Runtime) -> None:
    ex, _ = await router_request(rt, CHAT)
    c = cont(
        await ex.handle(ResponseHeaders({":status": "503", "content-type": "text/plain"}, False))
    )
    assert c.mode is not None and c.mode.response_body is BodyMode.BUFFERED
    c = cont(await ex.handle(ResponseBody(b"upstream connect error or disconnect/reset", True)))
    assert c.body is not None
    err = orjson.loads(c.body)["error"]
    assert err["code"] == "providers_unavailable" and err["type"] == "server_error"
    assert "upstream connect error" in err["message"] and "'chat'" in err["message"]


async def test_the_usage_chunk_is_hidden_from_a_client_that_did_not_ask(rt: Runtime) -> None:
    ex, _ = await router_request(rt, {**CHAT, "stream": True})
    resp = {":status": "200", "content-type": "text/event-stream", "x-llm-provider": "claude"}
    c = cont(await ex.handle(ResponseHeaders(resp, False)))
    assert c.mode is not None and c.mode.response_body is BodyMode.STREAMED
    chunk = b'data: {"object":"chat.completion.chunk","model":"m","choices":[{"delta":{"content":"hi"}}]}\n\n'
    usage = b'data: {"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}\n\n'
    c = cont(await ex.handle(ResponseBody(chunk + usage + b"data: [DONE]\n\n", True)))
    assert c.body is not None and b"usage" not in c.body and b'"hi"' in c.body
    assert ex.record.usage is not None and ex.record.usage.total_tokens == 3


async def test_an_anthropic_client_gets_envoys_answer_in_anthropics_shape(rt: Runtime) -> None:
    ex = Exchange(rt)
    h = {":authority": "m.test", ":path": "/v1/messages", "content-type": "application/json"}
    await ex.handle(RequestHeaders(h, False))
    c = cont(await ex.handle(RequestBody(orjson.dumps({"max_tokens": 5, **CHAT}), True)))
    assert c.body is not None and orjson.loads(c.body)["stream"] is False
    await ex.handle(ResponseHeaders({":status": "504"}, False))
    c = cont(await ex.handle(ResponseBody(b"upstream request timeout", True)))
    assert c.body is not None
    err = orjson.loads(c.body)
    assert err["type"] == "error" and "upstream request timeout" in err["error"]["message"]


async def test_count_tokens_gets_no_stream_field(rt: Runtime) -> None:
    ex = Exchange(rt)
    h = {":authority": "m.test", ":path": "/v1/messages/count_tokens"}
    await ex.handle(RequestHeaders(h, False))
    c = cont(await ex.handle(RequestBody(orjson.dumps(CHAT), True)))
    assert c.body is None  # forwarded as the client sent it


# -- one attempt ------------------------------------------------------------------

META = {"llm_extproc": {"fallback": "chat", "consumer": "team-a", "path": "/v1/chat/completions"}}


async def attempt(
    rt: Runtime,
    provider: str,
    headers: dict[str, str] | None = None,
    meta: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    done: list[ExchangeRecord] | None = None,
) -> tuple[Exchange, Decision]:
    ex = Exchange(rt, on_done=done.append if done is not None else None, attempt=Attempt(provider))
    h = {
        ":authority": FALLBACK_AUTHORITY,
        ":path": "/v1/chat/completions",
        "content-type": "application/json",
        "x-request-id": "rid-1",
        "x-envoy-attempt-count": "1",
        **(headers or {}),
    }
    d = await ex.handle(RequestHeaders(h, False, META if meta is None else meta))
    if isinstance(d, Reject):
        return ex, d
    assert d is CONTINUE
    raw = orjson.dumps({**CHAT, "stream": False} if body is None else body)
    return ex, await ex.handle(RequestBody(raw, True))


async def test_an_attempt_translates_for_its_provider_and_injects_its_key(rt: Runtime) -> None:
    _, d = await attempt(rt, "claude")
    c = cont(d)
    h = dict(c.set_headers)
    assert h[":authority"] == "api.anthropic.com" and h[":path"] == "/v1/messages"
    assert h["x-api-key"] in ("sk-ant-1", "sk-ant-2")
    assert h["x-consumer"] == "team-a"  # the route's forward_consumer_header
    assert not c.clear_route_cache  # an upstream filter cannot re-route
    assert c.body is not None
    sent = orjson.loads(c.body)
    assert sent["model"] == "claude-3-5-haiku-latest" and h["content-length"] == str(len(c.body))


async def test_an_attempt_removes_what_the_previous_attempt_set(rt: Runtime) -> None:
    # Envoy hands attempt 2 the headers as attempt 1 (claude) left them.
    left = {
        ":authority": "api.anthropic.com",
        ":path": "/v1/messages",
        "x-api-key": "sk-ant-1",
        "anthropic-version": "2023-06-01",
        "content-length": "999",
        "x-envoy-attempt-count": "2",
    }
    body = {**CHAT, "stream": False}
    ex, d = await attempt(rt, "qwen", headers=left, body=body)
    c = cont(d)
    h = dict(c.set_headers)
    assert h[":path"] == "/compatible-mode/v1/chat/completions"
    assert h[":authority"] == "dashscope.aliyuncs.com"
    assert h["authorization"] == "Bearer sk-qwen"
    assert {"x-api-key", "anthropic-version"} <= set(c.remove_headers)
    sent = c.body if c.body is not None else orjson.dumps(body)
    assert h["content-length"] == str(len(sent))
    assert ex.record.attempt == 2


async def test_an_attempt_reports_its_status_up_and_to_the_next_attempt(rt: Runtime) -> None:
    done: list[ExchangeRecord] = []
    meta = {"llm_extproc": {**META["llm_extproc"], "attempt_log": "1:qwen:429"}}
    ex, _ = await attempt(
        rt, "claude", meta=meta, done=done, headers={"x-envoy-attempt-count": "2"}
    )
    c = cont(
        await ex.handle(
            ResponseHeaders({":status": "200", "content-type": "application/json"}, False)
        )
    )
    h = dict(c.set_headers)
    assert h["x-llm-provider"] == "claude"
    assert h[ATTEMPTS_HEADER] == "1:qwen:429,2:claude:200"
    assert c.metadata == {"llm_extproc": {"attempt_log": "1:qwen:429,2:claude:200"}}
    answer = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-latest",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 2, "output_tokens": 1},
    }
    c = cont(await ex.handle(ResponseBody(orjson.dumps(answer), True)))
    assert c.body is not None and orjson.loads(c.body)["object"] == "chat.completion"
    assert c.metadata is None  # the request's metadata is the router level's to emit
    (rec,) = done
    assert (rec.attempt, rec.provider, rec.status, rec.consumer) == (2, "claude", 200, "team-a")


async def test_an_attempt_error_is_translated_and_cools_the_key(rt: Runtime) -> None:
    ex, d = await attempt(rt, "claude")
    key = dict(cont(d).set_headers)["x-api-key"]
    c = cont(
        await ex.handle(
            ResponseHeaders({":status": "429", "content-type": "application/json"}, False)
        )
    )
    assert c.mode is not None and c.mode.response_body is BodyMode.BUFFERED
    err = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    c = cont(await ex.handle(ResponseBody(orjson.dumps(err), True)))
    assert c.body is not None and orjson.loads(c.body)["error"]["message"] == "slow down"
    tokens = rt.providers["claude"].tokens
    assert tokens is not None and tokens.available() == 1
    # The next attempt to claude gets the other key.
    _, d = await attempt(rt, "claude")
    assert dict(cont(d).set_headers)["x-api-key"] != key


async def test_an_attempt_with_every_key_cooling_still_goes_to_the_provider(rt: Runtime) -> None:
    tokens = rt.providers["qwen"].tokens
    assert tokens is not None
    tokens.report("sk-qwen", 429)
    _, d = await attempt(rt, "qwen")
    # Its 429 will move Envoy on; a reject here would end the request.
    assert dict(cont(d).set_headers)["authorization"] == "Bearer sk-qwen"


@pytest.mark.parametrize(
    ("provider", "meta"),
    [
        ("claude", {}),  # no metadata: not sent by the gateway's router-level exchange
        ("claude", {"llm_extproc": {"fallback": "nope"}}),
        ("slow", META),  # not a provider of the route's chain
    ],
)
async def test_an_attempt_the_gateway_did_not_route_gets_no_key(
    rt: Runtime, provider: str, meta: dict[str, Any]
) -> None:
    _, d = await attempt(rt, provider, meta=meta)
    assert isinstance(d, Reject) and d.status == 500 and d.reason == "fallback_unrouted"
    assert b"sk-" not in d.body


def test_attempt_provider_reads_the_grpc_metadata() -> None:
    from extproc.core.attempt import attempt_provider

    assert attempt_provider([("x-llm-extproc-provider", "claude")]) == "claude"
    assert attempt_provider([("a", "b"), ("x-llm-extproc-provider", b"qwen")]) == "qwen"
    assert attempt_provider([("x-request-id", "r"), (":authority", "h")]) == ""
    # h2corn hands over the HTTP/2 request headers as bytes.
    assert attempt_provider([(b":path", b"/p"), (b"x-llm-extproc-provider", b"qwen")]) == "qwen"
