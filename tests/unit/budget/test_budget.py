"""Token budgets: fixed windows on a fake clock; the Redis store's commands."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from extproc.budget import (
    BudgetUnavailable,
    BudgetUsage,
    MemoryBudget,
    RedisBudget,
    budget_reject,
    make_budget,
    window_of,
)
from extproc.budget.base import Reservation, reservation_size, window_label
from extproc.budget.estimate import estimate_tokens, output_cap
from extproc.budget.redis_store import _RESERVE, _SETTLE
from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_window_of_is_epoch_aligned() -> None:
    assert window_of(125.0, 60) == (120.0, 180.0)
    assert window_of(120.0, 60) == (120.0, 180.0)
    assert window_of(0.7, 0.5) == (0.5, 1.0)
    assert window_label(120.0) == "120" and window_label(0.5) == "0.500"


async def test_memory_fixed_window() -> None:
    clock = Clock(1000.0)
    b = MemoryBudget(60, clock=clock)
    assert await b.usage("a") == BudgetUsage(0, 20.0)
    assert await b.charge("a", 30) == 30
    assert await b.charge("a", 25) == 55
    assert await b.charge("a", -5) == 55  # never negative
    assert (await b.usage("a")).used == 55 and (await b.usage("b")).used == 0
    clock.t = 1019.5
    assert await b.usage("a") == BudgetUsage(55, 0.5)
    clock.t = 1020.0  # the next window starts empty
    assert await b.usage("a") == BudgetUsage(0, 60.0)
    assert await b.charge("a", 1) == 1


def test_memory_rejects_bad_window() -> None:
    with pytest.raises(ValueError):
        MemoryBudget(0)


def test_budget_reject_retry_after_rounds_up() -> None:
    rej = budget_reject("alice", 100, 60, BudgetUsage(150, 0.2), "openai")
    assert rej.status == 429 and dict(rej.headers)["retry-after"] == "1"
    assert b"100 tokens per 60s" in rej.body
    rej = budget_reject("alice", 100, 60, BudgetUsage(150, 41.01), "ollama")
    assert dict(rej.headers)["retry-after"] == "42"


class FakeRedis:
    """The few redis.asyncio calls RedisBudget makes."""

    def __init__(self) -> None:
        self.data: dict[str, int] = {}
        self.ttl: dict[str, int] = {}
        self.down = False
        self.closed = False

    async def get(self, key: str) -> bytes | None:
        if self.down:
            raise ConnectionError("Error connecting to redis://:hunter2@host")
        v = self.data.get(key)
        return None if v is None else str(v).encode()

    async def eval(self, script: str, nkeys: int, key: str, *args: int) -> Any:
        """The two Lua scripts, as Redis runs them: one step each."""
        if self.down:
            raise ConnectionError("Error connecting to redis://:hunter2@host")
        assert nkeys == 1
        used = self.data.get(key)
        if script == _RESERVE:
            want, limit, ttl = args
            have = used or 0
            if have >= limit or have + want > limit:
                return [0, have]
            self.data[key] = have + want
            self.ttl[key] = ttl
            return [1, self.data[key]]
        assert script == _SETTLE
        if used is None:
            return 0
        self.data[key] = max(0, used + args[0])
        return 1

    def pipeline(self, transaction: bool = True) -> FakePipe:
        assert transaction
        return FakePipe(self)

    async def aclose(self) -> None:
        self.closed = True


class FakePipe:
    def __init__(self, r: FakeRedis) -> None:
        self.r = r
        self.ops: list[tuple[str, str, int]] = []

    async def __aenter__(self) -> FakePipe:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def incrby(self, key: str, n: int) -> None:
        self.ops.append(("incrby", key, n))

    def expire(self, key: str, s: int) -> None:
        self.ops.append(("expire", key, s))

    async def execute(self) -> list[Any]:
        if self.r.down:
            raise ConnectionError("down")
        out: list[Any] = []
        for op, key, n in self.ops:
            if op == "incrby":
                self.r.data[key] = self.r.data.get(key, 0) + n
                out.append(self.r.data[key])
            else:
                self.r.ttl[key] = n
                out.append(True)
        return out


def test_redis_budget_keys_and_commands() -> None:
    fake = FakeRedis()
    clock = Clock(1000.0)
    b = RedisBudget("redis://unused", 60, clock=clock, client=fake)

    async def run() -> None:
        assert (await b.usage("alice")) == BudgetUsage(0, 20.0)
        assert await b.charge("alice", 40) == 40
        assert await b.charge("alice", 2) == 42
        assert fake.data == {"llm_extproc:budget:alice:960": 42}
        # The key outlives its window (ends at 1020) by one window at most.
        assert 60 <= fake.ttl["llm_extproc:budget:alice:960"] <= 80
        assert (await b.usage("alice")).used == 42
        clock.t = 1020.0
        assert (await b.usage("alice")).used == 0
        await b.aclose()

    asyncio.run(run())
    assert fake.closed


def test_redis_unreachable_names_no_secret() -> None:
    fake = FakeRedis()
    fake.down = True
    b = RedisBudget("redis://:hunter2@host:6379", 60, client=fake)

    async def run() -> None:
        with pytest.raises(BudgetUnavailable) as e1:
            await b.usage("alice")
        with pytest.raises(BudgetUnavailable) as e2:
            await b.charge("alice", 1)
        for e in (e1, e2):
            assert "hunter2" not in str(e.value) and e.value.__cause__ is None

    asyncio.run(run())


def test_redis_client_fails_fast_when_nothing_listens() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = RedisBudget(f"redis://127.0.0.1:{port}/0", 60, timeout_s=0.5)

    async def run() -> None:
        with pytest.raises(BudgetUnavailable):
            await b.usage("alice")
        await b.aclose()

    asyncio.run(run())


def test_make_budget() -> None:
    base = (
        "providers: [{name: q, type: qwen, api_tokens: [x]}]\n"
        "routes: [{name: r, provider: q, auth: {required: true}}]\n"
    )
    none = compile_config(load_text(base + "consumers: [{name: a, keys: [k]}]\n"))
    assert make_budget(none) is None
    mem = compile_config(
        load_text(
            base + "consumers: [{name: a, keys: [k], token_budget: 5}]\nbudgets: {window: 10s}\n"
        )
    )
    b = make_budget(mem)
    assert isinstance(b, MemoryBudget) and b.window_s == 10
    red = compile_config(
        load_text(
            base
            + "consumers: [{name: a, keys: [k], token_budget: 5}]\n"
            + "budgets: {backend: redis, redis_url: 'redis://127.0.0.1:1/0'}\n"
        )
    )
    rb = make_budget(red)
    assert isinstance(rb, RedisBudget) and rb.window_s == 60
    asyncio.run(rb.aclose())


async def test_memory_reserve_and_settle() -> None:
    clock = Clock(1000.0)
    b = MemoryBudget(60, clock=clock)
    r1 = await b.reserve("a", 20, 30)
    assert r1 == Reservation("a", 960.0, 20)
    # 20 + 20 > 30: refused, with the window's usage for retry-after.
    assert await b.reserve("a", 20, 30) == BudgetUsage(20, 20.0)
    r2 = await b.reserve("a", 10, 30)
    assert isinstance(r2, Reservation) and (await b.usage("a")).used == 30
    assert isinstance(await b.reserve("a", 0, 30), BudgetUsage)  # used up: even 0 waits
    await b.settle(r1, 7)  # the request used 7 of its 20
    await b.settle(r2, 0)  # failed: released
    assert (await b.usage("a")).used == 7
    clock.t = 1020.0  # next window: settling an old reservation changes nothing
    r3 = await b.reserve("a", 30, 30)
    assert isinstance(r3, Reservation)
    await b.settle(r1, 100)
    assert (await b.usage("a")).used == 30


async def test_memory_reserve_is_atomic_under_concurrency() -> None:
    b = MemoryBudget(3600)
    got = await asyncio.gather(*(b.reserve("a", 7, 30) for _ in range(50)))
    assert sum(isinstance(g, Reservation) for g in got) == 4  # 4 * 7 = 28 <= 30


def test_reservation_size_caps_at_the_budget() -> None:
    assert reservation_size(50, 30) == 30 and reservation_size(5, 30) == 5
    assert reservation_size(-1, 30) == 0


def test_estimate_tokens() -> None:
    assert estimate_tokens("chat", {"max_tokens": 10}, 40, 1024) == 20
    assert estimate_tokens("chat", {"max_completion_tokens": 3}, 41, 1024) == 14
    assert estimate_tokens("other", {"max_output_tokens": 5}, 8, 1024) == 7
    assert estimate_tokens("ollama_chat", {"options": {"num_predict": 9}}, 4, 1024) == 10
    assert estimate_tokens("ollama_chat", {"options": {"num_predict": -1}}, 4, 100) == 101
    assert estimate_tokens("chat", {}, 4, 100) == 101  # no cap: the default
    assert estimate_tokens("embeddings", {"input": "x"}, 12, 100) == 3
    assert estimate_tokens("anthropic_count_tokens", {"messages": []}, 40, 100) == 0
    assert estimate_tokens("other", {}, 0, 100) == 0  # bodyless
    assert output_cap({"max_tokens": True}) is None and output_cap({"max_tokens": "9"}) is None


def test_redis_reserve_and_settle_commands() -> None:
    fake = FakeRedis()
    clock = Clock(1000.0)
    b = RedisBudget("redis://unused", 60, clock=clock, client=fake)
    key = "llm_extproc:budget:alice:960"

    async def run() -> None:
        r = await b.reserve("alice", 25, 30)
        assert r == Reservation("alice", 960.0, 25) and fake.data == {key: 25}
        assert 60 <= fake.ttl[key] <= 80
        assert await b.reserve("alice", 6, 30) == BudgetUsage(25, 20.0)
        assert isinstance(r, Reservation)
        await b.settle(r, 12)
        assert fake.data == {key: 12}
        clock.t = 1100.0
        await b.settle(Reservation("alice", 1020.0, 5), 9)  # that key is gone: not recreated
        assert "llm_extproc:budget:alice:1020" not in fake.data
        fake.down = True
        with pytest.raises(BudgetUnavailable) as e:
            await b.reserve("alice", 1, 30)
        assert "hunter2" not in str(e.value)

    asyncio.run(run())
