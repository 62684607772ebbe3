"""Token budgets shared through Redis by every process and replica.

One key per consumer and window: `llm_extproc:budget:<consumer>:<window_start>`
(window_start in Unix seconds, windows aligned to the epoch). Admission is one
Lua script (`_RESERVE`): read the window's total, refuse when the request's
estimate does not fit, else INCRBY it, so concurrent requests in every
process and replica see each other's reservations. At the end `_SETTLE` adds
(real usage - reservation) to the same window's key, if it still exists. The
key outlives its window by one window at most (EXPIRE). When Redis cannot be reached the check raises
`BudgetUnavailable`; the authenticator turns that into 503 (fail closed)
unless `fail_open` is set.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from extproc.budget.base import (
    BudgetUnavailable,
    BudgetUsage,
    Reservation,
    window_label,
    window_of,
)

log = logging.getLogger("extproc.budget")

KEY_PREFIX = "llm_extproc:budget:"

# KEYS[1] the window's key; ARGV: tokens to reserve, the limit, the key's TTL.
# Returns {1, new total} when reserved, {0, current total} when refused.
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if used >= tonumber(ARGV[2]) or used + want > tonumber(ARGV[2]) then
  return {0, used}
end
local total = redis.call('INCRBY', KEYS[1], want)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, total}
"""
# KEYS[1] the reservation's window key; ARGV[1] real usage - reservation.
# A key that expired (its window long over) is not recreated.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if total < 0 then redis.call('INCRBY', KEYS[1], -total) end
return 1
"""


class RedisBudget:
    def __init__(
        self,
        url: str,
        window_s: float,
        clock: Callable[[], float] = time.time,
        fail_open: bool = False,
        timeout_s: float = 1.0,
        client: Any = None,
    ) -> None:
        if window_s <= 0:
            raise ValueError("the budget window must be positive")
        self.window_s = float(window_s)
        self.fail_open = fail_open
        self._clock = clock
        if client is None:
            import redis.asyncio as aioredis

            client = aioredis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry_on_timeout=False,
            )
        self._redis = client

    def key(self, consumer: str, start: float) -> str:
        return f"{KEY_PREFIX}{consumer}:{window_label(start)}"

    async def usage(self, consumer: str) -> BudgetUsage:
        now = self._clock()
        start, end = window_of(now, self.window_s)
        try:
            raw = await self._redis.get(self.key(consumer, start))
        except Exception as e:  # redis errors, OSError, timeouts
            # The URL may hold a password: name the error type only.
            raise BudgetUnavailable(f"budget store unreachable ({type(e).__name__})") from None
        return BudgetUsage(int(raw) if raw else 0, end - now)

    async def charge(self, consumer: str, tokens: int) -> int:
        start, end = window_of(self._clock(), self.window_s)
        key = self.key(consumer, start)
        ttl = max(1, math.ceil(end - self._clock() + self.window_s))
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(key, max(0, int(tokens)))
                pipe.expire(key, ttl)
                total, _ = await pipe.execute()
        except Exception as e:
            raise BudgetUnavailable(f"budget store unreachable ({type(e).__name__})") from None
        return int(total)

    async def reserve(self, consumer: str, tokens: int, limit: int) -> Reservation | BudgetUsage:
        now = self._clock()
        start, end = window_of(now, self.window_s)
        ttl = max(1, math.ceil(end - now + self.window_s))
        tokens = max(0, int(tokens))
        try:
            ok, total = await self._redis.eval(
                _RESERVE, 1, self.key(consumer, start), tokens, int(limit), ttl
            )
        except Exception as e:
            raise BudgetUnavailable(f"budget store unreachable ({type(e).__name__})") from None
        if int(ok) != 1:
            return BudgetUsage(int(total), end - now)
        return Reservation(consumer, start, tokens)

    async def settle(self, reservation: Reservation, used: int) -> None:
        delta = max(0, int(used)) - reservation.tokens
        if delta == 0:
            return
        key = self.key(reservation.consumer, reservation.window_start)
        try:
            await self._redis.eval(_SETTLE, 1, key, delta)
        except Exception as e:
            raise BudgetUnavailable(f"budget store unreachable ({type(e).__name__})") from None

    async def aclose(self) -> None:
        close = getattr(self._redis, "aclose", None) or self._redis.close
        try:
            await close()
        except Exception as e:  # pragma: no cover - best effort on shutdown
            log.warning("closing the budget store failed: %s", type(e).__name__)
