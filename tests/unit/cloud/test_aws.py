"""SigV4 signing (checked by the fake's independent verifier) and the credential source."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from extproc.cloud.aws import AwsCredentialSource, NoCredentials, SigV4Signer
from fake_cloud import verify_sigv4

HOST = "bedrock-runtime.us-east-1.amazonaws.com"
PATH = "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
BODY = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def _headers(signed: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {"host": HOST, "content-type": "application/json", **dict(signed)}


def test_signature_verifies_over_final_host_path_and_body() -> None:
    signer = SigV4Signer(AwsCredentialSource.from_keys(AK, SK), "us-east-1", "bedrock")
    signed = signer.sign("POST", HOST, PATH, BODY, (("content-type", "application/json"),))
    names = [k for k, _ in signed]
    assert names == ["authorization", "x-amz-date", "x-amz-content-sha256"]
    h = _headers(signed)
    assert verify_sigv4("POST", PATH, h, BODY, AK, SK, "us-east-1") == ""
    # Any change after signing breaks it: body, path, host, region, key.
    assert "content-sha256" in verify_sigv4("POST", PATH, h, BODY + b" ", AK, SK, "us-east-1")
    assert verify_sigv4("POST", PATH.replace("%3A", ":"), h, BODY, AK, SK, "us-east-1") != ""
    assert (
        verify_sigv4("POST", PATH, {**h, "host": "evil.example"}, BODY, AK, SK, "us-east-1") != ""
    )
    assert verify_sigv4("POST", PATH, h, BODY, AK, SK, "us-west-2") != ""
    assert verify_sigv4("POST", PATH, h, BODY, AK, "other-secret", "us-east-1") != ""


def test_session_token_is_sent_and_signed() -> None:
    signer = SigV4Signer(
        AwsCredentialSource.from_keys(AK, SK, "sess-token"), "us-east-1", "bedrock"
    )
    signed = dict(signer.sign("POST", HOST, PATH, BODY))
    assert signed["x-amz-security-token"] == "sess-token"
    assert "x-amz-security-token" in signed["authorization"]
    h = {"host": HOST, **signed}
    assert verify_sigv4("POST", PATH, h, BODY, AK, SK, "us-east-1", token="sess-token") == ""


def test_secret_key_never_in_the_signed_headers() -> None:
    signer = SigV4Signer(AwsCredentialSource.from_keys(AK, SK), "us-east-1", "bedrock")
    assert SK not in repr(signer.sign("POST", HOST, PATH, BODY))


class _Chain:
    """A botocore-like credentials object whose refresh we count."""

    def __init__(self, fail: bool = False) -> None:
        self.calls, self.fail = 0, fail

    def get_frozen_credentials(self) -> Any:
        from botocore.credentials import ReadOnlyCredentials

        self.calls += 1
        if self.fail:
            raise RuntimeError("metadata service unreachable secret=XYZ")
        return ReadOnlyCredentials(AK, SK, f"tok{self.calls}")


async def test_chain_credentials_load_in_start_and_refresh_in_background() -> None:
    chain = _Chain()
    src = AwsCredentialSource(resolver=lambda: chain, refresh_every_s=0.05)
    with pytest.raises(NoCredentials):
        src.current()
    await src.start()
    try:
        assert src.current().token == "tok1"
        await asyncio.sleep(0.2)
        assert chain.calls >= 3
        assert src.current().token == f"tok{chain.calls}"
    finally:
        await src.aclose()


async def test_chain_failure_is_no_credentials_without_the_message(caplog: Any) -> None:
    src = AwsCredentialSource(resolver=lambda: _Chain(fail=True), refresh_every_s=60)
    await src.start()
    try:
        with pytest.raises(NoCredentials, match="RuntimeError") as e:
            src.current()
        assert "XYZ" not in str(e.value) and "XYZ" not in caplog.text
    finally:
        await src.aclose()


async def test_chain_with_nothing_found() -> None:
    src = AwsCredentialSource(resolver=lambda: None)
    await src.start()
    try:
        with pytest.raises(NoCredentials):
            src.current()
    finally:
        await src.aclose()


def test_nothing_secret_reaches_the_logs_even_at_debug(caplog: Any) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    signer = SigV4Signer(
        AwsCredentialSource.from_keys(AK, SK, "sess-tok-xyz"), "us-east-1", "bedrock"
    )
    signed = dict(signer.sign("POST", HOST, PATH, BODY))
    signature = signed["authorization"].rpartition("Signature=")[2]
    for secret in (SK, "sess-tok-xyz", signature):
        assert secret not in caplog.text


class _Expiring(_Chain):
    """Temporary credentials whose refresh fails after the first load."""

    def __init__(self, expiry: Any) -> None:
        super().__init__()
        self._expiry_time = expiry

    def get_frozen_credentials(self) -> Any:
        if self.calls:
            raise RuntimeError("sts unreachable")
        return super().get_frozen_credentials()


async def test_expired_temporary_credentials_are_not_used() -> None:
    import datetime as dt

    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3)
    src = AwsCredentialSource(resolver=lambda: _Expiring(soon), refresh_every_s=0.05)
    await src.start()
    try:
        assert src.current().token == "tok1"
        await asyncio.sleep(0.5)  # refreshes failed meanwhile, and the credentials expired
        with pytest.raises(NoCredentials, match="RuntimeError"):
            src.current()
    finally:
        await src.aclose()
