"""Per-consumer token budgets: a fixed window of `budgets.window` seconds.

Admission reserves an estimate of the request's tokens (`estimate.py`: its
body's size for the input, its max_tokens or the budgets' default for the
output, at most the whole budget) in one atomic step, and refuses it (429
with retry-after) when the window has no room for it; concurrent requests
see each other's reservations. When the exchange ends the reservation is
replaced by the actual `usage.total_tokens` (0 when it failed or reported no
usage). A request that uses more than its estimate (an input estimate is a
guess) may take the window over the budget; the next one is refused.

Backends: `MemoryBudget` (one process) and `RedisBudget` (shared by every
replica and worker; keys `llm_extproc:budget:<consumer>:<window_start>`).
"""

from __future__ import annotations

from extproc.budget.base import (
    Budget,
    BudgetUnavailable,
    BudgetUsage,
    Reservation,
    budget_reject,
    reservation_size,
    unavailable_reject,
    window_of,
)
from extproc.budget.memory import MemoryBudget
from extproc.budget.redis_store import RedisBudget
from extproc.config.runtime import Runtime

__all__ = [
    "Budget",
    "BudgetUnavailable",
    "BudgetUsage",
    "MemoryBudget",
    "RedisBudget",
    "Reservation",
    "budget_reject",
    "make_budget",
    "reservation_size",
    "unavailable_reject",
    "window_of",
]


def make_budget(runtime: Runtime) -> Budget | None:
    """The configured backend, or None when no consumer has a token budget."""
    if not any(c.token_budget > 0 for c in runtime.consumers):
        return None
    if runtime.budget_backend == "redis":
        return RedisBudget(runtime.redis_url, runtime.budget_window_s)
    return MemoryBudget(runtime.budget_window_s)
