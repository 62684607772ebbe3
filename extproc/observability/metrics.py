"""Prometheus metrics, named after the OpenTelemetry GenAI semantic conventions.

Metrics (Prometheus names; the OTel name is the same with dots):

* `gen_ai_client_token_usage` histogram of tokens per request; labels
  `gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_request_model`,
  `gen_ai_response_model`, `consumer`, `gen_ai_token_type`
  (input | output | cached | reasoning).
* `gen_ai_server_request_duration_seconds` histogram (whole exchange);
  labels operation, provider, request/response model, `error_type`
  (empty, or the status class of a failed request).
* `gen_ai_server_time_to_first_token_seconds` histogram, streaming
  requests answered with 2xx (the upstream's first response bytes).
* `llm_extproc_upstream_attempts_total` (route, provider, status): each
  attempt Envoy made on a fallback route; `llm_extproc_request_attempts`
  histogram (route): attempts per request of a fallback route.
* `llm_extproc_cost_usd_total` (provider, response model, consumer): what
  requests cost at the configured prices (cost.py); requests without a
  price add nothing.
* `llm_extproc_overhead_seconds` histogram (`side`: request | response): the
  time our code spent on one request's messages (guard and rewrite model
  calls excluded): what the gateway adds to each request.
* `llm_extproc_cache_lookups_total` (route, result: hit | miss | bypass |
  unavailable), `llm_extproc_cache_stores_total` (route, result: stored |
  too_large | incomplete | dropped | store_failed),
  `llm_extproc_cache_tokens_saved_total` (route, gen_ai_token_type): the
  tokens a cache hit did not spend (hits record no token usage).
* `llm_extproc_requests_total` (route, provider, status_class),
  `llm_extproc_guard_decisions_total` (result),
  `llm_extproc_blocked_requests_total` (reason),
  `llm_extproc_upstream_errors_total` (provider, status).

Label values stay bounded: route, provider and consumer names come from the
config; reasons, guard results and statuses from the code. Model names may
come from the client, so each model label keeps the models named in the
config (provider default models, consumers' allowed models, model-mapping
targets) plus the first `max_models` other names it sees; any further name
(and any name longer than 128 characters) is recorded as "other". No prompt,
request id or key is ever a label.

Several worker processes (`--workers N`) use prometheus_client's
multiprocess mode: the parent process serves one /metrics for all workers
(see `extproc.serving.workers.run_workers`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from extproc.client_apis.registry import ENDPOINTS
from extproc.config.runtime import Runtime
from extproc.core.record import ExchangeRecord

OTHER = "other"
MAX_LABEL_LEN = 128

TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
OVERHEAD_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1,
)  # fmt: skip
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

_LOOKUP_RESULTS = frozenset({"hit", "miss", "bypass", "unavailable"})

# GenAI operation names per endpoint (each client API's spec says).
OPERATION = {name: e.operation for name, e in ENDPOINTS.items() if e.operation}


class BoundedLabel:
    """Maps arbitrary strings to a bounded set of label values."""

    def __init__(self, known: Iterable[str], cap: int, other: str = OTHER) -> None:
        self._known = frozenset(k for k in known if k)
        self._seen: set[str] = set()
        self._cap = cap
        self._other = other
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if not value or value in self._known or value in self._seen:
            return value
        if len(value) > MAX_LABEL_LEN:
            return self._other
        with self._lock:
            if len(self._seen) < self._cap:
                self._seen.add(value)
                return value
        return self._other

    @property
    def size(self) -> int:
        return len(self._known) + len(self._seen) + 1

    def add_known(self, known: Iterable[str]) -> None:
        """A reloaded config names more values; label values already used stay valid."""
        self._known = self._known | frozenset(k for k in known if k)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "none"


def _known_models(runtime: Runtime) -> set[str]:
    known: set[str] = set()
    for c in runtime.consumers:
        known.update(c.allowed_models)
    for p in runtime.providers.values():
        known.add(p.default_model)
        exact = getattr(p.mapper, "_exact", None)  # exact mapping entries, if any
        if isinstance(exact, dict):
            known.update(k for k in exact if isinstance(k, str))
            known.update(v for v in exact.values() if isinstance(v, str))
    return known


class Metrics:
    """The service's metrics in their own registry (several per process in tests)."""

    def __init__(
        self,
        runtime: Runtime,
        registry: CollectorRegistry | None = None,
        max_models: int = 100,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        models = _known_models(runtime)
        self.request_model = BoundedLabel(models, max_models)
        self.response_model = BoundedLabel(models, max_models)
        self.reason = BoundedLabel((), 64)
        self.guard = BoundedLabel(("allow", "deny", "error"), 16)
        self._routes = frozenset(r.name for r in runtime.routes.routes)
        self._providers = frozenset(runtime.providers)
        self._consumers = frozenset(c.name for c in runtime.consumers)
        # Label children by (metric, label values): prometheus_client's labels()
        # validates and locks on every call; label values are bounded, so is this.
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._declare(self.registry)

    def _declare(self, r: CollectorRegistry) -> None:
        genai = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per request (OTel gen_ai.client.token.usage)",
            [*genai, "gen_ai_response_model", "consumer", "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "gen_ai_server_request_duration_seconds",
            "Time from request headers to the end of the response",
            [*genai, "gen_ai_response_model", "error_type"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first response bytes of a streamed generation",
            [*genai, "gen_ai_response_model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.cost = Counter(
            "llm_extproc_cost_usd",
            "What requests cost at the configured prices, in USD",
            ["gen_ai_provider_name", "gen_ai_response_model", "consumer"],
            registry=r,
        )
        self.overhead = Histogram(
            "llm_extproc_overhead_seconds",
            "Time the gateway's own code spent per request (model calls excluded), by side",
            ["side"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "llm_extproc_requests",
            "Requests handled, by route, provider and status class",
            ["route", "provider", "status_class"],
            registry=r,
        )
        self.guard_decisions = Counter(
            "llm_extproc_guard_decisions",
            "LLM guard verdicts",
            ["result"],
            registry=r,
        )
        self.blocked = Counter(
            "llm_extproc_blocked_requests",
            "Requests answered by the gateway instead of the provider, by reason",
            ["reason"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "llm_extproc_upstream_errors",
            "Provider responses with an error status (or a broken stream)",
            ["gen_ai_provider_name", "status"],
            registry=r,
        )

        self.attempts = Counter(
            "llm_extproc_upstream_attempts",
            "Attempts Envoy made on fallback routes, by route, provider and status",
            ["route", "gen_ai_provider_name", "status"],
            registry=r,
        )
        self.attempts_per_request = Histogram(
            "llm_extproc_request_attempts",
            "Attempts per request of a fallback route",
            ["route"],
            buckets=(1, 2, 3, 4, 5, 6, 8, 10),
            registry=r,
        )
        self.cache_lookups = Counter(
            "llm_extproc_cache_lookups",
            "Response cache lookups, by route and result",
            ["route", "result"],
            registry=r,
        )
        self.cache_stores = Counter(
            "llm_extproc_cache_stores",
            "Answers offered to the response cache, by route and result",
            ["route", "result"],
            registry=r,
        )
        self.cache_tokens_saved = Counter(
            "llm_extproc_cache_tokens_saved",
            "Tokens cache hits did not spend, by route and token type",
            ["route", "gen_ai_token_type"],
            registry=r,
        )
        self.reloads = Counter(
            "llm_extproc_config_reloads",
            "Config reloads (SIGHUP or --watch-config), by result",
            ["result"],
            registry=r,
        )

    def use_runtime(self, runtime: Runtime) -> None:
        """After a config reload: route/provider/consumer names of both configs
        stay valid label values (the set only grows with reloads, not requests)."""
        models = _known_models(runtime)
        self.request_model.add_known(models)
        self.response_model.add_known(models)
        self._routes = self._routes | frozenset(r.name for r in runtime.routes.routes)
        self._providers = self._providers | frozenset(runtime.providers)
        self._consumers = self._consumers | frozenset(c.name for c in runtime.consumers)

    def _name(self, value: str, allowed: frozenset[str]) -> str:
        return value if not value or value in allowed else OTHER

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_cache(self, route: str, event: str) -> None:
        """A response cache event (extproc/cache/service.py): a lookup or a store."""
        metric = self.cache_lookups if event in _LOOKUP_RESULTS else self.cache_stores
        self._child(metric, self._name(route, self._routes), self.reason(event)).inc()

    def observe_attempt(self, rec: ExchangeRecord) -> None:
        """One attempt of a fallback route (the request is observed on its own)."""
        route = self._name(rec.route, self._routes)
        provider = self._name(rec.provider, self._providers)
        status = str(rec.status) if 100 <= rec.status <= 599 else "none"
        self._child(self.attempts, route, provider, status).inc()
        if rec.upstream_error:
            self._child(self.upstream_errors, provider, status).inc()

    def observe(self, rec: ExchangeRecord) -> None:
        if rec.attempt:
            self.observe_attempt(rec)
            return
        route = self._name(rec.route, self._routes)
        provider = self._name(rec.provider, self._providers)
        consumer = self._name(rec.consumer, self._consumers)
        if rec.attempts:
            self._child(self.attempts_per_request, route).observe(rec.attempts)
        op = OPERATION.get(rec.endpoint, OTHER)
        req_model = self.request_model(rec.model_requested)
        resp_model = self.response_model(rec.model_served)
        self._child(self.requests, route, provider, status_class(rec.status)).inc()
        if rec.guard:
            self._child(self.guard_decisions, self.guard(rec.guard)).inc()
        if rec.blocked_reason:
            self._child(self.blocked, self.reason(rec.blocked_reason)).inc()
        if rec.upstream_error and not rec.attempts:  # attempts count their own
            status = str(rec.status) if 100 <= rec.status <= 599 else "none"
            self._child(self.upstream_errors, provider, status).inc()
        if rec.cost:
            self._child(self.cost, provider, resp_model, consumer).inc(rec.cost)
        if rec.work_request:
            self._child(self.overhead, "request").observe(rec.overhead_request)
        if rec.work_response:
            self._child(self.overhead, "response").observe(rec.work_response)
        u = rec.usage
        if u is not None and rec.cache == "hit":
            for kind, n in (("input", u.input_tokens), ("output", u.output_tokens)):
                self._child(self.cache_tokens_saved, route, kind).inc(n)
        elif u is not None:
            for kind, n in (
                ("input", u.input_tokens),
                ("output", u.output_tokens),
                ("cached", u.cached_tokens),
                ("reasoning", u.reasoning_tokens),
            ):
                if n or kind in ("input", "output"):
                    labels = (op, provider, req_model, resp_model, consumer, kind)
                    self._child(self.tokens, *labels).observe(n)
        if rec.started and rec.ended and rec.ended >= rec.started:
            failed = rec.status >= 400 or rec.upstream_error or not rec.status
            err = status_class(rec.status) if failed else ""
            self._child(self.duration, op, provider, req_model, resp_model, err).observe(
                rec.ended - rec.started
            )
        if (
            rec.stream
            and rec.cache != "hit"  # the gateway answered: no model's first token
            and rec.first_byte
            and rec.started
            and 200 <= rec.status < 300
            and rec.first_byte >= rec.started
        ):
            self._child(self.ttft, op, provider, req_model, resp_model).observe(
                rec.first_byte - rec.started
            )


def multiprocess_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR when this process is one of several workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class MetricsEndpoint:
    """GET /metrics on host:port in a background thread; `stop` ends it."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry, self.host, self.port = registry, host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.bound_port = 0

    def start(self) -> None:
        from prometheus_client import start_http_server

        server, thread = start_http_server(self.port, self.host, self.registry)
        self._server, self._thread = server, thread
        self.bound_port = int(server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def multiprocess_registry(path: str) -> CollectorRegistry:
    from prometheus_client import multiprocess

    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg, path=path)
    return reg
