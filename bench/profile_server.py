"""py-spy profile of one llm-extproc server under c=16 load, summarised by
category (transport, protobuf, our code, logging, ...) and scaled to µs per
request with the CPU the run measured. Used by `bench/run.sh --profile`."""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from load import wrk
from stack import BENCH, CASES, ROOT, Stack, track, untrack

CATEGORIES = [
    # (category, regex on a py-spy frame "func (file:line)"), first match wins
    # walking from the leaf up.
    ("logging", r"/logging/|observability/logs\.py"),
    ("regex (re2)", r"\bre2\b|processors/regex_guard\.py"),
    ("protobuf conversion", r"google/protobuf|_pb2\.py|transport/codec\.py|_message\.abi3|upb"),
    ("json (orjson)", r"orjson"),
    ("exchange/translators", r"extproc/(core|translators|providers|processors|streaming)/"),
    ("grpc aio transport", r"grpc/|cygrpc|grpc_|transport/grpcio\.py"),
    ("h2corn transport", r"h2corn|transport/asgi_grpc\.py"),
    ("asyncio/uvloop", r"asyncio/|uvloop"),
]


# Leaf frames of a thread waiting, not working (epoll/futex waits of the event
# loop, grpc's poller and event-engine threads).
IDLE_LEAVES = frozenset(
    {
        "epoll_wait",
        "epoll_pwait",
        "poll",
        "ppoll",
        "select",
        "syscall",
        "pthread_cond_wait",
        "pthread_cond_timedwait",
        "__futex_abstimed_wait_common",
        "nanosleep",
        "clock_nanosleep",
        "accept4",
        "read",
    }
)


def _servicer_io_lines() -> set[str]:
    """servicer.py lines where Process hands over to grpc (`async for` over the
    request iterator receives, `yield` sends): their time is the transport's."""
    out = set()
    with contextlib.suppress(OSError):
        src = (ROOT / "extproc" / "transport" / "servicer.py").read_text().splitlines()
        for i, line in enumerate(src, 1):
            t = line.strip()
            if t.startswith("async for ") or t.startswith("yield "):
                out.add(f"servicer.py:{i})")
    return out


def summarise_profile(raw: Path, cpu_us_per_req: float | None) -> dict[str, Any]:
    """py-spy --format raw: 'frame;frame;...;leaf count' per line."""
    io_lines = _servicer_io_lines()
    by_cat: collections.Counter[str] = collections.Counter()
    self_frames: collections.Counter[str] = collections.Counter()
    own_lines: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        k = int(n)
        frames = stack.split(";")
        leaf = frames[-1]
        if leaf.split(" ", 1)[0] in IDLE_LEAVES:
            # --native samples threads blocked in the kernel too: not CPU.
            idle += k
            continue
        total += k
        self_frames[leaf] += k
        cat = "other"
        for fr in reversed(frames):
            if any(fr.endswith(x) for x in io_lines):
                cat = "grpc aio transport"
                break
            for name, rx in CATEGORIES:
                if re.search(rx, fr):
                    cat = name
                    break
            if cat != "other":
                break
        by_cat[cat] += k
        # The innermost frame of our own code: where our time goes, C calls
        # (orjson, re2, protobuf constructors) included.
        for fr in reversed(frames):
            if re.search(r"[ (/]extproc/", fr) and "site-packages" not in fr and "cli.py" not in fr:
                own_lines[fr] += k
                break

    def share(c: collections.Counter[str], top: int) -> list[dict[str, Any]]:
        rows = []
        for name, k in c.most_common(top):
            frac = k / total if total else 0
            rows.append(
                {
                    "what": name,
                    "share": frac,
                    "us_per_req": frac * cpu_us_per_req if cpu_us_per_req else None,
                }
            )
        return rows

    return {
        "samples": total,
        "idle_samples_dropped": idle,
        "categories": share(by_cat, 20),
        "top_self": share(self_frames, 25),
        "top_own_code": share(own_lines, 25),
    }


def profile(args: argparse.Namespace, st: Stack, ts: str, cpu_us_per_req: float | None) -> Any:
    pyspy = shutil.which("py-spy") or str(Path(args.python).parent / "py-spy")
    if not Path(pyspy).exists():
        print("  py-spy not installed; skipping the profile", flush=True)
        return None
    case = CASES[args.profile_case]
    pids = st.pids(case.server)
    target = pids[-1] if args.workers > 1 else pids[0]  # one worker
    results = BENCH / "results"
    raw = results / f"{ts}-profile.txt"
    svg = results / f"{ts}-profile.svg"
    d = args.profile_seconds
    outs = {}
    for fmt, path in (("raw", raw), ("flamegraph", svg)):
        cmd = [pyspy, "record", "--pid", str(target), "--rate", "200", "--duration", str(d)]
        cmd += ["--format", fmt, "--output", str(path)]
        # --native (C frames: grpc core, cython, upb) pauses the process to
        # unwind; without it py-spy samples without stopping the server.
        cmd.append("--native" if args.native else "--nonblocking")
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        track(spy)
        time.sleep(0.5)
        wrk(args, st.listener(case.listener), case.host, 16, d + 1)
        _, err = spy.communicate(timeout=60)
        untrack(spy)
        if spy.returncode != 0:
            print(f"  py-spy failed: {err.decode(errors='replace')[-500:]}", flush=True)
            return None
        outs[fmt] = str(path.relative_to(ROOT))
    summary = summarise_profile(raw, cpu_us_per_req)
    summary["files"] = outs
    return summary


def print_profile(p: dict[str, Any] | None) -> None:
    if p:
        print()
        print(
            f"profile ({p['samples']} samples, one server process, c=16 load; "
            f"us/req scaled by the measured CPU/req)"
        )
        for row in p["categories"]:
            us = f"{row['us_per_req']:.0f} us" if row["us_per_req"] else ""
            print(f"  {row['share'] * 100:5.1f}%  {us:>7}  {row['what']}")
        print("  our code, innermost frame (incl. the C it calls):")
        for row in p["top_own_code"][:12]:
            us = f"{row['us_per_req']:.0f} us" if row["us_per_req"] else ""
            print(f"  {row['share'] * 100:5.1f}%  {us:>7}  {row['what']}")
        print("  top self frames:")
        for row in p["top_self"][:15]:
            us = f"{row['us_per_req']:.0f} us" if row["us_per_req"] else ""
            print(f"  {row['share'] * 100:5.1f}%  {us:>7}  {row['what']}")
        print(f"  files: {', '.join(p['files'].values())}")
