"""The exchange's two hooks: look up after every check, store at the end.

`ResponseCache` lives as long as the server (entries survive a config
reload); it owns the stores: one bounded memory LRU per route, one Redis
client per URL. Per request, `begin` answers a hit or returns the request's
`CacheState`, which reassembles a streamed answer and hands the entry to
`store_later` when the answer completed normally: a task, so storing never
delays the client's answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.cache.control import client_directives
from extproc.cache.entry import BadEntry, Entry
from extproc.cache.key import cache_key, has_tool_result
from extproc.cache.policy import CachePolicy
from extproc.cache.reassemble import Reassembler, reassembler_for
from extproc.cache.store import MemoryStore, RedisStore, Store, StoreUnavailable
from extproc.cache.synth import CannotSynthesise, synthesise
from extproc.content.endpoints import (
    ANTHROPIC_MESSAGES,
    CHAT,
    EMBEDDINGS,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    RESPONSES,
)
from extproc.usage import Usage

log = logging.getLogger("extproc.cache")

# Endpoints whose answers are cached (count_tokens, model lists and the
# endpoints the gateway does not model are not).
CACHEABLE = frozenset(
    {CHAT, EMBEDDINGS, OLLAMA_CHAT, OLLAMA_GENERATE, ANTHROPIC_MESSAGES, RESPONSES}
)
MAX_PENDING_STORES = 256  # stores in flight; beyond that an answer is not cached
_LOG_EVERY_S = 5.0  # one "store unreachable" line per store per interval

# (route, event) -> None: lookups (hit, miss, bypass, unavailable), stores
# (stored, too_large, failed, dropped).
Observer = Callable[[str, str], None]


@dataclass(slots=True)
class CacheState:
    """One request's cache: its key and what may be done with its answer."""

    route: str
    policy: CachePolicy
    key: str
    api: str
    endpoint: str
    may_store: bool
    reassembler: Reassembler | None = field(default=None)


@dataclass(frozen=True, slots=True)
class Hit:
    status: int
    body: bytes
    content_type: str
    entry: Entry


class ResponseCache:
    def __init__(
        self, observe: Observer | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._observe = observe or (lambda _route, _event: None)
        self._clock = clock
        self._memory: dict[str, tuple[tuple[int, int], MemoryStore]] = {}
        self._redis: dict[str, RedisStore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_warning: dict[int, float] = {}

    # -- stores ------------------------------------------------------------------

    def store_of(self, route: str, policy: CachePolicy) -> Store:
        if policy.backend == "redis":
            store = self._redis.get(policy.redis_url)
            if store is None:
                store = self._redis[policy.redis_url] = RedisStore(policy.redis_url)
            return store
        bounds = (policy.max_entries, policy.max_bytes)
        held = self._memory.get(route)
        if held is None or held[0] != bounds:
            # New route, or a reload changed its bounds: a fresh LRU.
            held = self._memory[route] = (bounds, MemoryStore(*bounds))
        return held[1]

    async def warm(self, routes: Any) -> None:
        """At start and reload: connect the Redis stores the routes use."""
        for r in routes:
            if r.cache is not None and r.cache.backend == "redis":
                store = self.store_of(r.name, r.cache)
                if isinstance(store, RedisStore):
                    await store.warm()

    # -- lookup --------------------------------------------------------------------

    def state_of(
        self,
        *,
        route: str,
        policy: CachePolicy,
        provider: str,
        model: str,
        endpoint: str,
        api: str,
        consumer: str,
        headers: Mapping[str, str],
        body: Mapping[str, Any],
        consumer_disabled: bool,
    ) -> CacheState | None:
        """The request's cache state, or None when this request bypasses the cache."""
        if endpoint not in CACHEABLE or consumer_disabled:
            self._observe(route, "bypass")
            return None
        if not policy.cache_tool_results and has_tool_result(body):
            self._observe(route, "bypass")
            return None
        key = cache_key(
            policy,
            route=route,
            provider=provider,
            model=model,
            endpoint=endpoint,
            consumer=consumer,
            headers=headers,
            body=body,
        )
        _, may_store = client_directives(headers)
        return CacheState(route, policy, key, api, endpoint, may_store)

    async def lookup(
        self, st: CacheState, headers: Mapping[str, str], stream: bool, include_usage: bool
    ) -> Hit | None:
        """The cached answer in the shape this request asks for, or None (go upstream)."""
        may_lookup, _ = client_directives(headers)
        if not may_lookup:
            self._observe(st.route, "bypass")
            return None
        store = self.store_of(st.route, st.policy)
        try:
            raw = await store.get(st.key, st.policy.lookup_timeout_s)
        except StoreUnavailable as e:
            self._observe(st.route, "unavailable")
            self._warn(store, "cache lookup failed, the request goes to the provider", e, st)
            return None
        if raw is None:
            self._observe(st.route, "miss")
            return None
        try:
            entry = Entry.decode(raw)
            if entry.endpoint != st.endpoint:
                raise BadEntry("another endpoint's entry")
            if stream:
                body, ctype = synthesise(entry.endpoint, entry.body, include_usage)
            else:
                body, ctype = entry.body, "application/json"
        except (BadEntry, CannotSynthesise) as e:
            log.warning(
                "unusable cache entry: %s",
                e,
                extra={"fields": {"route": st.route, "key": st.key[:16]}},
            )
            self._observe(st.route, "miss")
            return None
        self._observe(st.route, "hit")
        return Hit(200, body, ctype, entry)

    # -- store ---------------------------------------------------------------------

    def start_stream(self, st: CacheState) -> None:
        if st.may_store:
            st.reassembler = reassembler_for(st.endpoint, st.policy.max_entry_bytes)

    def finish(self, st: CacheState, body: bytes | None, model: str, usage: Usage | None) -> None:
        """The answer completed normally: `body` the non-stream answer (None: a
        stream, taken from its reassembler)."""
        if not st.may_store:
            return
        if body is None:
            r = st.reassembler
            body = r.result(usage) if r is not None else None
            if body is None:
                self._observe(st.route, "incomplete")
                return
        if len(body) > st.policy.max_entry_bytes:
            self._observe(st.route, "too_large")
            return
        if len(self._tasks) >= MAX_PENDING_STORES:
            self._observe(st.route, "dropped")
            return
        entry = Entry(st.api, st.endpoint, model, body, usage, self._clock())
        self._spawn(self._store(st, entry))

    async def _store(self, st: CacheState, entry: Entry) -> None:
        store = self.store_of(st.route, st.policy)
        try:
            await store.set(st.key, entry.encode(), st.policy.ttl_s)
        except StoreUnavailable as e:
            self._observe(st.route, "store_failed")
            self._warn(store, "cache store failed, the answer was not cached", e, st)
            return
        self._observe(st.route, "stored")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _warn(self, store: Store, msg: str, e: Exception, st: CacheState) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(id(store), -_LOG_EVERY_S) >= _LOG_EVERY_S:
            self._last_warning[id(store)] = now
            log.warning(msg, extra={"fields": {"route": st.route, "error": str(e)}})

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for the stores in flight (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def aclose(self, timeout_s: float | None = 5.0) -> None:
        await self.drain(timeout_s)
        for r in self._redis.values():
            await r.aclose()
        self._redis.clear()
        self._memory.clear()
