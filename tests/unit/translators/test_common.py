from __future__ import annotations

import orjson
import pytest

from extproc.api_errors import error_type_for_status
from extproc.translators.base import TranslationError
from extproc.translators.common import (
    extract_error,
    parse_data_url,
    stop_list,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error":{"message":"m","type":"t"}}', ("m", "t")),
        (b'{"error":"plain"}', ("plain", None)),
        (
            b'[{"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}]',
            ("busy", "UNAVAILABLE"),
        ),
        (b'{"message":"top-level","code":"1211"}', ("top-level", "1211")),
        (b"<html>502</html>", ("<html>502</html>", None)),
        (b"", ("upstream returned an error with no body", None)),
    ],
)
def test_extract_error_shapes(body: bytes, expected: tuple[str, object]) -> None:
    assert extract_error(body) == expected


@pytest.mark.parametrize(
    ("status", "type_"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "server_error"),
        (529, "server_error"),
    ],
)
def test_error_type_for_status(status: int, type_: str) -> None:
    assert error_type_for_status(status) == type_


def test_parse_data_url_and_stop_list() -> None:
    assert parse_data_url("data:image/webp;base64,AAAA") == ("image/webp", "AAAA")
    assert parse_data_url("data:text/plain,hello") is None
    assert parse_data_url("https://x/y.png") is None
    assert stop_list("x") == ["x"]
    assert stop_list(None) is None
    with pytest.raises(TranslationError):
        stop_list([1])


def test_gemini_in_stream_error_event() -> None:
    from extproc.translators.gemini import GeminiStream

    st = GeminiStream("gemini-2.0-flash", include_usage=True)
    err = {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}}
    out = st.feed(b"data: " + orjson.dumps(err) + b"\r\n\r\n")
    payload = orjson.loads(out.removeprefix(b"data: ").strip())
    assert payload["error"]["type"] == "rate_limit_error"
    assert payload["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert st.finish() == b""
