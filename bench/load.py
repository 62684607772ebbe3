"""Load for the benchmark: wrk runs with the server's CPU read around them,
the streaming TTFT/gap measurement, and the RSS soak."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from stack import BENCH, CASES, Stack, cpu_seconds, rss_kib

CHAT_BODY = json.dumps(
    {
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Say hello in one word, please."},
        ],
        "max_tokens": 16,
        "temperature": 0.2,
    },
    separators=(",", ":"),
)
STREAM_BODY = json.dumps(
    {
        "messages": [{"role": "user", "content": "Stream a short greeting."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    separators=(",", ":"),
)
CLIENT_AUTH = "Bearer sk-client-should-be-replaced"
# Second-half RSS growth below this is allocator noise, not a leak: at the
# ~130 B/request the grpc.aio stack leaked, a 100k soak grows ~6 MiB per half.
RSS_NOISE_KIB = 1024


def wrk(
    args: argparse.Namespace, port: int, host: str, conns: int, seconds: float
) -> dict[str, Any]:
    env = {**os.environ, "BENCH_BODY": CHAT_BODY, "BENCH_HOST": host}
    cmd = [args.wrk, "-t", str(min(args.wrk_threads, conns)), "-c", str(conns)]
    cmd += ["-d", f"{max(1, round(seconds))}s", "--timeout", "10s"]
    cmd += ["-s", str(BENCH / "wrk_report.lua"), f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            r: dict[str, Any] = json.loads(line[8:])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
            r["error_count"] = sum(r["errors"].values())
            return r
    raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")


def measured_run(
    args: argparse.Namespace, st: Stack, case: str, conns: int, seconds: float
) -> dict[str, Any]:
    c = CASES[case]
    pids = st.pids_for(case)
    c0 = cpu_seconds(pids)
    r = wrk(args, st.listener(c.listener), c.host, conns, seconds)
    c1 = cpu_seconds(pids)
    r["case"], r["conns"] = case, conns
    # No server behind the case (floor, passthrough): nothing to charge.
    r["server_cpu_s"] = c1 - c0 if pids else None
    r["server_cpu_us_per_req"] = (c1 - c0) * 1e6 / r["requests"] if pids and r["requests"] else None
    return r


# -- streaming ------------------------------------------------------------------


def one_stream(port: int, host: str) -> dict[str, Any]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        t0 = time.perf_counter()
        c.request(
            "POST",
            "/v1/chat/completions",
            body=STREAM_BODY,
            headers={
                "Host": host,
                "Content-Type": "application/json",
                "Authorization": CLIENT_AUTH,
            },
        )
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"stream via {port}/{host}: status {r.status} {r.read()[:200]!r}")
        times, done = [], False
        while line := r.readline():
            if line.startswith(b"data:"):
                times.append(time.perf_counter())
                done = done or line.strip() == b"data: [DONE]"
        if not done:
            raise RuntimeError(f"stream via {port}/{host}: no [DONE]")
        return {
            "ttft_ms": (times[0] - t0) * 1000,
            "total_ms": (times[-1] - t0) * 1000,
            "gaps_ms": [(b - a) * 1000 for a, b in itertools.pairwise(times)],
            "events": len(times),
        }
    finally:
        c.close()


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _stream_stats(rs: list[dict[str, Any]], drip_ms: float) -> dict[str, Any]:
    ttft = [r["ttft_ms"] for r in rs]
    gaps = [g for r in rs for g in r["gaps_ms"]]
    dev = [abs(g - drip_ms) for g in gaps]
    return {
        "events_per_stream": statistics.median(r["events"] for r in rs),
        "ttft_p50_ms": pct(ttft, 50),
        "ttft_p99_ms": pct(ttft, 99),
        "gap_p50_ms": pct(gaps, 50),
        "gap_p99_ms": pct(gaps, 99),
        "gap_max_ms": max(gaps),
        "gap_dev_p50_ms": pct(dev, 50),
        "gap_dev_p99_ms": pct(dev, 99),
        "total_p50_ms": pct([r["total_ms"] for r in rs], 50),
    }


def streaming(args: argparse.Namespace, st: Stack) -> dict[str, Any]:
    """One stream at a time through the floor and each llm-extproc transport,
    interleaved so drift hits them alike."""
    paths = {"floor": "floor"}
    for case in ("full", "full-grpcio"):
        if CASES[case].server in st.servers:
            paths[case] = CASES[case].listener
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in paths}
    for _ in range(2):  # warm every path
        for listener in paths.values():
            one_stream(st.listener(listener), "stream.bench")
    for _ in range(args.streams):
        for k, listener in paths.items():
            runs[k].append(one_stream(st.listener(listener), "stream.bench"))
    drip_ms = args.drip * 1000
    out: dict[str, Any] = {"drip_ms": drip_ms, "streams": args.streams, "paths": {}, "added": {}}
    for k, rs in runs.items():
        out["paths"][k] = _stream_stats(rs, drip_ms)
    f = out["paths"]["floor"]
    for k in paths:
        if k != "floor":
            e = out["paths"][k]
            out["added"][k] = {
                m: e[m] - f[m]
                for m in ("ttft_p50_ms", "ttft_p99_ms", "gap_p50_ms", "gap_p99_ms", "total_p50_ms")
            }
    return out


# -- soak -------------------------------------------------------------------------


def soak(args: argparse.Namespace, st: Stack, case: str) -> dict[str, Any]:
    """One case at concurrency 16 until args.requests have been served, RSS
    of its server sampled after every chunk."""
    c = CASES[case]
    pids = st.pids_for(case)
    traced = args.tracemalloc and c.server in ("h2corn", "grpcio")
    if traced:
        os.kill(pids[-1], signal.SIGUSR1)  # baseline snapshot
        time.sleep(1)
    samples = [{"requests": 0, "rss_kib": rss_kib(pids)}]
    total, errors, cpu0 = 0, 0, cpu_seconds(pids)
    while total < args.requests:
        r = wrk(args, st.listener(c.listener), c.host, 16, args.soak_chunk)
        total += r["requests"]
        errors += r["error_count"]
        samples.append({"requests": total, "rss_kib": rss_kib(st.pids_for(case))})
        print(
            f"  soak {case}: {total} requests, RSS {samples[-1]['rss_kib'] / 1024:.1f} MiB",
            flush=True,
        )
    cpu = cpu_seconds(st.pids_for(case)) - cpu0
    if traced:
        print_tracemalloc(pids[-1])
    start_kib, end_kib = samples[0]["rss_kib"], samples[-1]["rss_kib"]
    # Growth over the second half of the soak: a leak keeps growing, a warm
    # allocator settles.
    half = next(s for s in samples if s["requests"] >= total / 2)
    second = end_kib - half["rss_kib"]
    return {
        "case": case,
        "requests": total,
        "errors": errors,
        "rss_after_warmup_kib": start_kib,
        "rss_end_kib": end_kib,
        "rss_growth_kib": end_kib - start_kib,
        "rss_growth_second_half_kib": second,
        "rss_second_half_bytes_per_req": second * 1024 / max(1, total - half["requests"]),
        "rss_noise_kib": RSS_NOISE_KIB,
        "cpu_us_per_req": cpu * 1e6 / total if total else None,
        "samples": samples,
    }


def print_tracemalloc(pid: int) -> None:
    top = Path(os.environ.get("TRACEMALLOC_OUT", "/tmp/tracemalloc-top.txt"))
    with contextlib.suppress(FileNotFoundError):
        top.unlink()
    os.kill(pid, signal.SIGUSR1)
    for _ in range(300):
        if top.exists():
            break
        time.sleep(0.1)
    time.sleep(0.5)
    print(top.read_text() if top.exists() else "no tracemalloc output", flush=True)
