"""Where entries live: a bounded in-process LRU, or Redis shared by replicas.

Both are used through the same two coroutines. A store that fails or is too
slow raises `StoreUnavailable`; the caller treats it as a miss (the request
goes to the provider), never as the client's error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("extproc.cache")

KEY_PREFIX = "llm_extproc:cache:"
STORE_TIMEOUT_S = 1.0  # a store runs off the client's path, but not forever
MAX_LATE = 64  # lookups still running after their wait ended, per Redis store


class StoreUnavailable(Exception):
    """The store failed or did not answer in time (the message names no secret)."""


class Store(Protocol):
    async def get(self, key: str, timeout_s: float) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """LRU bounded by entries and bytes; entries expire after their TTL."""

    def __init__(
        self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max(1, max_entries)
        self.max_bytes = max(1, max_bytes)
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, key: str, timeout_s: float = 0.0) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._items:
            self._drop(key)
        self._items[key] = (self._clock() + ttl_s, value)
        self.bytes += len(value)
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._items))
            self._drop(oldest)

    def _drop(self, key: str) -> None:
        _, value = self._items.pop(key)
        self.bytes -= len(value)

    async def aclose(self) -> None:
        self._items.clear()
        self.bytes = 0


def _settle(late: set[asyncio.Future[Any]]) -> Callable[[asyncio.Future[Any]], None]:
    def done(task: asyncio.Future[Any]) -> None:
        late.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning

    return done


class RedisStore:
    """Entries under `llm_extproc:cache:<key>` with a TTL (SET PX), shared by
    every replica. The same client library and server as the budgets."""

    def __init__(self, url: str, client: Any = None) -> None:
        if client is None:
            import redis.asyncio as aioredis

            client = aioredis.from_url(
                url,
                socket_timeout=STORE_TIMEOUT_S,
                socket_connect_timeout=STORE_TIMEOUT_S,
                retry_on_timeout=False,
            )
        self._redis = client
        self._late: set[asyncio.Future[Any]] = set()  # lookups that outlived their wait

    async def get(self, key: str, timeout_s: float) -> bytes | None:
        if len(self._late) >= MAX_LATE:
            # Redis is slower than the lookups: stop piling commands on it.
            raise StoreUnavailable("cache store overloaded (too many slow lookups)")
        task = asyncio.ensure_future(self._redis.get(KEY_PREFIX + key))
        try:
            # The command is not cancelled when the wait ends: cancelling it
            # mid-reply would drop the connection, and every later lookup
            # would pay a reconnect (and time out again) on a loaded host.
            raw = await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            self._late.add(task)
            task.add_done_callback(_settle(self._late))
            raise StoreUnavailable("cache store unreachable (TimeoutError)") from None
        except Exception as e:  # redis errors, OSError
            # The URL may hold a password: name the error type only.
            raise StoreUnavailable(f"cache store unreachable ({type(e).__name__})") from None
        return bytes(raw) if raw is not None else None

    async def warm(self) -> None:
        """Open a connection before the first lookup needs it (best effort)."""
        try:
            await asyncio.wait_for(self._redis.ping(), STORE_TIMEOUT_S)
        except Exception as e:
            log.warning("cache store not reachable at start: %s", type(e).__name__)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        ms = max(1, int(ttl_s * 1000))
        try:
            await asyncio.wait_for(self._redis.set(KEY_PREFIX + key, value, px=ms), STORE_TIMEOUT_S)
        except Exception as e:
            raise StoreUnavailable(f"cache store unreachable ({type(e).__name__})") from None

    async def aclose(self) -> None:
        close = getattr(self._redis, "aclose", None) or self._redis.close
        try:
            await close()
        except Exception as e:  # pragma: no cover - best effort on shutdown
            log.warning("closing the cache store failed: %s", type(e).__name__)
