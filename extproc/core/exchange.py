"""One HTTP exchange as an explicit state machine (sans-IO).

The transport feeds events (headers and bodies as plain values) and sends back
the decisions. Phases must come in the order Envoy sends them; the allowed
transitions are data (`_ALLOWED`), and anything else raises `PhaseError`.

Request side: route by host/path/headers at request headers (unmatched: skip
every later phase), then on the buffered request body parse, run the route's
processors, pick the provider, translate, inject the key, and rewrite
:authority/:path (with clear_route_cache so Envoy re-routes).
Response side: at response headers pick how to read the body (streamed for
event streams, buffered for JSON, none when nothing needs doing), translate or
tap it for usage, and emit dynamic metadata for Envoy at the end.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from extproc.config.runtime import ProviderRuntime, RouteRuntime, Runtime
from extproc.core.errors import reject
from extproc.core.events import (
    CONTINUE,
    SKIP,
    BodyMode,
    Continue,
    Decision,
    Event,
    Headers,
    ModeOverride,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.request import (
    CHAT,
    EMBEDDINGS,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    OTHER,
    RequestContext,
    endpoint_of,
)
from extproc.core.usage import Usage
from extproc.providers.custom_settings import apply_resolved
from extproc.providers.token_pool import NoTokenAvailable
from extproc.streaming.errors import StreamLimitError
from extproc.translators.base import ProviderTarget, StreamTranslator, TranslationError
from extproc.translators.ollama import NativeStreamTap, native_request, native_response

log = logging.getLogger("extproc.exchange")


class Phase(Enum):
    START = "start"
    REQUEST_HEADERS = "request_headers"
    REQUEST_BODY = "request_body"
    RESPONSE_HEADERS = "response_headers"
    RESPONSE_BODY = "response_body"
    DONE = "done"


# Which phase may follow which. A request without a body goes straight from
# request headers to response headers; so does an Envoy local reply.
_ALLOWED: dict[Phase, frozenset[Phase]] = {
    Phase.START: frozenset({Phase.REQUEST_HEADERS}),
    Phase.REQUEST_HEADERS: frozenset({Phase.REQUEST_BODY, Phase.RESPONSE_HEADERS}),
    Phase.REQUEST_BODY: frozenset({Phase.REQUEST_BODY, Phase.RESPONSE_HEADERS}),
    Phase.RESPONSE_HEADERS: frozenset({Phase.RESPONSE_BODY}),
    Phase.RESPONSE_BODY: frozenset({Phase.RESPONSE_BODY}),
    Phase.DONE: frozenset(),
}

_PHASE_OF = {
    RequestHeaders: Phase.REQUEST_HEADERS,
    RequestBody: Phase.REQUEST_BODY,
    ResponseHeaders: Phase.RESPONSE_HEADERS,
    ResponseBody: Phase.RESPONSE_BODY,
}

_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "")
# Where clients (OpenAI, Anthropic, Azure, Gemini SDKs) put a key: never forwarded
# unless the provider's own key overwrites it.
_CLIENT_KEY_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
_KEY_HEADERS = frozenset(_CLIENT_KEY_HEADERS)


def _client_key_headers(route: RouteRuntime) -> tuple[str, ...]:
    """Headers holding the client's key: the usual ones and the route's `header:<name>` sources."""
    if route.auth is None:
        return _CLIENT_KEY_HEADERS
    extra = tuple(s[7:].lower() for s in route.auth.key_sources if s.startswith("header:"))
    return (*_CLIENT_KEY_HEADERS, *extra)


_DECISIONS = (Continue, Reject)


class PhaseError(Exception):
    """Envoy sent a message the exchange cannot take in its current phase."""

    def __init__(self, current: Phase, got: Phase):
        super().__init__(f"unexpected {got.value} message in phase {current.value}")
        self.current, self.got = current, got


@dataclass(slots=True)
class ExchangeRecord:
    """What happened, for logs, metrics and budgets (no prompt, no key)."""

    request_id: str = ""
    route: str = ""
    provider: str = ""
    provider_type: str = ""
    consumer: str = ""
    endpoint: str = ""
    model_requested: str = ""
    model_served: str = ""
    stream: bool = False
    status: int = 0
    blocked_reason: str = ""
    usage: Usage | None = None
    guard: str = ""
    started: float = 0.0
    first_byte: float = 0.0
    ended: float = 0.0
    upstream_error: bool = False


class Exchange:
    """Decisions for one HTTP request/response, one ext_proc stream."""

    __slots__ = (
        "_body_parts",
        "_body_size",
        "_include_usage",
        "_native",
        "_on_done",
        "_phase",
        "_provider",
        "_resp_parts",
        "_resp_size",
        "_resp_status",
        "_stream_tx",
        "_target",
        "authenticate",
        "ctx_headers",
        "endpoint",
        "record",
        "route",
        "runtime",
    )

    def __init__(
        self,
        runtime: Runtime,
        on_done: Callable[[ExchangeRecord], None] | None = None,
        # May return an awaitable (e.g. a budget store lookup); it is awaited.
        authenticate: Callable[[RequestContext], Reject | Awaitable[Reject | None] | None]
        | None = None,
    ) -> None:
        self.runtime = runtime
        self._phase = Phase.START
        self._on_done = on_done
        self.authenticate = authenticate
        self.route: RouteRuntime | None = None
        self.record = ExchangeRecord()
        self._body_parts: list[bytes] = []
        self._body_size = 0
        self._provider: ProviderRuntime | None = None
        self._target: ProviderTarget | None = None
        self._include_usage = False
        self._native = False
        self._stream_tx: StreamTranslator | None = None
        self._resp_status = 0
        self._resp_parts: list[bytes] = []
        self._resp_size = 0
        self.endpoint = OTHER
        self.ctx_headers: Headers = {}

    @property
    def phase(self) -> Phase:
        return self._phase

    def _advance(self, to: Phase) -> None:
        if to not in _ALLOWED[self._phase]:
            raise PhaseError(self._phase, to)
        self._phase = to

    # -- dispatch ----------------------------------------------------------

    async def handle(self, event: Event) -> Decision:
        """Any event, in order. Async only because processors may call out."""
        kind = type(event)
        self._advance(_PHASE_OF[kind])
        # Exact type checks: cheaper than isinstance/isawaitable on every message.
        if kind is RequestHeaders:
            d = self._request_headers(event)  # type: ignore[arg-type]
            return d if type(d) in _DECISIONS else await d  # type: ignore[misc,return-value]
        if kind is RequestBody:
            return await self._request_body(event)  # type: ignore[arg-type]
        if kind is ResponseHeaders:
            return self._response_headers(event)  # type: ignore[arg-type]
        return self._response_body(event)  # type: ignore[arg-type]

    def close(self) -> None:
        """The stream ended (normally or not): report what happened, once."""
        if self._phase is Phase.DONE:
            return
        self._phase = Phase.DONE
        if self.route is not None and self._on_done is not None:
            self.record.ended = time.monotonic()
            self._on_done(self.record)

    # -- request -----------------------------------------------------------

    def _request_headers(self, ev: RequestHeaders) -> Decision | Awaitable[Decision]:
        h = ev.headers
        path = h.get(":path", "/")
        route = self.runtime.routes.match(h.get(":authority") or h.get("host", ""), path, h)
        if route is None:
            self._phase = Phase.DONE  # nothing more will come: we skip the rest
            return SKIP
        self.route = route
        self.ctx_headers = h
        self.endpoint = endpoint_of(path, route.client_api)
        rec = self.record
        rec.started = time.monotonic()
        rec.request_id = h.get("x-request-id", "")
        rec.route = route.name
        rec.endpoint = self.endpoint
        if ev.end_of_stream:
            return self._bodyless(h)
        return CONTINUE

    async def _bodyless(self, h: Headers) -> Decision:
        """A request without a body (GET /v1/models, ...): auth and key only."""
        route = self.route
        assert route is not None
        if self.endpoint in (CHAT, EMBEDDINGS, OLLAMA_CHAT, OLLAMA_GENERATE):
            return self._reject(
                reject(400, "The request body is empty.", "empty_body", route.client_api)
            )
        ctx = RequestContext(route, h, self.endpoint, {})
        if (rej := await self._authenticate(ctx)) is not None:
            return self._reject(rej)
        self.record.consumer = ctx.consumer or ""
        prov = route.pick_provider()
        return self._passthrough(prov, h, ctx)

    async def _authenticate(self, ctx: RequestContext) -> Reject | None:
        if self.authenticate is None:
            return None
        rej = self.authenticate(ctx)
        return await rej if inspect.isawaitable(rej) else rej

    async def _request_body(self, ev: RequestBody) -> Decision:
        route = self.route
        assert route is not None
        api = route.client_api
        self._body_size += len(ev.body)
        if self._body_size > self.runtime.limits.max_request_bytes:
            return self._reject(
                reject(
                    413,
                    f"The request body is larger than {self.runtime.limits.max_request_bytes} bytes.",
                    "body_too_large",
                    api,
                )
            )
        if not ev.end_of_stream:
            # Only in streamed request mode: keep the parts until the end.
            self._body_parts.append(ev.body)
            return CONTINUE
        raw = b"".join((*self._body_parts, ev.body)) if self._body_parts else ev.body
        self._body_parts = []
        h = self.ctx_headers
        ctype = h.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in _JSON_TYPES and not ctype.endswith("+json"):
            return self._reject(
                reject(
                    415,
                    f"Content-Type {ctype!r} is not supported; send application/json.",
                    "unsupported_media_type",
                    api,
                )
            )
        if not raw.strip():
            return self._reject(reject(400, "The request body is empty.", "empty_body", api))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            return self._reject(
                reject(400, f"The request body is not valid JSON: {e.args[0]}", "invalid_json", api)
            )
        if not isinstance(body, dict):
            return self._reject(
                reject(400, "The request body must be a JSON object.", "invalid_body", api)
            )
        endpoint = self.endpoint
        if endpoint in (CHAT, OLLAMA_CHAT):
            msgs = body.get("messages")
            if msgs is None:
                return self._reject(reject(400, "'messages' is required.", "missing_messages", api))
            if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
                return self._reject(
                    reject(
                        400,
                        "'messages' must be an array of message objects.",
                        "invalid_messages",
                        api,
                    )
                )
        elif endpoint == OLLAMA_GENERATE and not isinstance(body.get("prompt", ""), str):
            return self._reject(reject(400, "'prompt' must be a string.", "invalid_prompt", api))

        ctx = RequestContext(route, h, endpoint, body)
        if (rej := await self._authenticate(ctx)) is not None:
            return self._reject(rej)
        self.record.consumer = ctx.consumer or ""
        for p in route.processors:
            rej = await p.aprocess(ctx) if p.is_async else p.process(ctx)
            if rej is not None:
                self.record.guard = ctx.annotations.get("guard", "")
                return self._reject(rej)
        self.record.guard = ctx.annotations.get("guard", "")
        prov = route.pick_provider()
        if endpoint == OTHER or prov.protocol == "original":
            return self._passthrough(prov, h, ctx)
        return self._translate(prov, ctx, raw)

    def _pick_token(self, prov: ProviderRuntime) -> str | Reject:
        if prov.tokens is None:
            return ""
        try:
            return prov.tokens.pick()
        except NoTokenAvailable as e:
            assert self.route is not None
            return reject(
                503,
                f"No API token of provider {prov.name!r} is available: {e}",
                "no_token_available",
                self.route.client_api,
                headers=(("retry-after", str(max(1, int(e.retry_in_s + 0.999)))),),
            )

    def _translate(self, prov: ProviderRuntime, ctx: RequestContext, raw: bytes) -> Decision:
        route = self.route
        assert route is not None
        api = route.client_api
        body = ctx.body
        rec = self.record
        requested = body.get("model")
        requested = requested if isinstance(requested, str) else ""
        model = requested or prov.default_model
        if prov.mapper is not None:
            model = prov.mapper.map(model)
        stream_field = body.get("stream")
        if isinstance(stream_field, bool):
            stream = stream_field
        elif api == "ollama" and self.endpoint != EMBEDDINGS:
            stream = True  # Ollama streams unless told not to
        else:
            stream = bool(prov.default_stream)
        if stream and not route.allow_streaming:
            return self._reject(
                reject(
                    400,
                    f'Route {route.name!r} does not allow streaming requests; send "stream": false.',
                    "streaming_not_allowed",
                    api,
                )
            )
        if not stream and not route.allow_non_streaming:
            return self._reject(
                reject(
                    400,
                    f'Route {route.name!r} only allows streaming requests; send "stream": true.',
                    "non_streaming_not_allowed",
                    api,
                )
            )
        so = body.get("stream_options")
        self._include_usage = isinstance(so, dict) and so.get("include_usage") is True
        token = self._pick_token(prov)
        if isinstance(token, Reject):
            return self._reject(token)
        target = ProviderTarget(
            type=prov.type,
            host=prov.host,
            base_path=prov.base_path,
            api_key=token,
            model=model,
            stream=stream,
            settings=prov.options,
        )
        self._provider, self._target = prov, target
        rec.provider, rec.provider_type = prov.name, prov.type
        rec.model_requested = requested
        rec.model_served = model
        rec.stream = stream
        tx = prov.translator
        new_body: bytes | None
        try:
            if api == "ollama":
                # Ollama-native client and upstream: the client's bytes go on
                # (only a mapped model is rewritten).
                self._native = True
                sent = orjson.dumps(body) if ctx.modified else raw
                up = native_request(
                    self.ctx_headers.get(":path", "/").split("?", 1)[0], sent, body, target
                )
                new_body = None if up.body is raw else up.body
            elif self.endpoint == EMBEDDINGS:
                up = tx.embeddings_request(body, target)
                new_body = up.body
            elif prov.openai_compatible and self.endpoint == CHAT:
                # Cheap path: compare dicts and keep the client's exact bytes
                # when nothing changed.
                out = tx.prepare_chat_body(body, target)  # type: ignore[attr-defined]
                if prov.custom_settings:
                    apply_resolved(out, prov.custom_settings)
                up = None
                new_body = None if (not ctx.modified and out == body) else orjson.dumps(out)
                path = tx.chat_path(target)  # type: ignore[attr-defined]
                set_h = tx.auth_headers(target)  # type: ignore[attr-defined]
                rm_h: tuple[str, ...] = ()
            else:
                up = tx.chat_request(body, target)
                new_body = up.body
                if prov.custom_settings:
                    new_body = orjson.dumps(
                        apply_resolved(orjson.loads(new_body), prov.custom_settings)
                    )
        except TranslationError as e:
            return self._reject(reject(400, str(e), "untranslatable_request", api))
        if up is not None:
            path, set_h, rm_h = up.path, up.headers, up.remove_headers
        headers = list(set_h)
        remove = [
            n
            for n in _client_key_headers(route)
            if n in self.ctx_headers and all(n != k for k, _ in set_h)
        ]
        remove += [n for n in rm_h if n not in remove]
        if new_body is not None:
            headers.append(("content-length", str(len(new_body))))
            if all(k != "content-type" for k, _ in set_h):
                headers.append(("content-type", "application/json"))
        self._add_consumer_header(ctx, headers)
        reroute = False
        if route.rewrite:
            headers.append((":authority", prov.host))
            headers.append((":path", path))
            reroute = True
        return Continue(
            set_headers=tuple(headers),
            remove_headers=tuple(remove),
            body=new_body,
            clear_route_cache=reroute,
        )

    def _add_consumer_header(
        self, ctx: RequestContext | None, headers: list[tuple[str, str]]
    ) -> None:
        route = self.route
        if (
            ctx is not None
            and ctx.consumer
            and route is not None
            and route.auth
            and route.auth.forward_consumer_header
        ):
            headers.append((route.auth.forward_consumer_header, ctx.consumer))

    def _passthrough(
        self, prov: ProviderRuntime, h: Headers, ctx: RequestContext | None
    ) -> Decision:
        """Key injection (and host rewrite) without touching the body."""
        route = self.route
        assert route is not None
        token = self._pick_token(prov)
        if isinstance(token, Reject):
            return self._reject(token)
        self._provider = prov
        self.record.provider, self.record.provider_type = prov.name, prov.type
        target = ProviderTarget(
            prov.type, prov.host, prov.base_path, token, "", False, prov.options
        )
        self._target = target
        # Only the provider's auth headers: building a chat request from an
        # empty body fails for the native translators (claude, gemini, ollama).
        # Non-credential headers (anthropic-version) the client sent are kept.
        auth = prov.translator.auth_headers(target)
        headers = [(k, v) for k, v in auth if k in _KEY_HEADERS or k not in h]
        remove = [n for n in _client_key_headers(route) if n in h and all(n != k for k, _ in auth)]
        self._add_consumer_header(ctx, headers)
        body = None
        if ctx is not None and ctx.modified:
            # The authenticator removed the client's body key: send the rest.
            body = orjson.dumps(ctx.body)
            headers.append(("content-length", str(len(body))))
        if route.rewrite:
            headers.append((":authority", prov.host))
            # OpenAI-style paths move under an OpenAI-compatible provider's base
            # path (/v1/models -> /compatible-mode/v1/models); others are kept.
            p = h.get(":path", "/")
            if prov.openai_compatible and prov.base_path and p.startswith("/v1/"):
                headers.append((":path", prov.base_path + p[3:]))
        return Continue(
            set_headers=tuple(headers),
            remove_headers=tuple(remove),
            body=body,
            clear_route_cache=route.rewrite,
        )

    def _reject(self, rej: Reject) -> Reject:
        rec = self.record
        rec.status = rej.status
        rec.blocked_reason = rej.reason
        self.close()
        return rej

    # -- response ----------------------------------------------------------

    def _response_headers(self, ev: ResponseHeaders) -> Decision:
        h = ev.headers
        try:
            status = int(h.get(":status", "0"))
        except ValueError:
            status = 0
        self._resp_status = status
        rec = self.record
        rec.status = status
        rec.first_byte = time.monotonic()
        prov, target = self._provider, self._target
        if prov is None or target is None:
            # Bodyless pass-through or an Envoy local reply: nothing to read.
            if ev.end_of_stream:
                self.close()
            return Continue(mode=ModeOverride(response_body=BodyMode.NONE))
        if prov.tokens is not None and target.api_key:
            ra = h.get("retry-after")
            prov.tokens.report(target.api_key, status, float(ra) if ra and ra.isdigit() else None)
        headers = [("x-llm-provider", prov.name)]
        if status >= 400:
            rec.upstream_error = True
        if ev.end_of_stream:
            self.close()
            return Continue(set_headers=tuple(headers))
        ctype = h.get("content-type", "")
        if prov.protocol == "original" or self.endpoint == OTHER:
            return Continue(
                set_headers=tuple(headers), mode=ModeOverride(response_body=BodyMode.NONE)
            )
        if (
            status < 300
            and target.stream
            and ("event-stream" in ctype or "ndjson" in ctype or prov.wire == "ollama")
        ):
            max_line = self.runtime.limits.max_stream_line_bytes
            self._stream_tx = (
                NativeStreamTap(max_line)
                if self._native
                else prov.translator.chat_stream(target, self._include_usage, max_line)
            )
            headers.append(("content-type", self._stream_tx.content_type))
            return Continue(
                set_headers=tuple(headers),
                remove_headers=("content-length",),
                mode=ModeOverride(response_body=BodyMode.STREAMED),
            )
        return Continue(
            set_headers=tuple(headers), mode=ModeOverride(response_body=BodyMode.BUFFERED)
        )

    def _response_body(self, ev: ResponseBody) -> Decision:
        if self._stream_tx is not None:
            return self._stream_chunk(ev)
        self._resp_size += len(ev.body)
        if self._resp_size > self.runtime.limits.max_response_bytes:
            self.close()
            return reject(
                502,
                "The provider's response is larger than the gateway's limit.",
                "response_too_large",
                self.route.client_api if self.route else "openai",
            )
        if not ev.end_of_stream:
            self._resp_parts.append(ev.body)
            return CONTINUE
        raw = b"".join((*self._resp_parts, ev.body)) if self._resp_parts else ev.body
        prov, target = self._provider, self._target
        assert prov is not None and target is not None
        tx = prov.translator
        status = self._resp_status
        if self._native:
            out = native_response(status, raw)
        elif self.endpoint == EMBEDDINGS:
            out = tx.embeddings_response(status, raw, target)
        else:
            out = tx.chat_response(status, raw, target)
        rec = self.record
        rec.usage = out.usage
        if out.model:
            rec.model_served = out.model
        meta = self._metadata()
        self.close()
        body = out.body
        if status >= 400 and target.api_key and target.api_key.encode() in body:
            # A provider that echoes the key in its error must not show it to the client.
            body = body.replace(target.api_key.encode(), b"[redacted]")
        if body is raw or body == raw:
            return Continue(metadata=meta)
        return Continue(
            body=body,
            set_headers=(
                ("content-length", str(len(body))),
                ("content-type", out.content_type),
            ),
            metadata=meta,
        )

    def _stream_chunk(self, ev: ResponseBody) -> Decision:
        st = self._stream_tx
        assert st is not None
        try:
            out = st.feed(ev.body)
            if ev.end_of_stream:
                tail = st.finish()
                out = out + tail if tail else out
        except StreamLimitError as e:
            # A hostile or broken upstream: end the client's stream instead of
            # buffering without bound. An immediate response this late makes
            # Envoy reset the stream (the headers are gone already), so the
            # client's stream ends now and no further chunk reaches us; a
            # Continue would leave Envoy sending chunks to a closed exchange.
            log.error(
                "upstream stream cut off: %s (request_id=%s, provider=%s)",
                e,
                self.record.request_id,
                self.record.provider,
            )
            self.record.upstream_error = True
            self.record.blocked_reason = "stream_limit"
            self.close()
            return reject(
                502,
                "The provider's stream broke the gateway's limits; it was cut off.",
                "stream_limit",
                self.route.client_api if self.route else "openai",
            )
        if not self.record.first_byte and out:
            self.record.first_byte = time.monotonic()
        if not ev.end_of_stream:
            return CONTINUE if out is ev.body else Continue(body=out)
        rec = self.record
        rec.usage = st.usage
        if st.model:
            rec.model_served = st.model
        meta = self._metadata()
        self.close()
        return Continue(body=None if out is ev.body else out, metadata=meta)

    def _metadata(self) -> dict[str, Any]:
        rec = self.record
        u = rec.usage
        fields: dict[str, Any] = {
            "route": rec.route,
            "provider": rec.provider,
            "consumer": rec.consumer,
            "model_requested": rec.model_requested,
            "model_served": rec.model_served,
            "input_tokens": u.input_tokens if u else 0,
            "output_tokens": u.output_tokens if u else 0,
            "total_tokens": u.total_tokens if u else 0,
        }
        return {self.runtime.metadata_namespace: fields}
