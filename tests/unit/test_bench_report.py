"""bench/report.py: the comparison lines against the null servers."""

from __future__ import annotations

import functools
import sys
from types import ModuleType
from typing import Any

from harness import ROOT


@functools.cache
def report() -> ModuleType:
    """bench/report.py; it imports its siblings by name, as bench/bench.py runs it."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import report as mod
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return mod


def row(case: str, conns: int, p50_ms: float, rps: float, cpu: float | None) -> dict[str, Any]:
    return {"case": case, "conns": conns, "p50_ms": p50_ms, "rps": rps, "cpu_us_per_req": cpu}


AGG = [
    row("floor", 1, 0.50, 1800, None),
    row("grpc-null", 1, 2.50, 380, 1200),
    row("h2corn-null", 1, 0.90, 1000, 200),
    row("full", 1, 1.20, 700, 500),
    row("full-grpcio", 1, 3.80, 260, 2000),
    row("floor", 16, 5.0, 3000, None),
    row("grpc-null", 16, 21.0, 700, 1000),
    row("h2corn-null", 16, 9.0, 1900, 180),
    row("full", 16, 15.0, 950, 450),
    row("full-grpcio", 16, 32.0, 455, 1300),
]


def test_full_is_compared_with_both_null_servers_and_grpcio_with_its_own() -> None:
    assert report().over_null(AGG) == [
        "full over the grpc.aio null server (same 4 messages): p50 c=1 -1300 us, "
        "CPU c=16 0.45x (450 vs 1000 us/req), RPS c=16 136% of the null server's",
        "full-grpcio over the grpc.aio null server (same 4 messages): p50 c=1 +1300 us, "
        "CPU c=16 1.30x (1300 vs 1000 us/req), RPS c=16 65% of the null server's",
        "full over the h2corn null server (same 4 messages): p50 c=1 +300 us, "
        "CPU c=16 2.50x (450 vs 180 us/req), RPS c=16 50% of the null server's",
    ]


def test_a_pair_the_run_did_not_measure_is_left_out() -> None:
    agg = [r for r in AGG if (r["case"], r["conns"]) != ("h2corn-null", 1)]
    assert [line.split(" (")[0] for line in report().over_null(agg)] == [
        "full over the grpc.aio null server",
        "full-grpcio over the grpc.aio null server",
    ]
    no_cpu = [{**r, "cpu_us_per_req": None} if r["case"] == "grpc-null" else r for r in AGG]
    assert [line.split(" (")[0] for line in report().over_null(no_cpu)] == [
        "full over the h2corn null server"
    ]
