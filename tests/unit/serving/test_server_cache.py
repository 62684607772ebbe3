"""The server's response cache: one per process, handed only to configs with
a cached route; a hit charges no budget (its usage is what it saved)."""

from __future__ import annotations

import asyncio

from extproc.budget import MemoryBudget, Reservation
from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.core.record import ExchangeRecord
from extproc.serving.options import ServeOptions
from extproc.serving.server import Server
from extproc.usage import Usage

CONFIG = """
providers: [{name: q, type: qwen, api_tokens: [sk-p]}]
routes:
- {name: r, provider: q, auth: {required: true}, cache: {}}
consumers: [{name: alice, keys: [k-alice], token_budget: 1000}]
"""


async def test_hits_charge_no_budget_misses_do() -> None:
    budget = MemoryBudget(60)
    s = Server(
        compile_config(load_text(CONFIG), {}),
        ServeOptions(host="127.0.0.1", port=0, grace_s=1),
        budget=budget,
    )
    assert s.generation.cache is s.cache
    hit = ExchangeRecord(route="r", consumer="alice", status=200, cache="hit", usage=Usage.of(7, 3))
    s._report(None, hit)
    await asyncio.sleep(0.01)
    assert (await budget.usage("alice")).used == 0
    miss = ExchangeRecord(
        route="r", consumer="alice", status=200, cache="miss", usage=Usage.of(7, 3)
    )
    s._report(None, miss)
    await asyncio.sleep(0.01)
    assert (await budget.usage("alice")).used == 10


async def test_a_hit_releases_its_budget_reservation() -> None:
    budget = MemoryBudget(60)
    s = Server(
        compile_config(load_text(CONFIG), {}),
        ServeOptions(host="127.0.0.1", port=0, grace_s=1),
        budget=budget,
    )
    got = await budget.reserve("alice", 500, 1000)
    assert isinstance(got, Reservation)
    assert (await budget.usage("alice")).used == 500
    hit = ExchangeRecord(
        route="r", consumer="alice", status=200, cache="hit", usage=Usage.of(7, 3), reservation=got
    )
    s._report(None, hit)
    await asyncio.sleep(0.01)
    assert (await budget.usage("alice")).used == 0


async def test_configs_without_a_cached_route_get_no_cache() -> None:
    text = CONFIG.replace(", cache: {}", "")
    s = Server(compile_config(load_text(text), {}), ServeOptions(host="127.0.0.1", port=0))
    assert s.generation.cache is None
