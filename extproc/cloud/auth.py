"""Per-provider upstream auth that is more than a static key: Bedrock's SigV4
signature over the final request, Vertex AI's short-lived OAuth token.

A provider's `UpstreamAuth` is built by the config compiler (no I/O), started
with the server (its background refresh), and read on the request path without
I/O: `token()` when the target is resolved (a 503 in the client's shape when
there is none), `sign()` by the leg over the final method, authority, path,
headers and body.
"""

from __future__ import annotations

from typing import Protocol

from extproc.cloud.aws import AwsCredentialSource, SigV4Signer
from extproc.cloud.gcp import GoogleTokenSource

Pairs = tuple[tuple[str, str], ...]


class UpstreamAuthUnavailable(Exception):
    """No credentials or token to reach the provider with right now."""


class UpstreamAuth(Protocol):
    # True: `sign` authenticates each request (the leg calls it last, over the
    # final request); False: `token` does.
    signs: bool

    def token(self) -> str:
        """The bearer token for this request ("" when the auth is a signature);
        raises UpstreamAuthUnavailable."""

    def sign(self, method: str, authority: str, path: str, body: bytes, headers: Pairs) -> Pairs:
        """Headers that authenticate the final request (() when `token` does it)."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class AwsSigV4Auth:
    """Bedrock: SigV4 with the provider's credentials for its region and service."""

    signs = True

    def __init__(self, source: AwsCredentialSource, region: str, service: str) -> None:
        self.source = source
        self.signer = SigV4Signer(source, region, service)

    def token(self) -> str:
        try:
            self.source.current()
        except Exception as e:
            raise UpstreamAuthUnavailable(str(e)) from None
        return ""

    def sign(self, method: str, authority: str, path: str, body: bytes, headers: Pairs) -> Pairs:
        return self.signer.sign(method, authority, path, body, headers)

    async def start(self) -> None:
        await self.source.start()

    async def aclose(self) -> None:
        await self.source.aclose()


class GoogleBearerAuth:
    """Vertex AI: the current OAuth access token as ``Authorization: Bearer``."""

    signs = False

    def __init__(self, source: GoogleTokenSource) -> None:
        self.source = source

    def token(self) -> str:
        try:
            return self.source.current()
        except Exception as e:
            raise UpstreamAuthUnavailable(str(e)) from None

    def sign(self, method: str, authority: str, path: str, body: bytes, headers: Pairs) -> Pairs:
        return ()

    async def start(self) -> None:
        await self.source.start()

    async def aclose(self) -> None:
        await self.source.aclose()
