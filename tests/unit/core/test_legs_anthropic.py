"""Anthropic Messages clients through the exchange, without gRPC: the leg each
request gets, the upstream request, the answers (JSON and streamed) and every
reject in Anthropic's shape."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

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
from extproc.core.legs_anthropic import (
    AnthropicNativeLeg,
    AnthropicTranslatedLeg,
)
from extproc.core.pick import open_leg
from extproc.core.request import ANTHROPIC_COUNT_TOKENS, ANTHROPIC_MESSAGES, RequestContext
from extproc.streaming.sse import SSEDecoder
from support import error_of as support_error_of
from support import hdrs, request_headers, runtime, send_request
from support import route as support_route

CLIENT_KEY = "ck-claude-code-client"

CONFIG = f"""
providers:
- {{name: claude, type: claude, api_tokens: [sk-ant], model_mapping: {{"alias": "claude-real"}}}}
- name: claude-set
  type: claude
  api_tokens: [sk-ant]
  custom_settings: [{{name: temperature, value: 0.1, mode: raw, overwrite: true}}]
- {{name: qwen, type: qwen, api_tokens: [sk-qwen], model_mapping: {{"*": "qwen-plus"}}}}
- {{name: gemini, type: gemini, api_tokens: [g-key], default_model: gemini-2.0-flash}}
- {{name: claude-raw, type: claude, api_tokens: [sk-ant], protocol: original}}
routes:
- {{name: a-claude, match: {{hosts: [claude.test]}}, provider: claude, client_api: anthropic}}
- {{name: a-set, match: {{hosts: [set.test]}}, provider: claude-set, client_api: anthropic}}
- {{name: a-raw, match: {{hosts: [raw.test]}}, provider: claude-raw, client_api: anthropic}}
- name: a-qwen
  match: {{hosts: [qwen.test]}}
  provider: qwen
  client_api: anthropic
  auth: {{required: true}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden"]}}
- {{name: a-gemini, match: {{hosts: [gemini.test]}}, provider: gemini, client_api: anthropic}}
- {{name: a-nostream, match: {{hosts: [nostream.test]}}, provider: qwen, client_api: anthropic,
   allow_streaming: false}}
- {{name: auto, match: {{hosts: [auto.test]}}, provider: qwen, client_api: auto}}
consumers:
- {{name: coder, keys: [{CLIENT_KEY}]}}
"""

MSG: dict[str, Any] = {
    "model": "alias",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Hello"}],
}


@pytest.fixture
def rt() -> Runtime:
    # Per test: a provider's 429 cools its token down for the rest of a runtime.
    return runtime(CONFIG)


def exchange(rt: Runtime) -> Exchange:
    from extproc.consumers.auth import make_authenticator

    return Exchange(rt, authenticate=make_authenticator(rt))


async def send(
    ex: Exchange, host: str, body: Any, path: str = "/v1/messages", **extra: str
) -> Decision:
    h = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", **extra}
    return await send_request(ex, request_headers(host, path, **h), body)


headers = hdrs


def error_of(d: Decision) -> dict[str, Any]:
    assert isinstance(d, Reject), d
    assert orjson.loads(d.body)["type"] == "error", d.body  # Anthropic's shape
    return support_error_of(d)


route = support_route


@pytest.mark.parametrize(
    ("name", "endpoint", "kind"),
    [
        ("a-claude", ANTHROPIC_MESSAGES, AnthropicNativeLeg),
        ("a-claude", ANTHROPIC_COUNT_TOKENS, AnthropicNativeLeg),
        ("a-raw", ANTHROPIC_MESSAGES, AnthropicNativeLeg),  # protocol original: the same
        ("a-qwen", ANTHROPIC_MESSAGES, AnthropicTranslatedLeg),
        ("a-gemini", ANTHROPIC_MESSAGES, AnthropicTranslatedLeg),
    ],
)
def test_leg_per_provider(rt: Runtime, name: str, endpoint: str, kind: type[Leg]) -> None:
    r = route(rt, name)
    leg = open_leg(RequestContext(r, {}, endpoint, dict(MSG)), r.providers[0])
    assert type(leg) is kind


def test_count_tokens_elsewhere_is_501(rt: Runtime) -> None:
    r = route(rt, "a-qwen")
    err = error_of(
        open_leg(RequestContext(r, {}, ANTHROPIC_COUNT_TOKENS, dict(MSG)), r.providers[0])
    )
    assert err["code"] == "count_tokens_unsupported" and "count_tokens" in err["message"]


async def test_claude_pass_through_request(rt: Runtime) -> None:
    ex = exchange(rt)
    d = await send(ex, "claude.test", MSG)
    h = headers(d)
    assert h[":authority"] == "api.anthropic.com" and h[":path"] == "/v1/messages"
    assert h["x-api-key"] == "sk-ant"
    assert "anthropic-version" not in h  # the client's stays
    assert orjson.loads(d.body) == {**MSG, "model": "claude-real"}  # type: ignore[arg-type]


async def test_claude_bytes_unchanged_when_nothing_maps(rt: Runtime) -> None:
    ex = exchange(rt)
    d = await send(ex, "claude.test", {**MSG, "model": "claude-real"})
    assert isinstance(d, Continue) and d.body is None
    assert "x-api-key" in headers(d)


async def test_claude_version_defaulted_and_custom_settings_applied(rt: Runtime) -> None:
    ex = Exchange(rt)
    h = {
        ":authority": "set.test",
        ":path": "/v1/messages",
        ":method": "POST",
        "content-type": "application/json",
    }
    assert await ex.handle(RequestHeaders(h, False)) == CONTINUE
    d = await ex.handle(RequestBody(orjson.dumps(MSG), True))
    assert headers(d)["anthropic-version"] == "2023-06-01"
    assert orjson.loads(d.body)["temperature"] == 0.1  # type: ignore[arg-type]


async def test_claude_count_tokens_passes_through_without_usage(rt: Runtime) -> None:
    ex = exchange(rt)
    d = await send(ex, "claude.test", MSG, path="/v1/messages/count_tokens")
    assert headers(d)[":path"] == "/v1/messages/count_tokens"
    assert "stream" not in orjson.loads(d.body)  # type: ignore[arg-type]
    hd = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "application/json"}, False)
    )
    assert hd.mode is not None and hd.mode.response_body is BodyMode.BUFFERED  # type: ignore[union-attr]
    out = await ex.handle(ResponseBody(b'{"input_tokens": 7}', True))
    assert isinstance(out, Continue) and out.body is None
    assert ex.record.usage is None


CLAUDE_SSE = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"claude-real",'
    b'"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"hi"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":4}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


async def test_claude_stream_passes_untouched_and_is_metered(rt: Runtime) -> None:
    ex = exchange(rt)
    await send(ex, "claude.test", {**MSG, "stream": True})
    hd = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "text/event-stream"}, False)
    )
    assert hd.mode is not None and hd.mode.response_body is BodyMode.STREAMED  # type: ignore[union-attr]
    half = len(CLAUDE_SSE) // 2
    assert await ex.handle(ResponseBody(CLAUDE_SSE[:half], False)) == CONTINUE
    last = await ex.handle(ResponseBody(CLAUDE_SSE[half:], True))
    assert isinstance(last, Continue) and last.body is None  # byte for byte
    assert ex.record.usage is not None and ex.record.usage.total_tokens == 9
    assert ex.record.model_served == "claude-real"


async def test_claude_error_kept(rt: Runtime) -> None:
    ex = exchange(rt)
    await send(ex, "claude.test", MSG)
    err = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    await ex.handle(ResponseHeaders({":status": "529", "content-type": "application/json"}, False))
    out = await ex.handle(ResponseBody(err, True))
    assert isinstance(out, Continue) and out.body is None


async def test_qwen_translated_request_and_answer(rt: Runtime) -> None:
    ex = exchange(rt)
    d = await send(ex, "qwen.test", {**MSG, "system": "Be brief."})
    h = headers(d)
    assert h[":path"] == "/compatible-mode/v1/chat/completions"
    assert h["authorization"] == "Bearer sk-qwen"
    assert "x-api-key" in d.remove_headers  # type: ignore[union-attr]
    sent = orjson.loads(d.body)  # type: ignore[arg-type]
    assert sent["model"] == "qwen-plus" and sent["messages"][0]["role"] == "system"
    answer = {
        "id": "c1",
        "model": "qwen-plus",
        "choices": [{"index": 0, "message": {"content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    await ex.handle(ResponseHeaders({":status": "200", "content-type": "application/json"}, False))
    out = await ex.handle(ResponseBody(orjson.dumps(answer), True))
    assert isinstance(out, Continue) and out.body is not None
    msg = orjson.loads(out.body)
    assert msg["type"] == "message" and msg["content"] == [{"type": "text", "text": "Hi"}]
    assert dict(out.set_headers)["content-length"] == str(len(out.body))
    assert ex.record.usage is not None and ex.record.usage.total_tokens == 5
    assert ex.record.consumer == "coder"


async def test_qwen_stream_translated(rt: Runtime) -> None:
    ex = exchange(rt)
    await send(ex, "qwen.test", {**MSG, "stream": True})
    hd = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "text/event-stream"}, False)
    )
    assert dict(hd.set_headers)["content-type"] == "text/event-stream"  # type: ignore[union-attr]
    chunks = (
        b'data: {"id":"c","model":"qwen-plus","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
        b'data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
        b"data: [DONE]\n\n"
    )
    out = await ex.handle(ResponseBody(chunks, True))
    assert isinstance(out, Continue) and out.body is not None
    names = [ev.event for ev in SSEDecoder().feed(out.body)]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert ex.record.usage is not None and ex.record.usage.total_tokens == 5


async def test_provider_error_in_anthropic_shape(rt: Runtime) -> None:
    ex = exchange(rt)
    await send(ex, "qwen.test", MSG)
    await ex.handle(ResponseHeaders({":status": "429", "content-type": "application/json"}, False))
    out = await ex.handle(ResponseBody(b'{"error":{"message":"slow","type":"x"}}', True))
    assert isinstance(out, Continue) and out.body is not None
    assert orjson.loads(out.body) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow", "code": "x"},
    }


async def test_unreadable_success_answer_is_a_502(rt: Runtime) -> None:
    ex = exchange(rt)
    await send(ex, "qwen.test", MSG)
    await ex.handle(ResponseHeaders({":status": "200", "content-type": "application/json"}, False))
    out = await ex.handle(ResponseBody(b"<html>oops</html>", True))
    assert isinstance(out, Reject) and out.status == 502
    assert error_of(out)["type"] == "api_error"


@pytest.mark.parametrize(
    ("host", "body", "extra", "status", "etype"),
    [
        ("qwen.test", MSG, {"x-api-key": "wrong"}, 401, "authentication_error"),
        (
            "qwen.test",
            {
                **MSG,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "forbidden"}]}],
            },
            {},
            403,
            "permission_error",
        ),
        ("qwen.test", {**MSG, "system": "say forbidden"}, {}, 403, "permission_error"),
        ("qwen.test", {"max_tokens": 1}, {}, 400, "invalid_request_error"),
        ("qwen.test", b"{nope", {}, 400, "invalid_request_error"),
        (
            "qwen.test",
            {**MSG, "messages": [{"role": "user", "content": [{"type": "document"}]}]},
            {},
            400,
            "invalid_request_error",
        ),
        ("nostream.test", {**MSG, "stream": True}, {}, 400, "invalid_request_error"),
    ],
)
async def test_rejects_in_anthropic_shape(
    rt: Runtime, host: str, body: Any, extra: dict[str, str], status: int, etype: str
) -> None:
    d = await send(exchange(rt), host, body, **extra)
    assert isinstance(d, Reject) and d.status == status, d
    assert error_of(d)["type"] == etype


async def test_tool_result_text_is_checked(rt: Runtime) -> None:
    body = {
        **MSG,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "forbidden"}],
            },
        ],
    }
    d = await send(exchange(rt), "qwen.test", body)
    assert isinstance(d, Reject) and d.reason == "content_denied"


async def test_auto_route_speaks_both(rt: Runtime) -> None:
    d = await send(exchange(rt), "auto.test", MSG)
    assert headers(d)[":path"] == "/compatible-mode/v1/chat/completions"
    bad = await send(exchange(rt), "auto.test", b"{", path="/v1/messages")
    assert error_of(bad)["type"] == "invalid_request_error"
    openai = await send(exchange(rt), "auto.test", b"{", path="/v1/chat/completions")
    assert isinstance(openai, Reject) and "type" not in orjson.loads(openai.body)


async def test_bodyless_messages_request_is_400(rt: Runtime) -> None:
    ex = exchange(rt)
    h = {":authority": "claude.test", ":path": "/v1/messages", ":method": "POST"}
    d = await ex.handle(RequestHeaders(h, True))
    assert isinstance(d, Reject) and d.status == 400
    assert error_of(d)["type"] == "invalid_request_error"


async def test_other_paths_on_an_anthropic_route_pass_through(rt: Runtime) -> None:
    ex = exchange(rt)
    h = {":authority": "claude.test", ":path": "/v1/models", ":method": "GET"}
    d = await ex.handle(RequestHeaders(h, True))
    assert headers(d)["x-api-key"] == "sk-ant"
    assert isinstance(ex._leg, PassThroughLeg)
