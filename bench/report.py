"""Aggregating the benchmark's runs and printing the result table."""

from __future__ import annotations

import statistics
from typing import Any

from check_targets import format_rows, informational
from profile_server import print_profile


def aggregate(runs: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """One row per (case, conns): medians over the rounds; CPU per request over
    all the rounds' requests. Rows sorted by conns, then case order."""
    rows = []
    for case, conns in sorted({(r["case"], r["conns"]) for r in runs}):
        rs = [r for r in runs if (r["case"], r["conns"]) == (case, conns)]
        reqs = sum(r["requests"] for r in rs)
        cpu = [r["server_cpu_s"] for r in rs if r["server_cpu_s"] is not None]
        rows.append(
            {
                "case": case,
                "conns": conns,
                "rounds": len(rs),
                "requests": reqs,
                "errors": sum(r["error_count"] for r in rs),
                "p50_ms": statistics.median(r["latency_us"]["p50"] for r in rs) / 1000,
                "p99_ms": statistics.median(r["latency_us"]["p99"] for r in rs) / 1000,
                "rps": statistics.median(r["rps"] for r in rs),
                "cpu_us_per_req": sum(cpu) * 1e6 / reqs if cpu and reqs else None,
            }
        )
    rank = {c: i for i, c in enumerate(order)}
    rows.sort(key=lambda r: (r["conns"], rank.get(r["case"], len(rank))))
    return rows


def _table(agg: list[dict[str, Any]]) -> None:
    hdr = (
        f"{'case':<12} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'RPS':>9} {'RPS/floor':>9} "
        f"{'+p50 us':>8} {'CPU us/req':>10} {'errors':>6}"
    )
    print(hdr)
    print("-" * len(hdr))
    for row in agg:
        f = next(r for r in agg if r["case"] == "floor" and r["conns"] == row["conns"])
        cpu = row["cpu_us_per_req"]
        print(
            f"{row['case']:<12} {row['conns']:>4} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} "
            f"{row['rps']:>9.0f} {row['rps'] / f['rps']:>9.2f} "
            f"{(row['p50_ms'] - f['p50_ms']) * 1000:>+8.0f} "
            f"{(f'{cpu:.0f}' if cpu is not None else '-'):>10} {row['errors']:>6}"
        )


# (case, null case, how the line names the null server)
OVER_NULL = (
    ("full", "grpc-null", "the grpc.aio null server"),
    ("full-grpcio", "grpc-null", "the grpc.aio null server"),
    # Same transport stack on both sides: what is left is our code's cost.
    ("full", "h2corn-null", "the h2corn null server"),
)


def over_null(agg: list[dict[str, Any]]) -> list[str]:
    """One line per OVER_NULL pair this run measured at c=1 and c=16."""
    by = {(r["case"], r["conns"]): r for r in agg}
    lines = []
    for case, null, name in OVER_NULL:
        if not all((c, n) in by for c in (case, null) for n in (1, 16)):
            continue
        n1, u1 = by[(null, 1)], by[(case, 1)]
        n16, u16 = by[(null, 16)], by[(case, 16)]
        if not n16["cpu_us_per_req"] or u16["cpu_us_per_req"] is None:
            continue
        lines.append(
            f"{case} over {name} (same 4 messages): "
            f"p50 c=1 {(u1['p50_ms'] - n1['p50_ms']) * 1000:+.0f} us, "
            f"CPU c=16 {u16['cpu_us_per_req'] / n16['cpu_us_per_req']:.2f}x "
            f"({u16['cpu_us_per_req']:.0f} vs {n16['cpu_us_per_req']:.0f} us/req), "
            f"RPS c=16 {u16['rps'] / n16['rps'] * 100:.0f}% of the null server's"
        )
    return lines


def cache_beside_full(agg: list[dict[str, Any]]) -> list[str]:
    """A cache hit next to the full pipeline: added p50 over the floor at c=1,
    server CPU per request at c=16 (when this run measured both)."""
    by = {(r["case"], r["conns"]): r for r in agg}
    if not all((c, n) in by for c in ("floor", "full", "cache-hit") for n in (1, 16)):
        return []

    def added(case: str) -> float:
        return (by[(case, 1)]["p50_ms"] - by[("floor", 1)]["p50_ms"]) * 1000

    def cpu(case: str) -> str:
        v = by[(case, 16)]["cpu_us_per_req"]
        return f"{v:.0f}" if v is not None else "-"

    return [
        f"cache-hit beside full: added p50 c=1 {added('cache-hit'):+.0f} us vs "
        f"{added('full'):+.0f} us; CPU c=16 {cpu('cache-hit')} vs {cpu('full')} us/req"
    ]


def _soaks(res: dict[str, Any]) -> None:
    workers = " + workers" if res["args"]["workers"] > 1 else ""
    for s in res["soaks"]:
        cpu = s["cpu_us_per_req"]
        print(
            f"RSS soak {s['case']} (server{workers}): after warm-up "
            f"{s['rss_after_warmup_kib'] / 1024:.1f} MiB, after {s['requests']} requests "
            f"{s['rss_end_kib'] / 1024:.1f} MiB (second half "
            f"{s['rss_growth_second_half_kib'] / 1024:+.2f} MiB); soak CPU "
            f"{(f'{cpu:.0f}' if cpu is not None else '-')} us/req, errors {s['errors']}"
        )


def _streaming(st: dict[str, Any]) -> None:
    paths = st["paths"]
    print(
        f"streaming ({st['streams']} streams each, drip {st['drip_ms']:.0f} ms, "
        f"{paths['floor']['events_per_stream']:.0f} events/stream)"
    )
    print(
        f"{'path':<12} {'TTFT p50':>9} {'TTFT p99':>9} {'gap p50':>8} {'gap p99':>8} "
        f"{'gap max':>8} {'|gap-drip| p99':>14}"
    )
    for k, v in paths.items():
        print(
            f"{k:<12} {v['ttft_p50_ms']:>9.2f} {v['ttft_p99_ms']:>9.2f} {v['gap_p50_ms']:>8.2f} "
            f"{v['gap_p99_ms']:>8.2f} {v['gap_max_ms']:>8.2f} {v['gap_dev_p99_ms']:>14.2f}"
        )
    for k, a in st["added"].items():
        print(
            f"added {k:<12} TTFT p50 {a['ttft_p50_ms']:+.2f}, p99 {a['ttft_p99_ms']:+.2f}; "
            f"gap p50 {a['gap_p50_ms']:+.2f}, p99 {a['gap_p99_ms']:+.2f} (ms)"
        )


def print_report(res: dict[str, Any]) -> None:
    a = res["args"]
    print()
    print(
        f"llm-extproc bench  {res['timestamp']}  workers={a['workers']} "
        f"uvloop={not a['no_uvloop']} envoy_concurrency={a['envoy_concurrency']}"
    )
    print()
    _table(res["aggregate"])
    print()
    print("\n".join(over_null(res["aggregate"])))
    print("\n".join(cache_beside_full(res["aggregate"])))
    if res["soaks"]:
        print()
        _soaks(res)
    if res["streaming"]:
        print()
        _streaming(res["streaming"])
    print()
    print("issue #14 targets (bench/check_targets.py)")
    print("\n".join(format_rows(res["targets"])))
    print("\n".join(format_rows(informational(res))))
    if res.get("profile"):
        print_profile(res["profile"])
    print()
    print(f"JSON: {res['json_path']}")
