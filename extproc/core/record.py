"""What happened in one exchange: for the request log, metrics, budgets and Envoy's metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from extproc.usage import Usage


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One call a processor made to a model (the LLM guard, the query rewrite).

    Times are time.monotonic(); `outcome` is the verdict or "ok"/"error"."""

    kind: str  # "guard" | "rewrite"
    model: str
    server: str  # the upstream's authority
    started: float
    ended: float
    outcome: str


@dataclass(slots=True)
class ExchangeRecord:
    """Filled as the exchange goes; never holds a prompt or a key."""

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
    # Response cache on this route: "hit" (answered by the gateway; usage is
    # the tokens saved) or "miss"; "" when the route has no cache.
    cache: str = ""
    # Fallback routes (Envoy retries across providers). The request's record:
    # how many attempts Envoy made and "n:provider:status" of each, comma-separated
    # (status 0: no response).
    attempts: int = 0
    attempt_log: str = ""
    # An attempt's own record (core/attempt.py): which attempt it was (1, 2, ...).
    attempt: int = 0
    # -- observability (observability/tracing.py, the overhead metric, cost) --
    # The trace parent: the ext_proc stream's `traceparent` (Envoy's span of
    # this call) or else the request's. Read only with tracing on.
    traceparent: str = ""
    # With tracing on: our span's ids (hex), also sent toward the provider.
    trace_id: str = ""
    span_id: str = ""
    trace_flags: str = ""
    model_mapped: str = ""  # the model the upstream request names (after mapping)
    cost: float | None = None  # USD (cost.py); None: no usage or no price
    first_token: float = 0.0  # a stream's first chunk with content
    # Seconds our code spent handling Envoy's messages, per side, and the part
    # of the request side spent awaiting guard/rewrite model calls.
    work_request: float = 0.0
    work_response: float = 0.0
    waited: float = 0.0
    calls: list[ModelCall] | None = None
    # With tracing on, from a buffered answer (core/finish.py).
    finish_reasons: tuple[str, ...] = ()
    response_id: str = ""

    @property
    def overhead_request(self) -> float:
        """The gateway's own request-side time, model calls excluded."""
        return max(self.work_request - self.waited, 0.0)

    # Tokens the consumer's budget set aside at admission; settled to `usage` at the end.
    # A budget.Reservation (budget/ sits above core: the record only carries it).
    reservation: Any = None

    def metadata(self, namespace: str) -> dict[str, Any]:
        """Dynamic metadata for Envoy (access logs, rate limits), under `namespace`."""
        u = self.usage
        out: dict[str, Any] = {
            "route": self.route,
            "provider": self.provider,
            "consumer": self.consumer,
            "model_requested": self.model_requested,
            "model_served": self.model_served,
            "input_tokens": u.input_tokens if u else 0,
            "output_tokens": u.output_tokens if u else 0,
            "total_tokens": u.total_tokens if u else 0,
        }
        if self.cost is not None:
            out["cost_usd"] = self.cost
        if self.cache:
            out["cache"] = self.cache
        if self.attempts:
            out["attempts"] = self.attempts
            out["attempt_log"] = self.attempt_log
        return {namespace: out}

    def attempt_statuses(self) -> list[dict[str, Any]]:
        """`attempt_log` as [{"attempt", "provider", "status"}, ...], for the request log."""
        out: list[dict[str, Any]] = []
        for item in self.attempt_log.split(",") if self.attempt_log else ():
            n, _, rest = item.partition(":")
            name, _, status = rest.rpartition(":")
            out.append(
                {
                    "attempt": int(n) if n.isdigit() else 0,
                    "provider": name,
                    "status": int(status) if status.isdigit() else 0,
                }
            )
        return out
