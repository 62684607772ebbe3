"""One attempt of a fallback route, in a provider cluster's upstream ext_proc filter.

Envoy runs a cluster's upstream filters once per attempt, and the filter's
gRPC initial metadata names the provider the attempt goes to. The router-level
exchange already authenticated the client and ran the processors; it passed
its decisions as dynamic metadata that Envoy forwards here (`fallback`: the
route, `consumer`, `path`: the client's path). This exchange opens the leg for
its provider (`core/pick.py`: translation, key, model mapping), sends the
request on and translates the answer back into the client's API, as a plain
route's exchange does; it keeps no state between attempts, so attempts may
land in any worker or replica. Such a stream is the same `Exchange` as any
other, handed an `Attempt` (this data, and the few steps where an attempt
differs): it skips routing, authentication and processors, which the
router-level exchange did.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from extproc.config.fallback import ATTEMPTS_HEADER, PROVIDER_METADATA_KEY
from extproc.config.runtime import ProviderRuntime, RouteRuntime, Runtime
from extproc.core.errors import reject
from extproc.core.events import Continue, Decision, Headers, Reject, RequestHeaders
from extproc.core.legs import client_key_headers
from extproc.core.record import ExchangeRecord
from extproc.translators.registry import PROVIDER_ONLY_HEADERS

log = logging.getLogger("extproc.attempt")


@dataclass(slots=True)
class Attempt:
    """One attempt to `provider`; the rest is learnt from the request's metadata."""

    provider: str  # the provider cluster's name for it (gRPC initial metadata)
    prov: ProviderRuntime | None = None
    consumer: str = ""  # the router-level exchange authenticated it
    history: str = ""  # "n:provider:status" of the attempts before this one
    path: str = "/"  # the client's path (Envoy's headers carry the fallback route's)

    def start(self, runtime: Runtime, ev: RequestHeaders) -> RouteRuntime | Reject:
        """The fallback route this attempt belongs to (a 500 when the Envoy config
        sent an attempt the config knows nothing of)."""
        h = ev.headers
        meta = (ev.metadata or {}).get(runtime.metadata_namespace) or {}
        route, prov = self._resolve(runtime, meta)
        if route is None or prov is None:
            log.error(
                "an attempt reached the gateway without a fallback route: check the Envoy config",
                extra={"fields": {"provider": self.provider, "route": meta.get("fallback")}},
            )
            return reject(500, "The gateway is misconfigured.", "fallback_unrouted")
        path = meta.get("path")
        self.path = path if isinstance(path, str) and path else h.get(":path", "/")
        consumer, history = meta.get("consumer"), meta.get("attempt_log")
        self.consumer = consumer if isinstance(consumer, str) else ""
        self.history = history if isinstance(history, str) else ""
        self.prov = prov
        return route

    def _resolve(
        self, runtime: Runtime, meta: Mapping[str, Any]
    ) -> tuple[RouteRuntime | None, ProviderRuntime | None]:
        name = meta.get("fallback")
        route = next(
            (r for r in runtime.routes.routes if r.name == name and r.fallback is not None),
            None,
        )
        if route is None or route.fallback is None:
            return None, None
        prov = next((p for p in route.fallback.providers if p.name == self.provider), None)
        return route, prov

    def describe(self, rec: ExchangeRecord, headers: Headers) -> None:
        assert self.prov is not None
        rec.consumer = self.consumer
        rec.provider, rec.provider_type = self.prov.name, self.prov.type  # known before any body
        count = headers.get("x-envoy-attempt-count", "")
        rec.attempt = int(count) if count.isdigit() else 1

    def request(self, d: Continue, raw: bytes, headers: Headers, route: RouteRuntime) -> Continue:
        """The leg's request, made whole for this attempt: Envoy hands every attempt
        the headers as the previous attempt left them."""
        assert self.prov is not None
        sets = list(d.set_headers)
        names = {k for k, _ in sets}
        if ":path" not in names:
            sets.append((":path", self.path))
        if ":authority" not in names:
            sets.append((":authority", self.prov.host))
        if d.body is None and raw and "content-length" not in names:
            # The previous attempt may have set another length for its body.
            sets.append(("content-length", str(len(raw))))
        stale = (*client_key_headers(route), *PROVIDER_ONLY_HEADERS)
        remove = [*d.remove_headers]
        remove += [n for n in stale if n in headers and n not in names and n not in remove]
        # An upstream filter cannot re-route: Envoy already picked this attempt's cluster.
        return dataclasses.replace(
            d, set_headers=tuple(sets), remove_headers=tuple(remove), clear_route_cache=False
        )

    def answered(self, d: Decision, rec: ExchangeRecord, namespace: str) -> Decision:
        """The answer's headers carry the attempts so far up to the router-level exchange."""
        entry = f"{rec.attempt}:{self.provider}:{rec.status}"
        log_so_far = f"{self.history},{entry}" if self.history else entry
        if isinstance(d, Continue):
            return dataclasses.replace(
                d,
                set_headers=(*d.set_headers, (ATTEMPTS_HEADER, log_so_far)),
                metadata={namespace: {"attempt_log": log_so_far}},
            )
        return d


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
