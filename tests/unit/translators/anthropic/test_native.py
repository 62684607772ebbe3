"""Anthropic client -> claude provider: pass-through with key, version, model mapping, usage tap."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.translators.anthropic.native import (
    NativeStreamTap,
    native_headers,
    native_path,
    native_payload,
    native_response,
)
from extproc.translators.base import ProviderTarget
from extproc.usage import Usage


def target(model: str = "", stream: bool = False, **settings_: Any) -> ProviderTarget:
    return ProviderTarget("claude", "api.anthropic.com", "", "sk-ant-up", model, stream, settings_)


def test_paths() -> None:
    assert native_path(target()) == "/v1/messages"
    assert native_path(target(), count_tokens=True) == "/v1/messages/count_tokens"
    t = ProviderTarget("claude", "h", "/proxy/", "k", "", False, {})
    assert native_path(t) == "/proxy/v1/messages"


def test_headers_key_and_version_default_or_kept() -> None:
    assert dict(native_headers(target(), {})) == {
        "x-api-key": "sk-ant-up",
        "anthropic-version": "2023-06-01",
    }
    # The client's own version header stays: it knows which API it speaks.
    assert dict(native_headers(target(), {"anthropic-version": "2024-10-22"})) == {
        "x-api-key": "sk-ant-up"
    }
    assert ("anthropic-version", "2099-01-01") in native_headers(
        target(anthropic_version="2099-01-01"), {}
    )


def test_body_kept_when_nothing_changes() -> None:
    body = {"model": "claude-x", "max_tokens": 5, "messages": []}
    assert native_payload(body, target("claude-x")) is None
    assert native_payload(body, target("")) is None
    assert native_payload({**body, "stream": False}, target("claude-x")) is None


def test_body_rewritten_for_model_mapping_stream_default_or_processors() -> None:
    body = {"model": "alias", "max_tokens": 5, "messages": []}
    out = native_payload(body, target("claude-real"))
    assert out == {**body, "model": "claude-real"}
    assert body["model"] == "alias"  # the caller's dict is not changed
    out = native_payload(body, target("alias", stream=True))
    assert out is not None and out["stream"] is True
    out = native_payload({**body, "stream": True}, target("alias", stream=False))
    assert out is not None and out["stream"] is False
    out = native_payload({**body, "x": 1}, target("alias"), modified=True)
    assert out == {**body, "x": 1}


def test_json_response_passes_through_with_usage(load: Any) -> None:
    fx = load("claude", "chat_response.json")
    raw = orjson.dumps(fx["body"])
    res = native_response(200, raw)
    assert res.body is raw
    assert res.usage is not None and res.usage.output_tokens == fx["body"]["usage"]["output_tokens"]
    assert res.model == fx["body"]["model"]


def test_error_and_count_tokens_answers_pass_through_without_usage() -> None:
    err = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    res = native_response(529, err)
    assert (res.body, res.usage, res.model) == (err, None, None)
    count = b'{"input_tokens": 14}'
    res = native_response(200, count)
    assert res.body is count and res.usage is None


def run(data: bytes, cuts: list[int] | None = None) -> tuple[bytes, NativeStreamTap]:
    tap = NativeStreamTap()
    out = bytearray()
    pos = 0
    for cut in sorted(cuts or []):
        out += tap.feed(data[pos:cut])
        pos = cut
    out += tap.feed(data[pos:])
    out += tap.finish()
    return bytes(out), tap


def test_stream_passes_byte_for_byte_and_reads_usage(load: Any) -> None:
    data = load("claude", "stream.sse")
    out, tap = run(data)
    assert out == data
    # message_start: 25 input + 10 cache reads, message_delta: 15 output.
    assert tap.usage == Usage.of(35, 15, cached_tokens=10)
    assert tap.model == "claude-sonnet-4-20250514"


def test_stream_without_usage_reports_none() -> None:
    _, tap = run(b'event: ping\ndata: {"type": "ping"}\n\n')
    assert tap.usage is None and tap.model is None


STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c-1",'
    b'"usage":{"input_tokens":7,"output_tokens":1}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"\xc3\xa9\xe4\xb8\x96"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":3}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_tap_splits_anywhere(cuts: list[int]) -> None:
    out, tap = run(STREAM, cuts)
    assert out == STREAM
    assert tap.usage == Usage.of(7, 3)
    assert tap.model == "c-1"
