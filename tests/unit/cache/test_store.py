"""Stores: the memory LRU's bounds and TTL; Redis unreachable is bounded and typed."""

from __future__ import annotations

import asyncio
import time

import pytest

from extproc.cache.entry import BadEntry, Entry
from extproc.cache.store import MemoryStore, RedisStore, StoreUnavailable
from extproc.usage import Usage
from harness import free_port


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_memory_lru_by_entries() -> None:
    s = MemoryStore(max_entries=2, max_bytes=1000)
    await s.set("a", b"1", 60)
    await s.set("b", b"2", 60)
    assert await s.get("a") == b"1"  # a is now the most recent
    await s.set("c", b"3", 60)
    assert await s.get("b") is None
    assert await s.get("a") == b"1" and await s.get("c") == b"3"
    assert len(s) == 2


async def test_memory_bounded_by_bytes() -> None:
    s = MemoryStore(max_entries=100, max_bytes=10)
    await s.set("a", b"xxxx", 60)
    await s.set("b", b"yyyy", 60)
    await s.set("c", b"zzzz", 60)  # 12 bytes: a goes
    assert await s.get("a") is None
    assert s.bytes == 8
    await s.set("big", b"x" * 11, 60)  # never fits: not stored, nothing evicted
    assert await s.get("big") is None and s.bytes == 8
    await s.set("b", b"q", 60)  # replacing an entry counts its new size only
    assert s.bytes == 5


async def test_memory_ttl() -> None:
    clock = Clock()
    s = MemoryStore(10, 100, clock)
    await s.set("a", b"1", 5)
    clock.t += 4.9
    assert await s.get("a") == b"1"
    clock.t += 0.2
    assert await s.get("a") is None
    assert s.bytes == 0


def test_entry_round_trip_and_bad_bytes() -> None:
    e = Entry("openai", "chat", "m", b'{"x":1}\n{"y":2}', Usage(1, 2, 3), 12.5)
    assert Entry.decode(e.encode()) == e
    e2 = Entry("ollama", "ollama_chat", "", b"{}", None, 0.0)
    assert Entry.decode(e2.encode()) == e2
    for bad in (b"", b"no header", b'{"f": 99}\n{}', b"[1]\n{}", b'{"f":1}\n'):
        with pytest.raises(BadEntry):
            Entry.decode(bad)


async def test_redis_unreachable_is_bounded() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable) as ei:
            await store.get("k", 0.02)
        assert time.monotonic() - t0 < 2.0  # the wait, not the command (loaded machines: slack)
        assert "redis://" not in str(ei.value)
        with pytest.raises(StoreUnavailable):
            await store.set("k", b"v", 1)
    finally:
        await store.aclose()


class SlowRedis:
    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def get(self, key: str) -> bytes:
        self.calls += 1
        await self.release.wait()
        return b""

    async def aclose(self) -> None:
        pass


async def test_redis_slow_lookup_times_out_without_cancelling() -> None:
    slow = SlowRedis()
    store = RedisStore("", client=slow)
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match="TimeoutError"):
        await store.get("k", 0.02)
    assert time.monotonic() - t0 < 2.0  # the wait, not the command (loaded machines: slack)
    # The command runs on (its connection stays usable); too many such: refused at once.
    for _ in range(63):
        with pytest.raises(StoreUnavailable, match="TimeoutError"):
            await store.get("k", 0.001)
    with pytest.raises(StoreUnavailable, match="overloaded"):
        await store.get("k", 0.02)
    assert slow.calls == 64
    slow.release.set()
    await asyncio.sleep(0.01)
    assert await store.get("k", 1.0) == b""  # Redis caught up: lookups again
