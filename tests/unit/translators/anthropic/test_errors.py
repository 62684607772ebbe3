"""Errors in Anthropic's shape, from any provider's error body."""

from __future__ import annotations

import orjson
import pytest
from anthropic.types import ErrorResponse

from extproc.streaming.sse import SSEDecoder
from extproc.translators.anthropic.errors import (
    error_body,
    error_event,
    error_type_for_status,
    is_anthropic_error,
    map_error,
)


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (413, "request_too_large"),
        (415, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (501, "api_error"),
        (502, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_type_per_status(status: int, etype: str) -> None:
    assert error_type_for_status(status) == etype
    body = orjson.loads(error_body(status, "m"))
    assert body["error"]["type"] == etype
    if etype != "request_too_large":  # in Anthropic's docs (from its CDN), not in the SDK's types
        assert ErrorResponse.model_validate(body).error.type == etype


def test_gateway_code_rides_along() -> None:
    body = orjson.loads(error_body(403, "blocked", "content_denied"))
    assert body == {
        "type": "error",
        "error": {"type": "permission_error", "message": "blocked", "code": "content_denied"},
    }


def test_anthropic_error_passes_unchanged() -> None:
    raw = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"r"}'
    assert is_anthropic_error(raw)
    assert map_error(529, raw) is raw


@pytest.mark.parametrize(
    ("status", "raw", "message", "etype"),
    [
        (
            401,
            b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}',
            "Incorrect API key provided",
            "authentication_error",
        ),
        (
            400,
            b'{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}',
            "API key not valid.",
            "invalid_request_error",
        ),
        (404, b'{"error":"model \\"x\\" not found"}', 'model "x" not found', "not_found_error"),
        (502, b"upstream connect error", "upstream connect error", "api_error"),
        (500, b"", "upstream returned an error with no body", "api_error"),
    ],
)
def test_provider_errors_are_mapped(status: int, raw: bytes, message: str, etype: str) -> None:
    out = orjson.loads(map_error(status, raw))
    err = ErrorResponse.model_validate(out).error
    assert out["type"] == "error"
    assert err.type == etype
    assert err.message == message


def test_error_event_is_a_named_sse_event() -> None:
    (ev,) = SSEDecoder().feed(error_event(429, "slow down"))
    assert ev.event == "error"
    assert orjson.loads(ev.data) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
