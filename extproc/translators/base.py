"""The contract between the exchange state machine and a provider translator.

One translator per (client API, provider API) pair. Each is sans-IO: dicts and
bytes in, dicts and bytes out. The exchange resolves the provider target first
(host, key, mapped model, settings) and hands it over; the translator decides
the upstream path, auth headers and body shape, and maps responses back to the
client's API. Each provider module also exports its `ProviderSpec` (below),
which the registry lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from extproc.usage import Usage


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
    # The JSON object to send. Kept as a dict so the caller can apply custom
    # settings before the one serialisation.
    payload: dict[str, Any] | None = None
    raw: bytes | None = None  # bytes to send as they are (instead of payload)

    @property
    def body(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.payload)


@dataclass(frozen=True, slots=True)
class TranslatedResponse:
    body: bytes  # in the client's API shape
    usage: Usage | None
    model: str | None  # the model the provider reported serving
    content_type: str = "application/json"


class StreamFacts:
    """What a stream translator learns on the way (`_usage`, `_model`, set by
    the subclass) and the exchange records at the end."""

    _usage: Usage | None = None
    _model: str | None = None

    @property
    def usage(self) -> Usage | None:
        return self._usage

    @property
    def model(self) -> str | None:
        return self._model


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

    def chat_response(self, status: int, body: bytes, target: ProviderTarget) -> TranslatedResponse:
        """A success (status < 400) in the client's shape; errors go to `error_response`."""

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


AuthStyle = Literal["bearer", "optional-bearer", "api-key", "x-api-key", "x-goog-api-key"]
# Where each auto custom setting goes in a wire API's request body; a second
# path is an alias the client may have used for the same thing.
SettingPaths = Mapping[str, tuple[tuple[str, ...], ...]]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Everything the gateway knows about one provider type; one per module entry."""

    type: str  # the config's provider `type`
    translator: Translator
    wire: str  # the API the provider speaks: "openai" | "claude" | "gemini" | "ollama"
    host: str | None  # default upstream authority; None: the config must give one
    base_path: str
    auth: AuthStyle  # how the key is sent ("optional-" when none may be needed)
    supports_embeddings: bool
    settings_paths: SettingPaths  # auto custom settings names and places
    scheme: str = "https"  # how the default host is reached (Envoy's cluster does TLS)
    # Serves OpenAI's Responses API itself: Responses clients pass through.
    responses_native: bool = False

    @property
    def openai_compatible(self) -> bool:
        """Speaks OpenAI chat completions: an unchanged body can go on byte-identical."""
        return self.wire == "openai"
