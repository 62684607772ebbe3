"""One attempt of a fallback route, in a provider cluster's upstream ext_proc filter.

Envoy runs a cluster's upstream filters once per attempt, and the filter's
gRPC initial metadata names the provider the attempt goes to. The router-level
exchange already authenticated the client and ran the processors; it passed
its decisions as dynamic metadata that Envoy forwards here (`fallback`: the
route, `consumer`, `path`: the client's path). This exchange opens the leg for
its provider (`core/legs.py`: translation, key, model mapping), sends the
request on and translates the answer back into the client's API, as a plain
route's exchange does; it keeps no state between attempts, so attempts may
land in any worker or replica.

Envoy hands every attempt the request headers as the previous attempt left
them, so each attempt sets its path, authority and length itself and removes
the key another provider's attempt added. Each answer records
"provider:status" in dynamic metadata; the next attempt reads it, so the one
that answers the client sends the whole list up (`x-llm-attempts`); an
attempt that got no response (no connection, reset, per-try timeout) is
missing from it, and the router-level exchange fills the gap.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from extproc.config.fallback import ATTEMPTS_HEADER, PROVIDER_METADATA_KEY
from extproc.config.runtime import ProviderRuntime, RouteRuntime, Runtime
from extproc.core.buffer import BodyBuffer
from extproc.core.errors import reject
from extproc.core.events import CONTINUE, Continue, Decision, Reject, RequestBody, RequestHeaders
from extproc.core.events import ResponseHeaders as ResponseHeadersEvent
from extproc.core.exchange import Exchange
from extproc.core.legs import Leg, client_key_headers, open_leg, passthrough
from extproc.core.legs_anthropic import open_anthropic_leg
from extproc.core.parse import parse_body
from extproc.core.record import ExchangeRecord
from extproc.core.request import ANTHROPIC_ENDPOINTS, RequestContext, client_api_of, endpoint_of

log = logging.getLogger("extproc.attempt")

# Headers one provider's attempt sets that another provider must not get.
_PROVIDER_HEADERS = ("anthropic-version",)


class AttemptExchange(Exchange):
    """The upstream-filter exchange of one attempt to `provider`."""

    __slots__ = ("_consumer", "_history", "_path", "_prov", "provider_name")

    def __init__(
        self,
        runtime: Runtime,
        provider: str,
        on_done: Callable[[ExchangeRecord], None] | None = None,
    ) -> None:
        super().__init__(runtime, on_done)
        self.provider_name = provider
        self._prov: ProviderRuntime | None = None
        self._consumer = ""
        self._history = ""
        self._path = "/"

    # -- request ---------------------------------------------------------------

    def _request_headers(self, ev: RequestHeaders) -> Decision:  # type: ignore[override]
        h = ev.headers
        meta = (ev.metadata or {}).get(self.runtime.metadata_namespace) or {}
        route, prov = self._resolve(meta)
        if route is None or prov is None:
            log.error(
                "an attempt reached the gateway without a fallback route: check the Envoy config",
                extra={"fields": {"provider": self.provider_name, "route": meta.get("fallback")}},
            )
            return self._finish(reject(500, "The gateway is misconfigured.", "fallback_unrouted"))
        path = meta.get("path")
        self._path = path if isinstance(path, str) and path else h.get(":path", "/")
        consumer, history = meta.get("consumer"), meta.get("attempt_log")
        self._consumer = consumer if isinstance(consumer, str) else ""
        self._history = history if isinstance(history, str) else ""
        self.route, self._prov = route, prov
        self.ctx_headers = {**h, ":path": self._path}
        self.endpoint = endpoint_of(self._path, route.client_api)
        self._api = client_api_of(self.endpoint, route.client_api)
        limits = self.runtime.limits
        self._req_body = BodyBuffer(limits.max_request_bytes)
        self._resp_body = BodyBuffer(limits.max_response_bytes)
        rec = self.record
        rec.started = time.monotonic()
        rec.request_id = h.get("x-request-id", "")
        rec.route, rec.endpoint, rec.consumer = route.name, self.endpoint, self._consumer
        rec.provider, rec.provider_type = prov.name, prov.type  # known before any body
        count = h.get("x-envoy-attempt-count", "")
        rec.attempt = int(count) if count.isdigit() else 1
        if ev.end_of_stream:
            return self._send(passthrough(route, prov, self.endpoint), self._context({}), b"")
        return CONTINUE

    def _resolve(
        self, meta: Mapping[str, Any]
    ) -> tuple[RouteRuntime | None, ProviderRuntime | None]:
        name = meta.get("fallback")
        route = next(
            (r for r in self.runtime.routes.routes if r.name == name and r.fallback is not None),
            None,
        )
        if route is None or route.fallback is None:
            return None, None
        prov = next((p for p in route.fallback.providers if p.name == self.provider_name), None)
        return route, prov

    def _context(self, body: dict[str, Any]) -> RequestContext:
        assert self.route is not None
        return RequestContext(
            self.route, self.ctx_headers, self.endpoint, body, consumer=self._consumer or None
        )

    async def _request_body(self, ev: RequestBody) -> Decision:
        route, prov = self.route, self._prov
        assert route is not None and prov is not None
        raw = self._whole_body(ev)
        if type(raw) is Reject:
            return raw
        assert isinstance(raw, bytes)
        body = parse_body(self.ctx_headers, raw, self.endpoint, self._api)
        if isinstance(body, Reject):
            return self._reject(body)
        opener = open_anthropic_leg if self.endpoint in ANTHROPIC_ENDPOINTS else open_leg
        leg = opener(route, self.endpoint, prov, body)
        if hasattr(leg, "include_usage"):
            # The usage chunk goes up to the router-level exchange, which meters
            # it and hides it from a client that did not ask for it.
            leg.include_usage = True
        return self._send(leg, self._context(body), raw)

    def _send(self, leg: Leg | Reject, ctx: RequestContext, raw: bytes) -> Decision:
        d = self._start_leg(leg, ctx, raw)
        if not isinstance(d, Continue):
            return d
        assert self._prov is not None and self.route is not None
        sets = list(d.set_headers)
        names = {k for k, _ in sets}
        if ":path" not in names:
            sets.append((":path", self._path))
        if ":authority" not in names:
            sets.append((":authority", self._prov.host))
        if d.body is None and raw and "content-length" not in names:
            # The previous attempt may have set another length for its body.
            sets.append(("content-length", str(len(raw))))
        h = self.ctx_headers
        stale = (*client_key_headers(self.route), *_PROVIDER_HEADERS)
        remove = [*d.remove_headers]
        remove += [n for n in stale if n in h and n not in names and n not in remove]
        # An upstream filter cannot re-route: Envoy already picked this attempt's cluster.
        return dataclasses.replace(
            d, set_headers=tuple(sets), remove_headers=tuple(remove), clear_route_cache=False
        )

    # -- response --------------------------------------------------------------

    def _response_headers(self, ev: ResponseHeadersEvent) -> Decision:
        d = super()._response_headers(ev)
        entry = f"{self.record.attempt}:{self.provider_name}:{self.record.status}"
        log_so_far = f"{self._history},{entry}" if self._history else entry
        ns = self.runtime.metadata_namespace
        if isinstance(d, Continue):
            return dataclasses.replace(
                d,
                set_headers=(*d.set_headers, (ATTEMPTS_HEADER, log_so_far)),
                metadata={ns: {"attempt_log": log_so_far}},
            )
        return d

    def _end_metadata(self) -> dict[str, Any] | None:
        # The router-level exchange emits the request's metadata; an attempt's
        # would only overwrite it with a failed attempt's provider.
        return None


def stream_origin(grpc_metadata: Iterable[tuple[Any, Any]]) -> tuple[str, str]:
    """(provider, traceparent) of a stream's gRPC initial metadata, in one pass:
    the provider as `attempt_provider` reads it, and the `traceparent` Envoy's
    tracer puts on its ext_proc call (its span of this request's processing)."""
    provider = traceparent = ""
    for key, value in grpc_metadata:
        k = key.decode("latin-1") if isinstance(key, bytes) else key
        if k == PROVIDER_METADATA_KEY:
            provider = value.decode() if isinstance(value, bytes) else str(value)
        elif k == "traceparent":
            traceparent = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return provider, traceparent


def attempt_provider(grpc_metadata: Iterable[tuple[Any, Any]]) -> str:
    """The provider a stream's gRPC initial metadata names ("" for a router-level
    stream): a provider cluster's upstream filter sets it (envoy_fallback.py).
    Every transport asks this before it creates the stream's exchange; keys and
    values may be bytes (HTTP/2 headers) or str (grpcio)."""
    for key, value in grpc_metadata:
        k = key.decode("latin-1") if isinstance(key, bytes) else key
        if k == PROVIDER_METADATA_KEY:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""
