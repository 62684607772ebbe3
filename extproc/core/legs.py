"""The upstream leg of one request: picked once, it owns the rest of the exchange.

As Envoy AI Gateway creates one translator per request, the exchange picks a
leg when it knows the route, endpoint and provider (`core/pick.py`, the one
function that does), and from then on asks the leg (the `Leg` protocol) for
the upstream request, how to read the response, and the client's answer. No
phase re-tests provider flags. The provider legs:

* `PassThroughLeg`: key injection (and host rewrite) only; bodyless requests,
  endpoints the gateway does not model, `protocol: original`.
* `OpenAICompatLeg`: an OpenAI chat client to an OpenAI-compatible provider;
  the client's exact bytes go on when nothing changed.
* `TranslatedLeg`: a translator between the client's API and the provider's
  (chat, or embeddings on any provider).
* `OllamaNativeLeg`: an Ollama client to Ollama; the client's bytes go on
  (only a mapped model is rewritten).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import orjson

from extproc.api_errors import ollama_error_body
from extproc.client_apis.base import ClientApi
from extproc.client_apis.registry import OPENAI, endpoint_named
from extproc.config.runtime import ProviderRuntime, RouteRuntime
from extproc.core.errors import reject
from extproc.core.events import BodyMode, Continue, Headers, Reject
from extproc.core.record import ExchangeRecord
from extproc.core.request import RequestContext
from extproc.providers.custom_settings import apply_resolved
from extproc.providers.key_errors import about_the_key
from extproc.providers.redact import RedactTap
from extproc.providers.token_pool import NoTokenAvailable
from extproc.translators.base import (
    ProviderTarget,
    StreamTranslator,
    TranslatedResponse,
    UpstreamRequest,
)
from extproc.translators.common import extract_error
from extproc.translators.ollama_native import NativeStreamTap, native_request, native_response
from extproc.translators.registry import CLIENT_KEY_HEADERS

_CLIENT_KEY_HEADERS = CLIENT_KEY_HEADERS
_KEY_HEADERS = frozenset(_CLIENT_KEY_HEADERS)
_REDACTED = b"[redacted]"

Pairs = tuple[tuple[str, str], ...]


def client_key_headers(route: RouteRuntime) -> tuple[str, ...]:
    """Headers holding the client's key: the usual ones and the route's `header:<name>` sources."""
    if route.auth is None:
        return _CLIENT_KEY_HEADERS
    extra = tuple(s[7:].lower() for s in route.auth.key_sources if s.startswith("header:"))
    return (*_CLIENT_KEY_HEADERS, *extra)


def _consumer_header(route: RouteRuntime, ctx: RequestContext) -> Pairs:
    name = route.auth.forward_consumer_header if route.auth else ""
    return ((name, ctx.consumer),) if name and ctx.consumer else ()


@runtime_checkable
class Leg(Protocol):
    """What the exchange asks of the leg it picked (provider legs, the fallback leg)."""

    stream: StreamTranslator | None  # set by `response_mode` for a streamed answer

    def describe(self, rec: ExchangeRecord) -> None:
        """What the request's record knows once the leg is picked."""

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        """The upstream request (raises TranslationError: a 400)."""

    def answer_headers(
        self, status: int, headers: Headers, rec: ExchangeRecord
    ) -> tuple[Pairs, tuple[str, ...]]:
        """At response headers: (headers to set, to remove) on the client's answer."""

    def response_mode(self, status: int, content_type: str, max_line: int) -> BodyMode:
        """At response headers: how to read the body (a stream sets up `stream`)."""

    def response(self, status: int, raw: bytes) -> TranslatedResponse:
        """The whole buffered provider response -> the client's answer."""


class ProviderLeg:
    """What every provider leg shares: the provider, the resolved target, usage and model."""

    __slots__ = ("prov", "requested_model", "route", "stream", "target")

    def __init__(
        self, route: RouteRuntime, prov: ProviderRuntime, target: ProviderTarget, requested: str
    ) -> None:
        self.route, self.prov, self.target = route, prov, target
        self.requested_model = requested
        self.stream: StreamTranslator | None = None

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        raise NotImplementedError

    def describe(self, rec: ExchangeRecord) -> None:
        """What the request's record knows once the leg is picked."""
        rec.provider, rec.provider_type = self.prov.name, self.prov.type
        rec.model_requested, rec.model_served = self.requested_model, self.target.model
        rec.stream = self.target.stream

    def answer_headers(
        self, status: int, headers: Headers, rec: ExchangeRecord
    ) -> tuple[Pairs, tuple[str, ...]]:
        """At response headers: (headers to set, to remove) on the client's answer."""
        self.report_status(status, headers)
        return (("x-llm-provider", self.prov.name),), ()

    def report_status(self, status: int, headers: Headers) -> None:
        """Feed the provider's answer to token rotation (429/401 cool a key down;
        a 403 only once its body says it is about the key: `_report_forbidden`)."""
        tokens, key = self.prov.tokens, self.target.api_key
        if tokens is not None and key:
            ra = headers.get("retry-after")
            tokens.report(key, status, float(ra) if ra and ra.isdigit() else None)

    def _report_forbidden(self, status: int, raw: bytes) -> None:
        tokens, key = self.prov.tokens, self.target.api_key
        if status == 403 and tokens is not None and key and about_the_key(status, raw):
            tokens.set_aside(key)

    def response_mode(self, status: int, content_type: str, max_line: int) -> BodyMode:
        """At response headers: how to read the body (a stream sets up `self.stream`)."""
        return BodyMode.NONE

    def response(self, status: int, raw: bytes) -> TranslatedResponse:
        """The whole buffered provider response -> the client's answer."""
        if status < 400:
            return self._success(status, raw)
        self._report_forbidden(status, raw)
        body = self._error(status, raw)
        key = self.target.api_key
        if key and key.encode() in body:
            # A provider that echoes the key in its error must not show it to the client.
            body = body.replace(key.encode(), _REDACTED)
        return TranslatedResponse(body, None, None)

    def _success(self, status: int, raw: bytes) -> TranslatedResponse:
        return TranslatedResponse(raw, None, None)

    def _error(self, status: int, raw: bytes) -> bytes:
        return self.prov.translator.error_response(status, raw)

    def _mutation(
        self,
        ctx: RequestContext,
        path: str,
        set_h: Pairs,
        rm_h: tuple[str, ...],
        body: bytes | None,
    ) -> Continue:
        """Headers, body and re-route for a request whose body the gateway read."""
        route, h = self.route, ctx.headers
        # A provider that signs its requests signs the final one (path, headers, body).
        spec = self.prov.spec
        if spec.signs:
            set_h = (*set_h, *spec.sign(self.target, path, set_h, body))
        headers = list(set_h)
        remove = [n for n in client_key_headers(route) if n in h and all(n != k for k, _ in set_h)]
        remove += [n for n in rm_h if n not in remove]
        if body is not None:
            headers.append(("content-length", str(len(body))))
            if all(k != "content-type" for k, _ in set_h):
                headers.append(("content-type", "application/json"))
        headers += _consumer_header(route, ctx)
        if route.rewrite:
            headers += ((":authority", self.prov.host), (":path", path))
        return Continue(
            set_headers=tuple(headers),
            remove_headers=tuple(remove),
            body=body,
            clear_route_cache=route.rewrite,
        )


class PassThroughLeg(ProviderLeg):
    """The key (and host) only; the body goes through untouched, the answer
    with only the provider's keys replaced: streamed through a `RedactTap`,
    errors buffered (a 403's body says whether the key is refused)."""

    __slots__ = ()

    def response_mode(self, status: int, content_type: str, max_line: int) -> BodyMode:
        if status >= 400:
            return BodyMode.BUFFERED
        if not self.prov.redactor:
            return BodyMode.NONE  # no key of its own to leak (a keyless provider)
        self.stream = RedactTap(self.prov.redactor, content_type)
        return BodyMode.STREAMED

    def response(self, status: int, raw: bytes) -> TranslatedResponse:
        self._report_forbidden(status, raw)
        # The provider's own bytes, its keys replaced.
        return TranslatedResponse(self.prov.redactor.body(raw), None, None)

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        route, prov, h = self.route, self.prov, ctx.headers
        # Only the provider's auth headers: building a chat request from an
        # empty body fails for the native translators (claude, gemini, ollama).
        # Non-credential headers (anthropic-version) the client sent are kept.
        auth = prov.spec.upstream_headers(self.target)
        headers = [(k, v) for k, v in auth if k in _KEY_HEADERS or k not in h]
        remove = [n for n in client_key_headers(route) if n in h and all(n != k for k, _ in auth)]
        headers += _consumer_header(route, ctx)
        body = None
        if ctx.modified:
            # The authenticator removed the client's body key: send the rest.
            body = orjson.dumps(ctx.body)
            headers.append(("content-length", str(len(body))))
        path = h.get(":path", "/")
        if route.rewrite:
            headers.append((":authority", prov.host))
            # OpenAI-style paths move under an OpenAI-compatible provider's base
            # path (/v1/models -> /compatible-mode/v1/models); others are kept.
            if prov.spec.serves(OPENAI.name) and prov.base_path and path.startswith("/v1/"):
                path = prov.base_path + path[3:]
                headers.append((":path", path))
        # A provider that signs its requests signs what goes on, as it goes on.
        if prov.spec.signs:
            sent = raw if body is None else body
            headers += prov.spec.sign(self.target, path, tuple(headers), sent)
        return Continue(
            set_headers=tuple(headers),
            remove_headers=tuple(remove),
            body=body,
            clear_route_cache=route.rewrite,
        )


class BodyLeg(ProviderLeg):
    """A leg that reads the response: streamed through a translator or buffered."""

    __slots__ = ("include_usage",)

    def __init__(
        self,
        route: RouteRuntime,
        prov: ProviderRuntime,
        target: ProviderTarget,
        requested: str,
        include_usage: bool,
    ) -> None:
        super().__init__(route, prov, target, requested)
        self.include_usage = include_usage

    def response_mode(self, status: int, content_type: str, max_line: int) -> BodyMode:
        if status >= 300 or not self.target.stream:
            return BodyMode.BUFFERED
        spec = self.prov.spec
        streamed = (
            "event-stream" in content_type
            or "ndjson" in content_type
            or spec.framing.value in content_type
            or not spec.content_type_reliable  # it streams in its framing, whatever it says
        )
        if not streamed:
            return BodyMode.BUFFERED
        self.stream = self._stream(max_line)
        return BodyMode.STREAMED

    def _stream(self, max_line: int) -> StreamTranslator:
        return self.prov.translator.chat_stream(self.target, self.include_usage, max_line)

    def _success(self, status: int, raw: bytes) -> TranslatedResponse:
        return self.prov.translator.chat_response(status, raw, self.target)


class OpenAICompatLeg(BodyLeg):
    """OpenAI chat to an OpenAI-compatible provider: bytes kept when nothing changed."""

    __slots__ = ()

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        tx, target = self.prov.translator, self.target
        out = tx.prepare_chat_body(ctx.body, target)  # type: ignore[attr-defined]
        if self.prov.custom_settings:
            apply_resolved(out, self.prov.custom_settings)
        body = None if (not ctx.modified and out == ctx.body) else orjson.dumps(out)
        return self._mutation(
            ctx,
            tx.chat_path(target),  # type: ignore[attr-defined]
            self.prov.spec.upstream_headers(target),
            (),
            body,
        )


class TranslatedLeg(BodyLeg):
    """Chat (or embeddings) through the provider's translator."""

    __slots__ = ("embeddings",)

    def __init__(self, *args: Any, embeddings: bool = False) -> None:
        super().__init__(*args)
        self.embeddings = embeddings

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        tx, target = self.prov.translator, self.target
        up: UpstreamRequest
        if self.embeddings:
            up = tx.embeddings_request(ctx.body, target)
        else:
            up = tx.chat_request(ctx.body, target)
            if self.prov.custom_settings and up.payload is not None:
                # On the dict, before the one serialisation.
                apply_resolved(up.payload, self.prov.custom_settings)
        return self._mutation(ctx, up.path, up.headers, up.remove_headers, up.body)

    def _success(self, status: int, raw: bytes) -> TranslatedResponse:
        if self.embeddings:
            return self.prov.translator.embeddings_response(status, raw, self.target)
        return super()._success(status, raw)


class OllamaNativeLeg(BodyLeg):
    """Ollama client and upstream: the client's bytes go on; usage is read."""

    __slots__ = ()

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        sent = orjson.dumps(ctx.body) if ctx.modified else raw
        path = ctx.headers.get(":path", "/").split("?", 1)[0]
        up = native_request(path, sent, ctx.body, self.target)
        body = None if up.raw is raw else up.raw
        return self._mutation(ctx, up.path, up.headers, up.remove_headers, body)

    def _stream(self, max_line: int) -> StreamTranslator:
        return NativeStreamTap(max_line)

    def _success(self, status: int, raw: bytes) -> TranslatedResponse:
        return native_response(status, raw)

    def _error(self, status: int, raw: bytes) -> bytes:
        return ollama_error_body(extract_error(raw)[0])


# -- what every provider leg needs resolved ------------------------------------


def _pick_token(route: RouteRuntime, prov: ProviderRuntime, api: ClientApi) -> str | Reject:
    if prov.tokens is None:
        return ""
    try:
        return prov.tokens.pick()
    except NoTokenAvailable as e:
        if route.fallback is not None:
            # An attempt of a fallback route: the provider decides (its 429
            # moves Envoy on to the next attempt); a reject here would not.
            return prov.tokens.soonest()
        return reject(
            503,
            f"No API token of provider {prov.name!r} is available: {e}",
            "no_token_available",
            api,
            headers=(("retry-after", str(max(1, int(e.retry_in_s + 0.999)))),),
        )


def passthrough(route: RouteRuntime, prov: ProviderRuntime, api: ClientApi) -> Leg | Reject:
    token = _pick_token(route, prov, api)
    if isinstance(token, Reject):
        return token
    target = ProviderTarget(prov.type, prov.host, prov.base_path, token, "", False, prov.options)
    return PassThroughLeg(route, prov, target, "")


def stream_of(
    route: RouteRuntime,
    endpoint: str,
    api: ClientApi,
    prov: ProviderRuntime,
    body: Mapping[str, Any],
) -> bool | Reject:
    field = body.get("stream")
    if isinstance(field, bool):
        stream = field
    else:
        own = endpoint_named(endpoint).stream_default  # Ollama streams unless told not to
        stream = own if own is not None else bool(prov.default_stream)
    if stream and not route.allow_streaming:
        return reject(
            400,
            f'Route {route.name!r} does not allow streaming requests; send "stream": false.',
            "streaming_not_allowed",
            api,
        )
    if not stream and not route.allow_non_streaming:
        return reject(
            400,
            f'Route {route.name!r} only allows streaming requests; send "stream": true.',
            "non_streaming_not_allowed",
            api,
        )
    return stream


def resolve_target(
    route: RouteRuntime,
    endpoint: str,
    api: ClientApi,
    prov: ProviderRuntime,
    body: Mapping[str, Any],
) -> tuple[ProviderTarget, str, bool] | Reject:
    """(target, requested model, include_usage) for a request whose body was read.
    An endpoint without a "stream" field never streams, whatever the route's policy."""
    policy = endpoint_named(endpoint).stream_policy
    streams = stream_of(route, endpoint, api, prov, body) if policy else False
    if isinstance(streams, Reject):
        return streams
    token = _pick_token(route, prov, api)
    if isinstance(token, Reject):
        return token
    requested = body.get("model")
    requested = requested if isinstance(requested, str) else ""
    model = requested or prov.default_model
    if prov.mapper is not None:
        model = prov.mapper.map(model)
    so = body.get("stream_options")
    include_usage = isinstance(so, dict) and so.get("include_usage") is True
    target = ProviderTarget(
        prov.type, prov.host, prov.base_path, token, model, streams, prov.options
    )
    return target, requested, include_usage
