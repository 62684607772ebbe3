"""The exchange state machine, without gRPC, on any provider: client key headers,
upstream errors, model mapping, weights, token rotation, custom settings, the
stream policy, ASM resources, request validation and phases. Each provider's
own requests and answers: test_exchange_<provider>.py; streams:
test_exchange_streaming.py.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

import orjson
import pytest

from extproc.config.runtime import RouteTable, Runtime
from extproc.core.events import (
    CONTINUE,
    BodyMode,
    Continue,
    Reject,
    RequestBody,
    RequestHeaders,
    RequestTrailers,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, ExchangeRecord, Phase, PhaseError
from support import (
    CHAT,
    CLIENT_KEY,
    PROVIDERS,
    answer,
    client_body,
    hdrs,
    req_headers,
    runtime,
    send,
    upstream_body,
)


@pytest.fixture
def rt() -> Runtime:
    # Per test: token pools remember 401/429 answers.
    return runtime(PROVIDERS)


@pytest.mark.parametrize("header", ["x-api-key", "api-key", "x-goog-api-key"])
@pytest.mark.parametrize("host", ["qwen.test", "claude.test", "azure.test", "ollama.test"])
async def test_other_client_key_headers_removed(rt: Runtime, header: str, host: str) -> None:
    """Regression: a Gemini SDK's x-goog-api-key went on to non-Gemini providers."""
    ex = Exchange(rt)
    d = await send(ex, host, CHAT, headers={header: CLIENT_KEY})
    assert isinstance(d, Continue)
    # Either dropped, or overwritten with the provider's own key.
    assert header in d.remove_headers or dict(d.set_headers)[header] != CLIENT_KEY


async def test_unmatched_host_is_refused(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await ex.handle(
        RequestHeaders(req_headers("elsewhere.test", "/v1/chat/completions"), False)
    )
    assert isinstance(d, Reject) and d.status == 404 and d.reason == "no_route"
    assert ex.phase is Phase.DONE


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
