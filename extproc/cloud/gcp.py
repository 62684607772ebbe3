"""Google OAuth access tokens for Vertex AI, through google-auth.

`GoogleTokenSource` holds one access token from a service-account JSON key (a
secret reference in the config) or Application Default Credentials (workload
identity, the metadata server, ``GOOGLE_APPLICATION_CREDENTIALS``). A
background task started in `start()` fetches it and refreshes it before it
expires (at the latest half its lifetime, at most 5 minutes, before expiry),
in a worker thread since google-auth's transports block. A request only reads
the cached token: once warm it never waits on the token endpoint. With no
valid token `current()` raises `NoToken`, which the leg answers with a 503 in
the client's API shape. Tokens and keys are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("extproc.cloud.gcp")
# google-auth and urllib3 may log token requests and responses at DEBUG.
for _name in ("google.auth", "google.oauth2", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_MAX_MARGIN_S = 300.0
_RETRY_MIN_S, _RETRY_MAX_S = 1.0, 30.0


class NoToken(Exception):
    """No valid access token (not fetched yet, or the refresh keeps failing)."""


def service_account_credentials(info: dict[str, Any]) -> Callable[[], Any]:
    def make() -> Any:
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])

    return make


def default_credentials() -> Any:
    import google.auth

    return google.auth.default(scopes=[SCOPE])[0]


def _transport() -> Any:
    import urllib3
    from google.auth.transport.urllib3 import Request

    return Request(urllib3.PoolManager(num_pools=2, timeout=urllib3.Timeout(total=30.0)))


def _epoch(expiry: dt.datetime | None, fallback_s: float) -> float:
    """google-auth's expiry (naive UTC) as a time.time() value."""
    if expiry is None:
        return time.time() + fallback_s
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=dt.UTC)
    return expiry.timestamp()


class GoogleTokenSource:
    """One access token, refreshed in the background before it expires."""

    def __init__(self, factory: Callable[[], Any] = default_credentials) -> None:
        self._factory = factory
        self._creds: Any = None
        self._request: Any = None
        # (token, fetched at, expires at) in time.time() seconds: replaced in one
        # assignment by the refresh thread, read whole by requests.
        self._state: tuple[str, float, float] = ("", 0.0, 0.0)
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self.refreshes = 0  # how many tokens were fetched (tests, debugging)
        self.last_error = ""

    def current(self) -> str:
        """The token for a request now; never does I/O."""
        token, fetched, expires = self._state
        # A little before expiry the token could die in flight: stop using it.
        skew = min(5.0, (expires - fetched) / 10)
        if not token or time.time() >= expires - skew:
            raise NoToken(self.last_error or "no Google access token yet")
        return token

    def _fetch(self) -> None:
        """Blocking: build the credentials once, then refresh them."""
        if self._creds is None:
            self._creds = self._factory()
            self._request = _transport()
        self._creds.refresh(self._request)
        token = self._creds.token
        if not isinstance(token, str) or not token:
            raise NoToken("the token endpoint returned no access token")
        self._state = (token, time.time(), _epoch(self._creds.expiry, 3600.0))

    async def refresh(self) -> bool:
        try:
            await asyncio.to_thread(self._fetch)
        except Exception as e:
            self._failures += 1
            # The type only: google-auth's messages may quote the endpoint's body.
            self.last_error = f"Google access token could not be fetched ({type(e).__name__})"
            log.warning(
                "google token refresh failed", extra={"fields": {"error": type(e).__name__}}
            )
            return False
        self._failures, self.last_error = 0, ""
        self.refreshes += 1
        return True

    def next_refresh_in(self) -> float:
        """Seconds until the next refresh: before expiry, or a backoff after failures."""
        token, fetched, expires = self._state
        if self._failures or not token:
            return min(_RETRY_MAX_S, _RETRY_MIN_S * 2 ** max(0, self._failures - 1))
        margin = min(_MAX_MARGIN_S, (expires - fetched) / 2)
        return max(0.5, expires - margin - time.time())

    async def start(self) -> None:
        if self._task is not None:
            return
        await self.refresh()  # warm before serving; failures retried in the loop
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.next_refresh_in())
            await self.refresh()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
