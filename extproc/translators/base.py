"""The contract between the exchange state machine and a provider translator.

One translator per (client API, provider API) pair. Each is sans-IO: dicts and
bytes in, dicts and bytes out. The exchange resolves the provider target first
(host, key, mapped model, settings) and hands it over; the translator decides
the upstream path, auth headers and body shape, and maps responses back to the
client's API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from extproc.core.usage import Usage


class TranslationError(Exception):
    """The client's request cannot be expressed for this provider (-> 400)."""


@dataclass(frozen=True, slots=True)
class ProviderTarget:
    """Everything resolved about the upstream for one request."""

    type: str  # provider type, e.g. "openai", "qwen", "claude", "gemini", "ollama", "azure"
    host: str  # authority sent upstream (":authority"), e.g. "api.anthropic.com"
    base_path: str  # path prefix from the provider config/catalog, e.g. "/compatible-mode/v1"
    api_key: str  # the provider token picked for this request ("" when none)
    model: str  # model after mapping ("" when the provider needs none)
    stream: bool  # whether the client asked for a stream (after provider default)
    settings: Mapping[str, Any] = field(default_factory=dict)  # provider extras (api_version, ...)


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    path: str  # full ":path" to send upstream, query included
    headers: tuple[tuple[str, str], ...]  # headers to set (auth, content-type, ...)
    remove_headers: tuple[str, ...]  # client headers to drop (e.g. "authorization" for claude)
    body: bytes


@dataclass(frozen=True, slots=True)
class TranslatedResponse:
    body: bytes  # in the client's API shape
    usage: Usage | None
    model: str | None  # the model the provider reported serving
    content_type: str = "application/json"


class StreamTranslator(Protocol):
    """Incremental response translation; one instance per streamed response."""

    content_type: str  # content type the client receives

    def feed(self, chunk: bytes) -> bytes:
        """Take the next upstream bytes (split anywhere); return client bytes to emit now."""

    def finish(self) -> bytes:
        """Upstream ended; return trailing client bytes (e.g. b'data: [DONE]\\n\\n')."""

    @property
    def usage(self) -> Usage | None: ...

    @property
    def model(self) -> str | None: ...


class Translator(Protocol):
    name: str

    def auth_headers(self, target: ProviderTarget) -> tuple[tuple[str, str], ...]:
        """The key (and other always-needed headers) for any request to this provider,
        including bodies passed through untouched (``protocol: original``, GET requests)."""

    def chat_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest: ...

    def chat_response(
        self, status: int, body: bytes, target: ProviderTarget
    ) -> TranslatedResponse: ...

    def chat_stream(
        self, target: ProviderTarget, include_usage: bool, max_line_bytes: int | None = None
    ) -> StreamTranslator:
        """A stream translator; ``max_line_bytes`` bounds the line its decoder holds."""

    def embeddings_request(
        self, body: dict[str, Any], target: ProviderTarget
    ) -> UpstreamRequest: ...

    def embeddings_response(
        self, status: int, body: bytes, target: ProviderTarget
    ) -> TranslatedResponse: ...

    def error_response(self, status: int, body: bytes) -> bytes:
        """Map a non-2xx provider body to the client's error shape, keeping the message."""
