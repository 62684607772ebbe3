"""Which provider errors are about the key (and so cool it down)."""

from __future__ import annotations

import pytest

from extproc.providers.key_errors import about_the_key


@pytest.mark.parametrize(
    "body",
    [
        b'{"type":"error","error":{"type":"permission_error","message":"no access"}}',
        b'{"type":"error","error":{"type":"authentication_error","message":"bad key"}}',
        b'{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}',
        b'{"error":{"code":403,"message":"API key not valid","status":"PERMISSION_DENIED"}}',
        b'{"code":"AccessDenied.Unpurchased","message":"not purchased"}',
        b'{"code":"InvalidApiKey","message":"Invalid API-key provided."}',
    ],
)
def test_a_403_about_the_key(body: bytes) -> None:
    assert about_the_key(403, body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"error":{"message":"Your request was rejected by our safety system","type":"content_policy_violation"}}',
        b'{"code":"DataInspectionFailed","message":"Input data may contain inappropriate content."}',
        b'{"error":{"message":"blocked","type":"invalid_request_error"}}',
        b"Forbidden",
        b"",
        b'{"error":"forbidden"}',
    ],
)
def test_a_403_about_the_content_is_not(body: bytes) -> None:
    assert not about_the_key(403, body)


def test_statuses() -> None:
    assert about_the_key(401, b"")
    assert not about_the_key(400, b'{"error":{"type":"authentication_error","message":"x"}}')
    assert not about_the_key(429, b"")
