"""AWS credentials and SigV4 signing for Bedrock, through botocore.

`AwsCredentialSource` holds frozen credentials: static keys from the config's
secret references, or botocore's standard chain (environment, shared files,
web identity / IRSA, container and instance metadata). The chain may do
network I/O and refreshes expiring credentials itself; we call it only from a
background task started in `start()` (and in a worker thread), so a request
only ever reads the last frozen credentials and never waits on a refresh.

`SigV4Signer.sign` signs what will actually go upstream: the method, the final
``:authority`` and ``:path`` (as sent, percent-encoded) and the final body,
with ``x-amz-date`` and ``x-amz-content-sha256`` (and ``x-amz-security-token``
when the credentials carry a session token). Nothing here logs a credential;
botocore's own debug lines (the signature) are silenced below WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

log = logging.getLogger("extproc.cloud.aws")
# botocore logs canonical requests and signatures at DEBUG.
logging.getLogger("botocore").setLevel(logging.WARNING)

Pairs = tuple[tuple[str, str], ...]


class NoCredentials(Exception):
    """No usable credentials yet (the chain found none, or its refresh failed)."""


def _chain_resolver() -> Any:
    """botocore's default credential chain, as its clients use it."""
    from botocore.session import get_session

    return get_session().get_credentials()


class AwsCredentialSource:
    """Frozen AWS credentials, refreshed off the request path."""

    def __init__(
        self,
        static: ReadOnlyCredentials | None = None,
        resolver: Callable[[], Any] = _chain_resolver,
        refresh_every_s: float = 60.0,
    ) -> None:
        self._frozen = static
        self._expires = 0.0  # time.time() when temporary credentials expire (0: never)
        self._static = static is not None
        self._resolver = resolver
        self._creds: Any = None  # botocore Credentials / RefreshableCredentials
        self._every = refresh_every_s
        self._task: asyncio.Task[None] | None = None
        self.last_error = ""

    @classmethod
    def from_keys(cls, access_key: str, secret_key: str, token: str = "") -> AwsCredentialSource:
        return cls(static=ReadOnlyCredentials(access_key, secret_key, token or None))

    def current(self) -> ReadOnlyCredentials:
        """The credentials to sign with now; never does I/O."""
        frozen, expires = self._frozen, self._expires
        if frozen is None:
            raise NoCredentials(self.last_error or "AWS credentials are not loaded yet")
        if expires and time.time() >= expires:
            # The refresh kept failing until they expired: AWS would answer 403.
            raise NoCredentials(self.last_error or "AWS credentials expired")
        return frozen

    def _load(self) -> None:
        """Blocking: resolve the chain once, then let botocore refresh (it refreshes
        expiring credentials inside get_frozen_credentials)."""
        if self._creds is None:
            self._creds = self._resolver()
            if self._creds is None:
                raise NoCredentials("the AWS credential chain found no credentials")
        frozen = self._creds.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise NoCredentials("the AWS credential chain returned empty credentials")
        # Temporary credentials (IRSA, container, instance roles) carry an expiry.
        expiry = getattr(self._creds, "_expiry_time", None)
        self._expires = expiry.timestamp() if isinstance(expiry, dt.datetime) else 0.0
        self._frozen = frozen

    async def refresh(self) -> None:
        try:
            await asyncio.to_thread(self._load)
            self.last_error = ""
        except Exception as e:  # any chain failure: keep the last credentials
            # The type only: botocore's messages may quote profile contents.
            self.last_error = f"AWS credentials could not be loaded ({type(e).__name__})"
            log.warning(
                "aws credentials refresh failed", extra={"fields": {"error": type(e).__name__}}
            )

    async def start(self) -> None:
        if self._static or self._task is not None:
            return
        await self.refresh()  # warm before serving; failures retried in the loop
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every if not self.last_error else min(self._every, 5.0))
            await self.refresh()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class SigV4Signer:
    """Signs one upstream request for a service in a region."""

    def __init__(self, source: AwsCredentialSource, region: str, service: str) -> None:
        self.source, self.region, self.service = source, region, service

    def sign(
        self,
        method: str,
        authority: str,
        path: str,
        body: bytes,
        headers: Pairs = (),
    ) -> Pairs:
        """The headers to add: authorization, x-amz-date, x-amz-content-sha256
        (and x-amz-security-token). ``headers`` are signed too (content-type...)."""
        creds = self.source.current()
        sha = payload_hash(body)
        req = AWSRequest(
            method=method,
            url=f"https://{authority}{path}",
            data=body,
            headers={"host": authority, **dict(headers), "x-amz-content-sha256": sha},
        )
        auth = SigV4Auth(
            Credentials(creds.access_key, creds.secret_key, creds.token), self.service, self.region
        )
        auth.add_auth(req)
        out = [
            ("authorization", req.headers["Authorization"]),
            ("x-amz-date", req.headers["X-Amz-Date"]),
            ("x-amz-content-sha256", sha),
        ]
        if creds.token:
            out.append(("x-amz-security-token", creds.token))
        return tuple(out)
