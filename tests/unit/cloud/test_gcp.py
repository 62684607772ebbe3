"""Google access tokens: fetched from a real loopback token endpoint with a
service-account key, refreshed in the background before expiry; a request
only reads the cached token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fake_llm import FakeLLM, FakeReply, FakeRequest

from extproc.cloud.gcp import GoogleTokenSource, NoToken, service_account_credentials
from fake_cloud import Google, service_account


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[FakeLLM, dict[str, Any], Google]]:
    fake = FakeLLM()
    await fake.start()
    info, public = service_account(f"http://127.0.0.1:{fake.port}/token")
    google = Google(public, lifetime_s=3)

    def handler(req: FakeRequest) -> FakeReply:
        status, body, _ = google.token(req.body)
        return FakeReply(status=status, body=body)

    fake.handler = handler
    try:
        yield fake, info, google
    finally:
        await fake.stop()


async def test_token_is_refreshed_before_expiry_without_a_request_waiting(endpoint: Any) -> None:
    fake, info, google = endpoint
    src = GoogleTokenSource(service_account_credentials(info))
    await src.start()
    try:
        first = src.current()
        assert google.valid(f"Bearer {first}")
        assert src.refreshes == 1
        # A 3 s token is refreshed at half its lifetime: read it on a busy
        # "request path" for 3.5 s; every read is instant and always valid.
        seen, slowest = {first}, 0.0
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            tok = src.current()
            slowest = max(slowest, time.perf_counter() - t0)
            assert google.valid(f"Bearer {tok}")
            seen.add(tok)
            await asyncio.sleep(0.02)
        assert src.refreshes >= 2 and len(seen) >= 2
        assert slowest < 0.01  # a dict read, never the token endpoint
        assert all(r.path == "/token" for r in fake.requests)
        assert len(fake.requests) == src.refreshes
    finally:
        await src.aclose()


async def test_no_token_when_the_endpoint_refuses(endpoint: Any) -> None:
    fake, info, _ = endpoint
    fake.handler = lambda req: FakeReply(status=400, body=b'{"error":"invalid_grant","x":"SECRET"}')
    src = GoogleTokenSource(service_account_credentials(info))
    await src.start()
    try:
        with pytest.raises(NoToken) as e:
            src.current()
        assert "SECRET" not in str(e.value)
        assert 0 < src.next_refresh_in() <= 1.0  # retried soon, backing off
    finally:
        await src.aclose()


async def test_bad_key_signature_is_refused_by_the_fake(endpoint: Any) -> None:
    _, info, google = endpoint
    other, _ = service_account(info["token_uri"])
    src = GoogleTokenSource(
        service_account_credentials({**info, "private_key": other["private_key"]})
    )
    await src.start()
    try:
        with pytest.raises(NoToken):
            src.current()
        assert not google.issued
    finally:
        await src.aclose()


async def test_token_traffic_not_logged_at_debug(endpoint: Any, caplog: Any) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    _, info, _ = endpoint
    src = GoogleTokenSource(service_account_credentials(info))
    await src.start()
    try:
        token = src.current()
        assert token not in caplog.text
        assert info["private_key"].splitlines()[1] not in caplog.text
    finally:
        await src.aclose()
