"""One HTTP exchange as an explicit state machine (sans-IO).

The transport feeds events (headers and bodies as plain values) and sends back
the decisions. Phases must come in the order Envoy sends them; the allowed
transitions are data (`_ALLOWED`), every change of phase goes through
`_advance`, and anything else raises `PhaseError`.

The exchange routes (request headers), parses and validates the body,
authenticates and runs the route's processors, then picks one upstream leg
(`core/pick.py`) that owns the rest: the upstream request, how the response
is read and what the client gets. The exchange keeps the record and emits
Envoy's dynamic metadata at the end. One attempt of a fallback route (a
provider cluster's upstream filter) is the same exchange handed an `Attempt`
(`core/attempt.py`), which stands in for routing, authentication and
processors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import orjson

from extproc.client_apis.base import ClientApi
from extproc.client_apis.registry import DEFAULT, ENDPOINTS, api_of_path, resolve
from extproc.config.runtime import RouteProcessor, RouteRuntime, Runtime
from extproc.core.attempt import Attempt
from extproc.core.buffer import BodyBuffer, TooLarge
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
    RequestTrailers,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.fallback_leg import FallbackLeg
from extproc.core.finish import answer_facts
from extproc.core.legs import BodyLeg, Leg, ProviderLeg
from extproc.core.parse import MAX_JSON_DEPTH, parse_body
from extproc.core.paths import canonical_path, split_query
from extproc.core.pick import open_leg
from extproc.core.record import ExchangeRecord, ModelCall
from extproc.core.request import OTHER, RESERVATION, RequestContext, unreadable
from extproc.core.tracecontext import format_traceparent, our_ids
from extproc.streaming.errors import StreamLimitError
from extproc.translators.base import TranslationError
from extproc.translators.registry import CLIENT_KEY_HEADERS

if TYPE_CHECKING:
    from extproc.cache.service import CacheState, ResponseCache

__all__ = ["Exchange", "ExchangeRecord", "Phase", "PhaseError"]

log = logging.getLogger("extproc.exchange")


class Phase(IntEnum):
    # IntEnum: hashed in C; a plain Enum's Python __hash__ showed in profiles
    # (two table lookups per message).
    START = 0
    REQUEST_HEADERS = 1
    REQUEST_BODY = 2
    REQUEST_TRAILERS = 3
    RESPONSE_HEADERS = 4
    RESPONSE_BODY = 5
    DONE = 6

    @property
    def label(self) -> str:
        return self.name.lower()


# Which phase may follow which. A request without a body goes straight from
# request headers to response headers; so does an Envoy local reply. Trailers
# follow the body (or, with no body, the headers: refused). Any phase may end
# the exchange (a skip, a reject, the last body chunk, a reset).
_ALLOWED: dict[Phase, frozenset[Phase]] = {
    # An Envoy local reply to a request its filters never saw (a path Envoy
    # refused) still passes through the encoding side of ext_proc.
    Phase.START: frozenset({Phase.REQUEST_HEADERS, Phase.RESPONSE_HEADERS, Phase.DONE}),
    Phase.REQUEST_HEADERS: frozenset(
        {Phase.REQUEST_BODY, Phase.REQUEST_TRAILERS, Phase.RESPONSE_HEADERS, Phase.DONE}
    ),
    Phase.REQUEST_BODY: frozenset(
        {Phase.REQUEST_BODY, Phase.REQUEST_TRAILERS, Phase.RESPONSE_HEADERS, Phase.DONE}
    ),
    Phase.REQUEST_TRAILERS: frozenset({Phase.RESPONSE_HEADERS, Phase.DONE}),
    Phase.RESPONSE_HEADERS: frozenset({Phase.RESPONSE_BODY, Phase.DONE}),
    Phase.RESPONSE_BODY: frozenset({Phase.RESPONSE_BODY, Phase.DONE}),
    Phase.DONE: frozenset(),
}

_PHASE_OF = {
    RequestHeaders: Phase.REQUEST_HEADERS,
    RequestBody: Phase.REQUEST_BODY,
    RequestTrailers: Phase.REQUEST_TRAILERS,
    ResponseHeaders: Phase.RESPONSE_HEADERS,
    ResponseBody: Phase.RESPONSE_BODY,
}

# The endpoints a client API models with a body (most: not stored-state reads).
_BODY_ENDPOINTS = frozenset(n for n, e in ENDPOINTS.items() if e.has_body)
_DECISIONS = (Continue, Reject)
# Headers a client key travels in; a passed-through request loses them when they hold a consumer key.
_KEY_HEADERS = CLIENT_KEY_HEADERS
_NO_BODY = Continue(mode=ModeOverride(response_body=BodyMode.NONE))
_REQUEST_SIDE = frozenset({RequestHeaders, RequestBody, RequestTrailers})
OVERHEAD_HEADER = "x-llm-extproc-overhead-ms"
_clock = time.perf_counter
# Envoy's router takes the upstream attempt's deadline from this header (set,
# so overwritten, on every request a leg sends on).
UPSTREAM_TIMEOUT_HEADER = "x-envoy-upstream-rq-per-try-timeout-ms"


def _holds_key(value: str, digests: frozenset[bytes]) -> bool:
    scheme, _, rest = value.strip().partition(" ")
    key = rest.strip() if scheme.lower() == "bearer" else value.strip()
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest() in digests


def _attempt_timeout_s(leg: Leg) -> float:
    """How long Envoy's upstream attempt may wait for its answer to start: the
    provider's timeout; on a fallback route the longest of its chain's,
    unless the route's retry.per_try_timeout (in Envoy's route) bounds it."""
    if isinstance(leg, FallbackLeg):
        fb = leg.route.fallback
        if fb is None or fb.per_try_timeout_s:
            return 0.0
        return max((p.timeout_s for p in fb.providers), default=0.0)
    return leg.prov.timeout_s if isinstance(leg, ProviderLeg) else 0.0


class PhaseError(Exception):
    """Envoy sent a message the exchange cannot take in its current phase."""

    def __init__(self, current: Phase, got: Phase):
        super().__init__(f"unexpected {got.label} message in phase {current.label}")
        self.current, self.got = current, got


class Exchange:
    """Decisions for one HTTP request/response, one ext_proc stream."""

    __slots__ = (
        "_api",
        "_cache",
        "_cstate",
        "_leg",
        "_on_done",
        "_phase",
        "_req_body",
        "_req_body_seen",
        "_resp_body",
        "_resp_status",
        "_t0",
        "_t0_request",
        "attempt",
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
        authenticate: Callable[[RequestContext], Awaitable[Reject | None]] | None = None,
        attempt: Attempt | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.runtime = runtime
        self.attempt = attempt  # one attempt of a fallback route (core/attempt.py)
        self._cache = cache  # the response cache (extproc/cache/), for cached routes
        self._cstate: CacheState | None = None
        self._phase = Phase.START
        self._on_done = on_done
        self.authenticate = authenticate
        self.route: RouteRuntime | None = None
        self.record = ExchangeRecord()
        self._leg: Leg | None = None
        self._req_body_seen = False
        self._resp_status = 0
        self.endpoint = OTHER
        self._api: ClientApi = DEFAULT  # the client API of this request: its errors' shape
        self.ctx_headers: Headers = {}
        # The message being handled: when it started, on which side (our overhead).
        self._t0 = 0.0
        self._t0_request = True

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
        self._t0, self._t0_request = _clock(), kind in _REQUEST_SIDE
        # Exact type checks: cheaper than isinstance/isawaitable on every message.
        d: Any
        try:
            if kind is RequestHeaders:
                d = self._request_headers(event)  # type: ignore[arg-type]
                if type(d) not in _DECISIONS:
                    d = await d
            elif kind is RequestBody:
                d = await self._request_body(event)  # type: ignore[arg-type]
            elif kind is RequestTrailers:
                d = self._request_trailers()
            elif kind is ResponseHeaders:
                d = self._response_headers(event)  # type: ignore[arg-type]
            else:
                d = self._response_body(event)  # type: ignore[arg-type]
        except PhaseError:
            raise
        except Exception as e:
            d = self._failed(e)
        if self._t0:
            self._account()
        return d  # type: ignore[no-any-return]

    def _account(self) -> None:
        """Add the time since the current message arrived to its side's work."""
        dt = _clock() - self._t0
        self._t0 = 0.0
        if self._t0_request:
            self.record.work_request += dt
        else:
            self.record.work_response += dt

    def _failed(self, e: Exception) -> Reject:
        """A bug or an input nothing checked for: the client still gets an
        answer in its API's shape (never Envoy's empty 500), the log the cause."""
        rid = self.record.request_id
        # Type and message only: no traceback, whose locals may hold a key.
        log.error(
            "exchange failed in phase %s: %s: %s (request_id=%s)",
            self._phase.label,
            type(e).__name__,
            str(e)[:300],
            rid,
        )
        msg = "The gateway failed to process this request"
        msg += f" (request id {rid})." if rid else "."
        return self._reject(reject(500, msg, "internal_error", self._api))

    def close(self) -> None:
        """The stream ended (normally or not): report what happened, once."""
        if self._phase is Phase.DONE:
            return
        self._advance(Phase.DONE)
        if self._t0:
            self._account()  # the message that ends the exchange counts too
        if self.route is not None and self._on_done is not None:
            self.record.ended = time.monotonic()
            self._on_done(self.record)

    def _finish(self, d: Decision) -> Decision:
        self.close()
        return d

    def _reject(self, rej: Reject) -> Reject:
        if self.route is not None and self.route.cache is not None:
            rej = dataclasses.replace(rej, headers=(*rej.headers, ("x-llm-cache", "miss")))
        self.record.status = rej.status
        self.record.blocked_reason = rej.reason
        self.close()
        return rej

    # -- request -----------------------------------------------------------

    def _request_headers(self, ev: RequestHeaders) -> Decision | Awaitable[Decision]:
        h = ev.headers
        if self.attempt is not None:
            # The router-level exchange routed (and checked the path of) this request.
            found = self.attempt.start(self.runtime, ev)
            if isinstance(found, Reject):
                return self._finish(found)
            route, path = found, self.attempt.path
            h = {**h, ":path": path}
        else:
            path = h.get(":path", "/")
            bare = split_query(path)[0]
            canon = canonical_path(bare)
            authority = h.get(":authority") or h.get("host", "")
            match = self.runtime.routes.match(authority, path if canon == bare else canon or "", h)
            if canon != bare and (match is not None or not self.runtime.unmatched_pass_through):
                # Another spelling of a path a route checks (`//v1/x`, `/v1/%78`): a
                # provider would take it as that path, so it must not pass unread.
                log.warning("refused a non-canonical path %.200r (host %.100r)", path, authority)
                msg = "The request path is not in canonical form (empty or dot segments, escapes)."
                return self._finish(reject(400, msg, "path_not_canonical", api_of_path(bare)))
            if match is None:
                return self._finish(self._unmatched(h, authority, bare))
            route = match
        self.route = route
        self.ctx_headers = h
        self.endpoint, self._api = resolve(path, route.client_api)
        # Only matched requests buffer anything: a skipped one costs no more.
        limits = self.runtime.limits
        self._req_body = BodyBuffer(limits.max_request_bytes)
        self._resp_body = BodyBuffer(limits.max_response_bytes)
        rec = self.record
        rec.started = time.monotonic()
        rec.request_id = h.get("x-request-id", "")
        rec.route = route.name
        rec.endpoint = self.endpoint
        if self.attempt is not None:
            self.attempt.describe(rec, h)
            if ev.end_of_stream:
                ctx = self._context({})
                return self._start_leg(self._open(ctx, bodyless=True), ctx, b"")
            return CONTINUE
        if self.runtime.tracing is not None and not rec.traceparent:
            rec.traceparent = h.get("traceparent", "")
        if ev.end_of_stream:
            return self._bodyless(route, h)
        return CONTINUE

    def _context(self, body: dict[str, Any]) -> RequestContext:
        assert self.route is not None
        consumer = self.attempt.consumer or None if self.attempt is not None else None
        return RequestContext(self.route, self.ctx_headers, self.endpoint, body, consumer=consumer)

    def _open(self, ctx: RequestContext, bodyless: bool = False) -> Leg | Reject:
        """The leg (core/pick.py): this request's, or this attempt's provider's."""
        if self.attempt is not None:
            return open_leg(ctx, self.attempt.prov, attempt=True, bodyless=bodyless, api=self._api)
        ns = self.runtime.metadata_namespace
        return open_leg(ctx, namespace=ns, bodyless=bodyless, api=self._api)

    def _unmatched(self, h: Headers, authority: str, path: str) -> Decision:
        """No route: refused, or (configured) passed on unread without any consumer key."""
        if not self.runtime.unmatched_pass_through:
            log.info(
                "refused a request no route matches (host %.100r, path %.200r)", authority, path
            )
            msg = "No route of this gateway matches this host and path."
            return reject(404, msg, "no_route", api_of_path(path))
        digests = self.runtime.consumer_key_digests
        strip = tuple(n for n in _KEY_HEADERS if n in h and _holds_key(h[n], digests))
        return Continue(remove_headers=strip, mode=SKIP.mode) if strip else SKIP

    async def _bodyless(self, route: RouteRuntime, h: Headers) -> Decision:
        """A request without a body (GET /v1/models, ...): auth and key only."""
        if self.endpoint in _BODY_ENDPOINTS:
            return self._reject(reject(400, "The request body is empty.", "empty_body", self._api))
        ctx = RequestContext(route, h, self.endpoint, {})
        if (rej := await self._authenticate(ctx)) is not None:
            return self._reject(rej)
        self._admitted(ctx)
        return self._start_leg(self._open(ctx, bodyless=True), ctx, b"")

    def _admitted(self, ctx: RequestContext) -> None:
        """Who passed authentication, and the budget tokens set aside for them
        (settled when the exchange ends, whatever ends it)."""
        self.record.consumer = ctx.consumer or ""
        self.record.reservation = ctx.annotations.get(RESERVATION)

    async def _authenticate(self, ctx: RequestContext) -> Reject | None:
        if self.authenticate is None:
            return None
        return await self.authenticate(ctx)

    def _whole_body(self, ev: RequestBody) -> bytes | Reject:
        """The request body: Envoy buffers it (BUFFERED mode) and sends it in one
        message, without end_of_stream when trailers follow. A second body
        message means the filter streams request bodies: the first part would
        have gone upstream unchecked, so the request is refused."""
        if self._leg is not None or self._req_body_seen:
            log.error(
                "request body in parts: the ext_proc filter must use request_body_mode "
                "BUFFERED (request_id=%s)",
                self.record.request_id,
            )
            msg = "The gateway takes request bodies whole; this one arrived in parts."
            return self._reject(reject(500, msg, "body_in_parts", self._api))
        self._req_body_seen = True
        try:
            return self._req_body.add(ev.body, True) or b""
        except TooLarge as e:
            msg = f"The request body is larger than {e.limit} bytes."
            return self._reject(reject(413, msg, "body_too_large", self._api))

    def _request_trailers(self) -> Decision:
        """Trailers end a request whose body we already answered; trailers with
        no body before them leave nothing we could check or rewrite."""
        if self.route is None or self._leg is not None:
            return CONTINUE
        msg = "A request with trailers needs a body; this one had none."
        return self._reject(reject(400, msg, "trailers_without_body", self._api))

    async def _request_body(self, ev: RequestBody) -> Decision:
        route = self.route
        assert route is not None
        raw = self._whole_body(ev)
        if type(raw) is Reject:
            return raw
        assert isinstance(raw, bytes)
        body = parse_body(self.ctx_headers, raw, self.endpoint, self._api)
        if isinstance(body, Reject):
            return self._reject(body)
        if self.attempt is not None:
            # The router-level exchange authenticated and checked this request.
            ctx = self._context(body)
            return self._start_leg(self._open(ctx), ctx, raw)
        ctx = RequestContext(route, self.ctx_headers, self.endpoint, body, body_bytes=len(raw))
        if (rej := unreadable(ctx)) is not None:
            return self._reject(rej)
        if (rej := await self._authenticate(ctx)) is not None:
            return self._reject(rej)
        self._admitted(ctx)
        for p in route.processors:
            if p.calls_model:
                rej = await self._call(p, ctx)
            else:
                rej = await p.process(ctx)
            if rej is not None:
                self.record.guard = ctx.annotations.get("guard", "")
                return self._reject(rej)
        self.record.guard = ctx.annotations.get("guard", "")
        leg = self._open(ctx)
        if route.cache is not None and isinstance(leg, BodyLeg):
            # Every check passed: only now may the cache answer.
            hit = await self._cache_lookup(route, leg, ctx)
            if hit is not None:
                return hit
        return self._start_leg(leg, ctx, raw)

    async def _cache_lookup(
        self, route: RouteRuntime, leg: BodyLeg, ctx: RequestContext
    ) -> Reject | None:
        """A cache hit as the immediate answer, or None (the request goes upstream)."""
        cache, policy = self._cache, route.cache
        if cache is None or policy is None:
            return None
        rec = self.record
        rec.cache = "miss"
        consumer = ctx.consumer or ""
        st = cache.state_of(
            route=route.name,
            policy=policy,
            provider=leg.prov.name,
            model=leg.target.model,
            endpoint=self.endpoint,
            api=self._api.name,
            consumer=consumer,
            headers=ctx.headers,
            body=ctx.body,
            consumer_disabled=consumer in self.runtime.cache_disabled_consumers,
        )
        if st is None:
            return None
        self._cstate = st
        hit = await cache.lookup(st, ctx.headers, leg.target.stream, leg.include_usage)
        if hit is None:
            return None
        self._cstate = None
        leg.describe(rec)
        rec.cache = "hit"
        rec.status = hit.status
        rec.usage = hit.entry.usage
        rec.model_served = hit.entry.model or rec.model_served
        rec.first_byte = time.monotonic()
        headers = (
            ("content-type", hit.content_type),
            ("x-llm-cache", "hit"),
            ("x-llm-provider", leg.prov.name),
        )
        d = Reject(hit.status, hit.body, headers, "cache_hit", self._end_metadata())
        self.close()
        return d

    async def _call(self, p: RouteProcessor, ctx: RequestContext) -> Reject | None:
        """A processor that calls a model: timed, for the trace and the overhead."""
        t0 = time.monotonic()
        rej = None
        try:
            rej = await p.process(ctx)
        finally:
            t1 = time.monotonic()
            rec = self.record
            rec.waited += t1 - t0
            if p.calls_model == "guard":
                outcome = ctx.annotations.get("guard") or ("error" if rej else "skipped")
            else:
                outcome = "error" if rej is not None else "ok"
            model, server = p.call_target()
            call = ModelCall(p.calls_model, model, server, t0, t1, str(outcome))
            if rec.calls is None:
                rec.calls = [call]
            else:
                rec.calls.append(call)
        return rej

    def _start_leg(self, leg: Leg | Reject, ctx: RequestContext, raw: bytes) -> Decision:
        if isinstance(leg, Reject):
            return self._reject(leg)
        rec = self.record
        leg.describe(rec)
        rec.model_mapped = rec.model_served
        try:
            d = leg.request(ctx, raw)
        except TranslationError as e:
            return self._reject(reject(400, str(e), "untranslatable_request", self._api))
        except (orjson.JSONEncodeError, RecursionError):
            # parse_body refuses deeper bodies; this is for what a leg builds from one.
            msg = f"The request body is nested deeper than {MAX_JSON_DEPTH} levels."
            return self._reject(reject(400, msg, "body_too_deep", self._api))
        self._leg = leg
        # Every answer is read (usage, translation, key redaction) and none is
        # decoded: a compressed one would pass unread. Ask for it plain.
        if (
            type(d) is Continue
            and "accept-encoding" in self.ctx_headers
            and "accept-encoding" not in d.remove_headers
        ):
            d = dataclasses.replace(d, remove_headers=(*d.remove_headers, "accept-encoding"))
        # An attempt's exchange runs after Envoy's router: the timeout is set already.
        if type(d) is Continue and self.attempt is None and (t := _attempt_timeout_s(leg)):
            timeout = (UPSTREAM_TIMEOUT_HEADER, str(max(1, round(t * 1000))))
            d = dataclasses.replace(d, set_headers=(*d.set_headers, timeout))
        if self.runtime.tracing is not None and type(d) is Continue:
            # Our span toward the provider. When Envoy traces too, its router
            # puts its own upstream span there instead (in the same trace).
            rec.trace_id, rec.span_id, rec.trace_flags = our_ids(rec.traceparent)
            tp = ("traceparent", format_traceparent(rec.trace_id, rec.span_id, rec.trace_flags))
            sets = tuple(x for x in d.set_headers if x[0] != "traceparent")
            d = dataclasses.replace(d, set_headers=(*sets, tp))
        if self.attempt is not None and type(d) is Continue:
            assert self.route is not None
            return self.attempt.request(d, raw, self.ctx_headers, self.route)
        return d

    # -- response ----------------------------------------------------------

    def _response_headers(self, ev: ResponseHeaders) -> Decision:
        d = self._answer_headers(ev)
        if self.attempt is not None:
            return self.attempt.answered(d, self.record, self.runtime.metadata_namespace)
        return d

    def _answer_headers(self, ev: ResponseHeaders) -> Decision:
        h = ev.headers
        try:
            status = int(h.get(":status", "0"))
        except ValueError:
            status = 0
        self._resp_status = status
        rec = self.record
        rec.status = status
        rec.first_byte = time.monotonic()
        leg = self._leg
        if leg is None:
            if self.route is not None and status < 400:
                # A checked route's request went upstream without its leg: only an
                # Envoy config that skipped our body phase gets here. Refuse the answer.
                log.error(
                    "answer to a request no leg built (status %s, request_id=%s): refused",
                    status,
                    rec.request_id,
                )
                msg = "The gateway did not check this request; its answer is withheld."
                return self._reject(reject(502, msg, "unchecked_request", self._api))
            # An Envoy local reply (or a stream that never picked a leg): nothing to read.
            return self._finish(_NO_BODY) if ev.end_of_stream else _NO_BODY
        headers, remove = leg.answer_headers(status, h, rec)
        if secret := self.runtime.redactor.headers(h):
            headers = (*headers, *secret)  # a provider that echoes its key in a header
        if self.runtime.overhead_header:
            overhead = f"{rec.overhead_request * 1000:.3f}"
            headers = (*headers, (OVERHEAD_HEADER, overhead))
        rec.upstream_error = status >= 400
        if self.route is not None and self.route.cache is not None:
            headers = (*headers, ("x-llm-cache", "miss"))
            if status >= 300 or ev.end_of_stream:
                self._cstate = None  # errors and empty answers are never cached
        if ev.end_of_stream:
            return self._finish(Continue(set_headers=headers, remove_headers=remove))
        max_line = self.runtime.limits.max_stream_line_bytes
        mode = leg.response_mode(status, h.get("content-type", ""), max_line)
        if leg.stream is not None:
            if self._cstate is not None and self._cache is not None:
                self._cache.start_stream(self._cstate)
            ctype = leg.stream.content_type
            return Continue(
                set_headers=(*headers, ("content-type", ctype)) if ctype else headers,
                remove_headers=(*remove, "content-length"),
                mode=ModeOverride(response_body=mode),
            )
        return Continue(
            set_headers=headers, remove_headers=remove, mode=ModeOverride(response_body=mode)
        )

    def _response_body(self, ev: ResponseBody) -> Decision:
        leg = self._leg
        assert leg is not None and self.route is not None
        if leg.stream is not None:
            return self._stream_chunk(leg, ev)
        try:
            raw = self._resp_body.add(ev.body, ev.end_of_stream)
        except TooLarge:
            msg = "The provider's response is larger than the gateway's limit."
            return self._reject(reject(502, msg, "response_too_large", self._api))
        if raw is None:
            return CONTINUE
        try:
            out = leg.response(self._resp_status, raw)
        except TranslationError as e:
            # A success answer the gateway cannot read (not JSON, not the API's shape).
            log.error(
                "untranslatable provider answer: %s (request_id=%s)", e, self.record.request_id
            )
            self.record.upstream_error = True
            msg = f"The provider's answer could not be read: {e}"
            return self._reject(reject(502, msg, "bad_upstream", self._api))
        rec = self.record
        rec.usage = out.usage
        if out.model:
            rec.model_served = out.model
        if self.runtime.tracing is not None and 200 <= self._resp_status < 300:
            rec.finish_reasons, rec.response_id = answer_facts(self._api, out.body)
        meta = self._end_metadata()
        self.close()
        body = self.runtime.redactor.body(out.body)
        if self._cstate is not None and self._cache is not None:
            # What the client gets (redacted), never the provider's raw bytes.
            self._cache.finish(self._cstate, body, rec.model_served, out.usage)
        if body is raw or body == raw:
            return Continue(metadata=meta)
        return Continue(
            body=body,
            set_headers=(("content-length", str(len(body))), ("content-type", out.content_type)),
            metadata=meta,
        )

    def _stream_chunk(self, leg: Leg, ev: ResponseBody) -> Decision:
        st = leg.stream
        assert st is not None and self.route is not None
        rec = self.record
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
                rec.request_id,
                rec.provider,
            )
            rec.upstream_error = True
            rec.blocked_reason = "stream_limit"
            return self._finish(
                reject(
                    502,
                    "The provider's stream broke the gateway's limits; it was cut off.",
                    "stream_limit",
                    self._api,
                )
            )
        if out and self.runtime.redactor:
            out = self.runtime.redactor.body(out)  # `out is ev.body` while nothing changed
        if not rec.first_token and out:
            rec.first_token = time.monotonic()
        cst = self._cstate
        if cst is not None and cst.reassembler is not None:
            cst.reassembler.feed(out)  # what the client got, for the cache
        if not ev.end_of_stream:
            return CONTINUE if out is ev.body else Continue(body=out)
        rec.usage = st.usage
        if st.model:
            rec.model_served = st.model
        if cst is not None and self._cache is not None:
            self._cache.finish(cst, None, rec.model_served, st.usage)
        meta = self._end_metadata()
        self.close()
        return Continue(body=None if out is ev.body else out, metadata=meta)

    def _end_metadata(self) -> dict[str, Any] | None:
        """Envoy's dynamic metadata with the last response chunk (and the cost).
        An attempt has none: it would only overwrite the router-level exchange's
        with a failed attempt's provider."""
        if self.attempt is not None:
            return None
        rec = self.record
        prices = self.runtime.prices
        if prices and rec.usage is not None and rec.cache != "hit":  # a hit cost nothing
            models = (rec.model_served, rec.model_mapped)
            rec.cost = prices.cost(rec.provider, rec.provider_type, models, rec.usage)
        return rec.metadata(self.runtime.metadata_namespace)
