"""Responses API clients through the exchange, without gRPC: the leg each
request gets, the upstream request, the answers (JSON and streamed), the
record, and every reject in OpenAI's shape."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
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
from extproc.core.exchange import Exchange
from extproc.core.legs import Leg, PassThroughLeg
from extproc.core.legs_responses import ResponsesNativeLeg, ResponsesTranslatedLeg
from extproc.core.pick import open_leg
from extproc.core.record import ExchangeRecord
from extproc.core.request import RESPONSES, RESPONSES_STORED, RequestContext, endpoint_of
from extproc.streaming.sse import SSEDecoder

CLIENT_KEY = "ck-codex-client"

CONFIG = f"""
providers:
- {{name: openai, type: openai, api_tokens: [sk-oa], model_mapping: {{"alias": "gpt-real"}}}}
- {{name: azure, type: azure, host: r.openai.azure.com, api_tokens: [az-key],
   options: {{deployment: dep1}}}}
- {{name: qwen, type: qwen, api_tokens: [sk-qwen], model_mapping: {{"*": "qwen-plus"}}}}
- {{name: claude, type: claude, api_tokens: [sk-ant]}}
- {{name: gemini, type: gemini, api_tokens: [g-key], default_model: gemini-2.0-flash}}
- {{name: qwen-raw, type: qwen, api_tokens: [sk-qwen], protocol: original}}
routes:
- {{name: r-openai, match: {{hosts: [openai.test]}}, provider: openai, client_api: responses}}
- {{name: r-azure, match: {{hosts: [azure.test]}}, provider: azure, client_api: responses}}
- name: r-qwen
  match: {{hosts: [qwen.test]}}
  provider: qwen
  auth: {{required: true}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden"]}}
- {{name: r-claude, match: {{hosts: [claude.test]}}, provider: claude, client_api: auto}}
- {{name: r-gemini, match: {{hosts: [gemini.test]}}, provider: gemini, client_api: responses}}
- {{name: r-raw, match: {{hosts: [raw.test]}}, provider: qwen-raw, client_api: responses}}
consumers:
- {{name: coder, keys: [{CLIENT_KEY}], allowed_models: [alias, m]}}
"""

ASK: dict[str, Any] = {"model": "alias", "input": "Hello"}


@pytest.fixture
def rt() -> Runtime:
    return compile_config(load_text(CONFIG), env={})


def exchange(rt: Runtime, records: list[ExchangeRecord] | None = None) -> Exchange:
    from extproc.consumers.auth import make_authenticator

    done = records.append if records is not None else None
    return Exchange(rt, on_done=done, authenticate=make_authenticator(rt))


async def send(
    ex: Exchange, host: str, body: Any, path: str = "/v1/responses", **extra: str
) -> Decision:
    h = {
        ":authority": host,
        ":path": path,
        ":method": "POST",
        "content-type": "application/json",
        "authorization": f"Bearer {CLIENT_KEY}",
        "accept-encoding": "zstd,gzip",
        **extra,
    }
    assert await ex.handle(RequestHeaders(h, False)) == CONTINUE
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return await ex.handle(RequestBody(raw, True))


def route(rt: Runtime, name: str) -> Any:
    return next(r for r in rt.routes.routes if r.name == name)


def error_of(d: Decision) -> dict[str, Any]:
    assert isinstance(d, Reject), d
    return orjson.loads(d.body)["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("api", "path", "endpoint"),
    [
        ("responses", "/v1/responses", RESPONSES),
        ("openai", "/v1/responses", RESPONSES),
        ("auto", "/proxy/v1/responses?x=1", RESPONSES),
        ("openai", "/v1/responses/resp_1", RESPONSES_STORED),
        ("responses", "/v1/responses/resp_1/input_items", RESPONSES_STORED),
        ("responses", "/v1/chat/completions", "other"),
        ("anthropic", "/v1/responses", "other"),
        ("ollama", "/v1/responses", "other"),
    ],
)
def test_endpoint_by_path(api: str, path: str, endpoint: str) -> None:
    assert endpoint_of(path, api) == endpoint


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("r-openai", ResponsesNativeLeg),
        ("r-azure", ResponsesNativeLeg),
        ("r-qwen", ResponsesTranslatedLeg),
        ("r-claude", ResponsesTranslatedLeg),
        ("r-gemini", ResponsesTranslatedLeg),
        ("r-raw", PassThroughLeg),  # protocol original: untouched
    ],
)
def test_leg_per_provider(rt: Runtime, name: str, kind: type[Leg]) -> None:
    r = route(rt, name)
    assert type(open_leg(RequestContext(r, {}, RESPONSES, dict(ASK)), r.providers[0])) is kind


async def test_native_passes_the_clients_bytes(rt: Runtime) -> None:
    raw = orjson.dumps({"model": "gpt-real", "input": "Hello", "previous_response_id": "resp_9"})
    d = await send(exchange(rt), "openai.test", raw)
    assert isinstance(d, Continue) and d.body is None  # nothing mapped: the client's bytes
    h = dict(d.set_headers)
    assert h["authorization"] == "Bearer sk-oa" and h[":path"] == "/v1/responses"
    assert h[":authority"] == "api.openai.com"
    assert "accept-encoding" in d.remove_headers


async def test_native_maps_the_model_and_azure_takes_the_deployment(rt: Runtime) -> None:
    d = await send(exchange(rt), "openai.test", ASK)
    assert isinstance(d, Continue) and d.body is not None
    assert orjson.loads(d.body)["model"] == "gpt-real"
    d = await send(exchange(rt), "azure.test", ASK)
    assert isinstance(d, Continue) and d.body is not None
    h = dict(d.set_headers)
    assert h[":path"] == "/openai/v1/responses" and h["api-key"] == "az-key"
    assert orjson.loads(d.body)["model"] == "dep1"
    assert "authorization" in d.remove_headers


async def test_native_stream_is_tapped_for_usage(rt: Runtime) -> None:
    recs: list[ExchangeRecord] = []
    ex = exchange(rt, recs)
    await send(ex, "openai.test", {**ASK, "stream": True})
    d = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "text/event-stream"}, False)
    )
    assert isinstance(d, Continue) and d.mode is not None
    assert d.mode.response_body is BodyMode.STREAMED
    usage = {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    end = {"type": "response.completed", "response": {"model": "gpt-real-1", "usage": usage}}
    raw = b"event: response.completed\ndata: " + orjson.dumps(end) + b"\n\n"
    last = await ex.handle(ResponseBody(raw, True))
    assert isinstance(last, Continue) and last.body is None  # untouched
    (rec,) = recs
    assert rec.usage is not None and rec.usage.total_tokens == 8
    assert rec.model_served == "gpt-real-1" and rec.endpoint == RESPONSES


async def test_translated_request_and_dropped_tools_header(rt: Runtime) -> None:
    recs: list[ExchangeRecord] = []
    ex = exchange(rt, recs)
    body = {**ASK, "instructions": "Be brief.", "tools": [{"type": "web_search"}], "store": False}
    d = await send(ex, "qwen.test", body)
    assert isinstance(d, Continue) and d.body is not None
    h = dict(d.set_headers)
    assert h[":path"] == "/compatible-mode/v1/chat/completions"
    assert h["authorization"] == "Bearer sk-qwen"
    assert "accept-encoding" in d.remove_headers
    sent = orjson.loads(d.body)
    assert sent["model"] == "qwen-plus" and "store" not in sent and "tools" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    d = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "application/json"}, False)
    )
    assert isinstance(d, Continue)
    assert ("x-llm-dropped-tools", "web_search") in d.set_headers
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "qwen-plus",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    }
    out = await ex.handle(ResponseBody(orjson.dumps(answer), True))
    assert isinstance(out, Continue) and out.body is not None
    resp = orjson.loads(out.body)
    assert resp["object"] == "response" and resp["output"][0]["content"][0]["text"] == "Hi"
    assert resp["usage"]["total_tokens"] == 6
    assert recs[0].usage is not None and recs[0].usage.total_tokens == 6


async def test_translated_stream_cut_off_ends_failed(rt: Runtime) -> None:
    ex = exchange(rt)
    await send(ex, "claude.test", {**ASK, "stream": True})
    d = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "text/event-stream"}, False)
    )
    assert isinstance(d, Continue) and ("content-type", "text/event-stream") in d.set_headers
    start = {
        "type": "message_start",
        "message": {"id": "m", "model": "c", "usage": {"input_tokens": 1}},
    }
    raw = b"event: message_start\ndata: " + orjson.dumps(start) + b"\n\n"
    last = await ex.handle(ResponseBody(raw, True))
    assert isinstance(last, Continue) and last.body is not None
    events = [orjson.loads(e.data) for e in SSEDecoder().feed(last.body)]
    assert events[-1]["type"] == "response.failed"


@pytest.mark.parametrize(
    ("host", "body", "status", "code"),
    [
        ("qwen.test", {**ASK, "previous_response_id": "resp_1"}, 400, "untranslatable_request"),
        (
            "claude.test",
            {**ASK, "input": [{"type": "item_reference", "id": "x"}]},
            400,
            "untranslatable_request",
        ),
        ("qwen.test", {"model": "alias"}, 400, "missing_input"),
        ("qwen.test", {**ASK, "instructions": "say forbidden"}, 403, "content_denied"),
        (
            "qwen.test",
            {
                **ASK,
                "input": [{"type": "function_call_output", "call_id": "c", "output": "forbidden"}],
            },
            403,
            "content_denied",
        ),
        ("qwen.test", {**ASK, "model": "not-allowed"}, 403, None),
        (
            "qwen.test",
            {**ASK, "input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
            400,
            "invalid_content",
        ),
    ],
)
async def test_rejects_in_openai_shape(
    rt: Runtime, host: str, body: dict[str, Any], status: int, code: str | None
) -> None:
    d = await send(exchange(rt), host, body)
    assert isinstance(d, Reject) and d.status == status, d
    err = error_of(d)
    assert err["message"] and "type" in err
    if code:
        assert err["code"] == code


async def test_stored_responses(rt: Runtime) -> None:
    h = {":method": "GET", "authorization": f"Bearer {CLIENT_KEY}"}
    ex = exchange(rt)
    d = await ex.handle(
        RequestHeaders({":authority": "qwen.test", ":path": "/v1/responses/resp_1", **h}, True)
    )
    assert isinstance(d, Reject) and d.status == 404
    assert "keeps no" in error_of(d)["message"]
    ex = exchange(rt)
    d = await ex.handle(
        RequestHeaders({":authority": "openai.test", ":path": "/v1/responses/resp_1", **h}, True)
    )
    assert isinstance(d, Continue)
    assert dict(d.set_headers)["authorization"] == "Bearer sk-oa"
