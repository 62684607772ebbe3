"""Per-consumer token budgets: a fixed window of `budgets.window` seconds.

The check runs before a request goes upstream (a consumer whose window is
used up gets 429 with retry-after); the charge is the exchange's actual
`usage.total_tokens`, added when the exchange ends. So a request that starts
under budget may take the consumer over it; the next one is refused.

Backends: `MemoryBudget` (one process) and `RedisBudget` (shared by every
replica and worker; keys `llm_extproc:budget:<consumer>:<window_start>`).
"""

from __future__ import annotations

from extproc.budget.base import (
    Budget,
    BudgetUnavailable,
    BudgetUsage,
    budget_reject,
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
    "budget_reject",
    "make_budget",
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
