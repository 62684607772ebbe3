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
from enum import Enum
from typing import Any, Protocol

import orjson

from extproc.prices import Price
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
    spec: ProviderSpec  # set by the spec that lists it

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


Pairs = tuple[tuple[str, str], ...]
# Where each auto custom setting goes in a wire API's request body; a second
# path is an alias the client may have used for the same thing.
SettingPaths = Mapping[str, tuple[tuple[str, ...], ...]]


class Framing(Enum):
    """How a provider frames a streamed answer (the content type it should say)."""

    SSE = "text/event-stream"
    NDJSON = "application/x-ndjson"
    # Binary event frames (AWS event streams): room for providers that use them.
    EVENT_STREAM = "application/vnd.amazon.eventstream"


@dataclass(frozen=True, slots=True)
class HeaderAuth:
    """The key in one header, as ``<scheme> <key>`` (or the bare key without a scheme)."""

    header: str
    scheme: str = ""
    optional: bool = False  # the provider may need no key (self-hosted)

    @property
    def header_names(self) -> tuple[str, ...]:
        return (self.header,)

    def headers(self, api_key: str) -> Pairs:
        if not api_key:
            return ()
        return ((self.header, f"{self.scheme} {api_key}" if self.scheme else api_key),)

    def sign(self, target: ProviderTarget, path: str, headers: Pairs, body: bytes | None) -> Pairs:
        return ()  # the key is a header (`headers`); nothing to sign


class Signer(Protocol):
    """Auth for a provider that signs each request (path, headers and the final
    body): the leg calls `sign` last, after custom settings and serialisation."""

    optional: bool

    @property
    def header_names(self) -> tuple[str, ...]:
        """The headers `sign` sets (never forwarded from a client or another attempt)."""

    def headers(self, api_key: str) -> Pairs:
        """Headers known before the body (usually none)."""

    def sign(
        self, target: ProviderTarget, path: str, headers: Pairs, body: bytes | None
    ) -> Pairs: ...


@dataclass(frozen=True, slots=True)
class ProviderHeader:
    """A header only this provider takes, with its default; ``option`` names the
    provider option that overrides it."""

    name: str
    default: str
    option: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSpec:
    """Everything the gateway knows about one provider type; one per module entry.

    Code outside `translators/` asks the spec, never the type's name."""

    type: str  # the config's provider `type`
    translator: Translator
    wire: str  # the API the provider speaks (named only inside translators/)
    host: str | None  # default upstream authority; None: the config must give one
    base_path: str
    scheme: str = "https"  # how the default host is reached (Envoy's cluster does TLS)
    auth: HeaderAuth | Signer
    framing: Framing = Framing.SSE
    # False: the provider streams in its framing whatever content type it says.
    content_type_reliable: bool = True
    # Sampling fields its chat API accepts; a translated request drops the others.
    sampling: frozenset[str] = frozenset({"temperature", "top_p", "top_k", "seed"})
    headers: tuple[ProviderHeader, ...] = ()  # provider-only headers and their defaults
    native_apis: frozenset[str] = frozenset()  # client APIs it serves as they are
    embeddings: bool = False  # it has an embeddings API (others: a 400)
    settings_paths: SettingPaths = field(default_factory=dict)  # auto custom settings places
    prices: tuple[Price, ...] = ()  # list prices of its common models (cost.py)
    models_of: str = ""  # another type whose models it serves under the same names (prices)
    genai_name: str = ""  # its OpenTelemetry `gen_ai.provider.name` ("": the type)

    def __post_init__(self) -> None:
        # The translator reads its provider's facts (auth, headers) from here.
        self.translator.spec = self

    @property
    def signs(self) -> bool:
        """Its auth signs each request (a `Signer`), rather than sending a key header."""
        return not isinstance(self.auth, HeaderAuth)

    def serves(self, client_api: str) -> bool:
        """It speaks this client API itself: a request can go on as it came."""
        return client_api in self.native_apis

    @property
    def header_names(self) -> tuple[str, ...]:
        """Every header this provider's requests carry that another provider must not get."""
        return (*self.auth.header_names, *(h.name for h in self.headers))

    def upstream_headers(self, target: ProviderTarget) -> Pairs:
        """The key and the provider-only headers of any request to this provider,
        including bodies passed through untouched (``protocol: original``, GETs)."""
        out = self.auth.headers(target.api_key)
        if self.headers:
            out = (
                *((h.name, str(target.settings.get(h.option) or h.default)) for h in self.headers),
                *out,
            )
        return out

    def sign(self, target: ProviderTarget, path: str, headers: Pairs, body: bytes | None) -> Pairs:
        """Headers a signing provider adds to the final request (() for a header key)."""
        return self.auth.sign(target, path, headers, body)
