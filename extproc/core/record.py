"""What happened in one exchange: for the request log, metrics, budgets and Envoy's metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extproc.usage import Usage

if TYPE_CHECKING:
    from extproc.budget.base import Reservation


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
    # Tokens the consumer's budget set aside at admission; settled to `usage` at the end.
    reservation: Reservation | None = None

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
