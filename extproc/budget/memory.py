"""In-process fixed-window token budgets (one process; the default)."""

from __future__ import annotations

import time
from collections.abc import Callable

from extproc.budget.base import BudgetUsage, Reservation, window_of


class MemoryBudget:
    """Tokens used per consumer in the current fixed window.

    Async like every backend; these coroutines never suspend."""

    fail_open = False  # nothing to be unreachable

    def __init__(self, window_s: float, clock: Callable[[], float] = time.time) -> None:
        if window_s <= 0:
            raise ValueError("the budget window must be positive")
        self.window_s = float(window_s)
        self._clock = clock
        self._used: dict[str, tuple[float, int]] = {}  # consumer -> (window start, tokens)

    async def usage(self, consumer: str) -> BudgetUsage:
        now = self._clock()
        start, end = window_of(now, self.window_s)
        got = self._used.get(consumer)
        used = got[1] if got is not None and got[0] == start else 0
        return BudgetUsage(used, end - now)

    async def charge(self, consumer: str, tokens: int) -> int:
        """Add tokens to the consumer's current window; the window's new total."""
        start, _ = window_of(self._clock(), self.window_s)
        got = self._used.get(consumer)
        used = (got[1] if got is not None and got[0] == start else 0) + max(0, tokens)
        self._used[consumer] = (start, used)
        return used

    async def reserve(self, consumer: str, tokens: int, limit: int) -> Reservation | BudgetUsage:
        """Check and add in one step: nothing else runs between them (no await)."""
        now = self._clock()
        start, end = window_of(now, self.window_s)
        got = self._used.get(consumer)
        used = got[1] if got is not None and got[0] == start else 0
        tokens = max(0, tokens)
        if used >= limit or used + tokens > limit:
            return BudgetUsage(used, end - now)
        self._used[consumer] = (start, used + tokens)
        return Reservation(consumer, start, tokens)

    async def settle(self, reservation: Reservation, used: int) -> None:
        got = self._used.get(reservation.consumer)
        if got is None or got[0] != reservation.window_start:
            return  # that window is over: nothing left to correct
        total = got[1] + max(0, used) - reservation.tokens
        self._used[reservation.consumer] = (got[0], max(0, total))

    async def aclose(self) -> None:
        return None
