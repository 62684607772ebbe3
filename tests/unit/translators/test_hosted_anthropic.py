"""Anthropic Messages clients to Claude on Bedrock (InvokeModel) and Vertex (rawPredict)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from extproc.streaming.eventstream import encode_event, encode_exception
from extproc.streaming.sse import SSEDecoder
from extproc.translators.base import ProviderTarget
from extproc.translators.bedrock import BEDROCK
from extproc.translators.hosted_anthropic import InvokeStream, exception_status
from extproc.translators.vertex import VERTEX

BODY = {
    "model": "claude-sonnet-4",
    "max_tokens": 64,
    "stream": True,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "hi"}],
}


def t(ptype: str, model: str, stream: bool, **settings: Any) -> ProviderTarget:
    return ProviderTarget(
        ptype, "h", "/v1" if ptype == "vertex" else "", "tok", model, stream, settings
    )


def test_bedrock_invoke_request_model_in_path_version_in_body() -> None:
    target = t("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", True)
    assert BEDROCK.anthropic_native(target)
    req = BEDROCK.anthropic_request(BODY, target)
    assert (
        req.path
        == "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/invoke-with-response-stream"
    )
    body = orjson.loads(req.body)
    assert body == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
    }
    plain = BEDROCK.anthropic_request(BODY, t("bedrock", "anthropic.claude-3-haiku", False))
    assert plain.path.endswith("/invoke")


def test_bedrock_non_claude_models_compose_instead() -> None:
    assert not BEDROCK.anthropic_native(t("bedrock", "meta.llama3-1-8b-instruct-v1:0", False))


def test_vertex_raw_predict_request() -> None:
    target = t("vertex", "claude-sonnet-4@20250514", True, project="my-proj", region="us-east5")
    req = VERTEX.anthropic_request(BODY, target)
    assert req.path == (
        "/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models/"
        "claude-sonnet-4%4020250514:streamRawPredict"
    )
    body = orjson.loads(req.body)
    assert body["anthropic_version"] == "vertex-2023-10-16"
    assert body["stream"] is True and "model" not in body
    assert ("authorization", "Bearer tok") in req.headers


def _chunk(obj: dict[str, Any]) -> bytes:
    return encode_event(
        "chunk", orjson.dumps({"bytes": base64.b64encode(orjson.dumps(obj)).decode(), "p": "ab"})
    )


EVENTS = [
    {
        "type": "message_start",
        "message": {
            "id": "m1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-20250514",
            "content": [],
            "usage": {"input_tokens": 9, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi!"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
    {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {"inputTokenCount": 9, "outputTokenCount": 3},
    },
]


@pytest.mark.parametrize("step", [1, 7, 50, 10_000])
def test_invoke_stream_to_anthropic_sse(step: int) -> None:
    data = b"".join(_chunk(e) for e in EVENTS)
    st = InvokeStream()
    out = b"".join(st.feed(data[i : i + step]) for i in range(0, len(data), step)) + st.finish()
    evs = SSEDecoder().feed(out)
    assert [e.event for e in evs] == [e["type"] for e in EVENTS]
    assert orjson.loads(evs[2].data)["delta"]["text"] == "Hi!"
    assert orjson.loads(evs[-1].data) == {"type": "message_stop"}
    assert st.model == "claude-sonnet-4-20250514"
    assert st.usage is not None and (st.usage.input_tokens, st.usage.output_tokens) == (9, 3)


def test_invoke_stream_exception_is_anthropic_error_event() -> None:
    st = InvokeStream()
    out = st.feed(
        _chunk(EVENTS[0]) + encode_exception("throttlingException", b'{"message":"slow down"}')
    )
    out += st.finish()
    last = SSEDecoder().feed(out)[-1]
    assert last.event == "error"
    assert orjson.loads(last.data)["error"] == {"type": "rate_limit_error", "message": "slow down"}


def test_invoke_stream_cut_off_is_an_error() -> None:
    st = InvokeStream()
    out = st.feed(_chunk(EVENTS[0])) + st.finish()
    assert SSEDecoder().feed(out)[-1].event == "error"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("ThrottlingException", 429),
        ("throttlingException", 429),
        ("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/", 400),
        ("modelStreamErrorException", 502),
        ("Whatever", 500),
    ],
)
def test_exception_status(name: str, status: int) -> None:
    assert exception_status(name) == status
