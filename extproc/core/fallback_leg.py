"""The router-level leg of a fallback route: Envoy picks and retries the providers.

On a route with `fallback`/`retry` the router-level exchange does not pick a
provider. It sends the checked request to the route's Envoy fallback route
(metadata `fallback: <route>`, see envoy_fallback.py), where Envoy makes the
attempts and an upstream exchange per attempt (core/attempt.py) translates it
for that attempt's provider and translates the answer back. So what this leg
reads is already in the client's API: it only taps usage and model, learns
which provider answered and after how many attempts, and turns an answer Envoy
made itself (every attempt failed without a response) into the client's error.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.client_apis.base import ClientApi
from extproc.client_apis.registry import OTHER, endpoint_named
from extproc.config.fallback import (
    ATTEMPTS_HEADER,
    FALLBACK_AUTHORITY,
    FallbackRuntime,
    group_name,
    order_namespace,
)
from extproc.config.runtime import ProviderRuntime, RouteRuntime
from extproc.core.errors import reject
from extproc.core.events import BodyMode, Continue, Headers, Reject
from extproc.core.legs import Leg, Pairs, client_key_headers, stream_of
from extproc.core.record import ExchangeRecord
from extproc.core.request import RequestContext
from extproc.translators.base import StreamTranslator, TranslatedResponse


class FallbackLeg:
    """Routes the request to the Envoy fallback route and reads the answer (a `Leg`)."""

    __slots__ = (
        "api",
        "endpoint",
        "include_usage",
        "namespace",
        "order",
        "provider",
        "requested_model",
        "route",
        "stream",
        "streaming",
    )

    def __init__(
        self,
        route: RouteRuntime,
        endpoint: str,
        api: ClientApi,
        requested: str,
        streaming: bool,
        include_usage: bool,
        namespace: str,
    ) -> None:
        self.route, self.endpoint, self.namespace = route, endpoint, namespace
        self.api = api  # the client's API: the attempts answer in it
        self.requested_model, self.streaming, self.include_usage = (
            requested,
            streaming,
            include_usage,
        )
        self.stream: StreamTranslator | None = None
        self.provider: ProviderRuntime | None = None  # the provider that answered
        self.order: tuple[int, ...] = ()  # the chain's groups, in this request's order

    def describe(self, rec: ExchangeRecord) -> None:
        rec.model_requested, rec.stream = self.requested_model, self.streaming

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        # Every client key header is removed, present or not: Envoy clears the
        # route cache only for a response that mutates headers.
        headers: list[tuple[str, str]] = [(":authority", FALLBACK_AUTHORITY)]
        body = None
        if ctx.modified:
            body = orjson.dumps(ctx.body)
            headers.append(("content-length", str(len(body))))
        meta: dict[str, Any] = {
            "fallback": self.route.name,
            "consumer": ctx.consumer or "",
            "path": ctx.headers.get(":path", "/"),
        }
        metadata: dict[str, Any] = {self.namespace: meta}
        fb = self.route.fallback
        assert fb is not None
        self.order = fb.order()
        if self.order != tuple(range(len(fb.groups))):
            # Providers whose keys all cool down go last: Envoy's priority-group
            # specifier reads this request's order from this namespace.
            groups = [{"name": group_name(i)} for i in self.order]
            metadata[order_namespace(self.namespace)] = {"priority_groups": groups}
        return Continue(
            set_headers=tuple(headers),
            remove_headers=client_key_headers(self.route),
            body=body,
            clear_route_cache=True,
            metadata=metadata,
        )

    # -- response -------------------------------------------------------------

    def answer_headers(
        self, status: int, headers: Headers, rec: ExchangeRecord
    ) -> tuple[Pairs, tuple[str, ...]]:
        """Who answered, after how many attempts; no header to add."""
        fb = self.route.fallback
        assert fb is not None
        name = headers.get("x-llm-provider", "")
        self.provider = next((p for p in fb.providers if p.name == name), None)
        if self.provider is not None:
            rec.provider, rec.provider_type = self.provider.name, self.provider.type
        count = headers.get("x-envoy-attempt-count", "")
        rec.attempts = int(count) if count.isdigit() else 1
        log = headers.get(ATTEMPTS_HEADER, "")
        rec.attempt_log = complete_log(fb, self.order, rec.attempts, log)
        return (), ((ATTEMPTS_HEADER,) if ATTEMPTS_HEADER in headers else ())

    def response_mode(self, status: int, content_type: str, max_line: int) -> BodyMode:
        if self.provider is None:
            # Envoy's own answer: its text becomes the client's error below.
            return BodyMode.BUFFERED if status >= 400 else BodyMode.NONE
        if status >= 300:
            return BodyMode.NONE  # the attempt put the error in the client's shape
        if "event-stream" in content_type or "ndjson" in content_type:
            self.stream = self._tap(max_line)
            return BodyMode.STREAMED
        return BodyMode.BUFFERED

    def _tap(self, max_line: int) -> StreamTranslator:
        # Each attempt sends the usage chunk (core/pick.py); the client
        # that did not ask for it does not get it.
        return self.api.tap(max_line, self.include_usage)

    def response(self, status: int, raw: bytes) -> TranslatedResponse:
        if self.provider is None:
            return TranslatedResponse(self._envoy_error(status, raw), None, None)
        return self.api.read(status, raw, self.endpoint)

    def _envoy_error(self, status: int, raw: bytes) -> bytes:
        detail = raw.decode("utf-8", "replace").strip()[:200] or f"status {status}"
        msg = f"No provider of route {self.route.name!r} answered: {detail}"
        return reject(status, msg, "providers_unavailable", self.api).body


def complete_log(fb: FallbackRuntime, order: tuple[int, ...], attempts: int, log: str) -> str:
    """The attempts' "n:provider:status" list with a "n:provider:0" entry for each
    attempt that got no response (it never reported): attempt n went to the n-th
    group of this request's order, so its provider is known unless that group is
    weighted."""
    seen = {item.partition(":")[0]: item for item in log.split(",") if item}
    order = order or tuple(range(len(fb.groups)))
    out = []
    for n in range(1, attempts + 1):
        item = seen.get(str(n))
        if item is None:
            group = fb.groups[order[(n - 1) % len(order)]]
            item = f"{n}:{group[0][0] if len(group) == 1 else ''}:0"
        out.append(item)
    return ",".join(out)


def fallback_leg(ctx: RequestContext, api: ClientApi, namespace: str) -> Leg | Reject:
    """The leg for a fallback route (or a Reject: the route's stream policy).

    When the client did not say whether to stream, the decision (the first
    provider's default) is written into the body, so every attempt agrees."""
    route, endpoint, body = ctx.route, ctx.endpoint, ctx.body
    if not body or endpoint == OTHER:
        return FallbackLeg(route, endpoint, api, "", False, False, namespace)
    streaming = stream_of(route, endpoint, api, route.providers[0], body)
    if isinstance(streaming, Reject):
        return streaming
    if endpoint_named(endpoint).streams and body.get("stream") is not streaming:
        body["stream"] = streaming
        ctx.modified = True
    requested = body.get("model")
    so = body.get("stream_options")
    include_usage = isinstance(so, dict) and so.get("include_usage") is True
    return FallbackLeg(
        route,
        endpoint,
        api,
        requested if isinstance(requested, str) else "",
        streaming,
        include_usage,
        namespace,
    )
