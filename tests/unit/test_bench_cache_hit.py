"""The bench's cache-hit case, without running the benchmark: the bench
config's cache.bench route answers the bench's own request from the cache
the second time (after the same checks as full), and the report puts the hit
beside full."""

from __future__ import annotations

import importlib.util
import re
import sys

import orjson
import yaml

from extproc.cache.service import ResponseCache
from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.core.events import (
    CONTINUE,
    Continue,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange
from harness import ROOT

BENCH = ROOT / "bench"


def bench_module(name: str) -> object:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def upstream_answer() -> bytes:
    """The bench upstream's direct_response body (bench/envoy-bench.yaml)."""
    text = (BENCH / "envoy-bench.yaml").read_text()
    m = re.search(r"inline_string: '(\{.*\})'", text)
    assert m is not None
    return m.group(1).encode()


async def send(ex: Exchange, host: str, body: str) -> object:
    h = {
        ":authority": host,
        ":path": "/v1/chat/completions",
        ":method": "POST",
        "content-type": "application/json",
        "authorization": "Bearer sk-client-should-be-replaced",
    }
    assert await ex.handle(RequestHeaders(h, False)) == CONTINUE
    return await ex.handle(RequestBody(body.encode(), True))


async def test_cache_hit_case_is_a_hit_after_the_checks() -> None:
    load = bench_module("load")
    stack = bench_module("stack")
    bench_cfg = (BENCH / "extproc-bench.yaml").read_text()
    rt = compile_config(load_text(bench_cfg), env={})
    case = stack.CASES["cache-hit"]  # type: ignore[attr-defined]
    assert case.server == "h2corn" and "cache-hit" in stack.DEFAULT_CASES  # type: ignore[attr-defined]
    cache = ResponseCache()
    body = load.CHAT_BODY  # type: ignore[attr-defined]

    ex = Exchange(rt, cache=cache)
    assert isinstance(await send(ex, case.host, body), Continue)  # the first: a miss
    await ex.handle(ResponseHeaders({":status": "200", "content-type": "application/json"}, False))
    await ex.handle(ResponseBody(upstream_answer(), True))
    await cache.drain()

    ex = Exchange(rt, cache=cache)
    d = await send(ex, case.host, body)
    assert isinstance(d, Reject) and d.status == 200 and ("x-llm-cache", "hit") in d.headers
    assert orjson.loads(d.body)["choices"][0]["message"]["content"] == "Hello."
    denied = bench_module("bench").DENIED_BODY  # type: ignore[attr-defined]
    d = await send(Exchange(rt, cache=cache), case.host, denied)
    assert isinstance(d, Reject) and d.status == 403
    # Envoy sends cache.bench to llm-extproc (the LLM virtual host).
    (rc,) = yaml.safe_load((BENCH / "envoy-bench-routes.yaml").read_text())["resources"]
    llm = next(v for v in rc["virtual_hosts"] if v["name"] == "llm")
    assert case.host in llm["domains"]


def row(case: str, conns: int, p50_ms: float, cpu: float | None) -> dict[str, object]:
    return {"case": case, "conns": conns, "p50_ms": p50_ms, "rps": 1.0, "cpu_us_per_req": cpu}


def test_report_puts_the_hit_beside_full() -> None:
    report = bench_module("report")
    agg = [
        row("floor", 1, 0.5, None),
        row("full", 1, 0.6, 100),
        row("cache-hit", 1, 0.45, 60),
        row("floor", 16, 5, None),
        row("full", 16, 6, 90),
        row("cache-hit", 16, 4, 55),
    ]
    (line,) = report.cache_beside_full(agg)  # type: ignore[attr-defined]
    assert (
        line == "cache-hit beside full: added p50 c=1 -50 us vs +100 us; CPU c=16 55 vs 90 us/req"
    )
    assert report.cache_beside_full(agg[:2]) == []  # type: ignore[attr-defined]
