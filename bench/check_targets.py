"""The issue #14 performance targets, read from one bench result JSON.

    python bench/check_targets.py bench/results/<timestamp>.json
    python bench/check_targets.py            # the newest result

Every target compares numbers measured within the same run (the machine's
speed drifts between runs; ratios within one run do not). Prints one line per
target with the measured value and PASS / MISS (n/a when the run did not
measure it), then the informational lines (no target, never a miss). Exit
status: 0 all met, 1 any missed or not measured, 2 no readable result.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
RSS_NOISE_KIB = 1024  # the default when a result does not record its own
TRANSPORT_SOAKS = ("full", "full-grpcio")

Row = dict[str, Any]


class Missing(Exception):
    """The run did not measure what a target needs."""


def _agg(res: dict[str, Any], case: str, conns: int) -> Row:
    for row in res.get("aggregate", []):
        if row["case"] == case and row["conns"] == conns:
            return row
    raise Missing(f"no {case} c={conns} in this run")


def _grpcio_note(res: dict[str, Any], conns: int, fn: Callable[[Row], str]) -> str:
    """The same measure for the grpcio transport, for comparison (no target)."""
    try:
        return f"; grpcio {fn(_agg(res, 'full-grpcio', conns))}"
    except Missing:
        return ""


def cpu_vs_null(res: dict[str, Any]) -> Row:
    null = _agg(res, "grpc-null", 16)["cpu_us_per_req"]
    full = _agg(res, "full", 16)["cpu_us_per_req"]
    if not null or full is None:
        raise Missing("no server CPU for full / grpc-null at c=16")

    def ratio(row: Row) -> str:
        return f"{(row['cpu_us_per_req'] or 0) / null:.2f}x"

    return {
        "target": "full CPU/req at c=16 <= 0.5x grpc-null",
        "measured": f"{full / null:.2f}x ({full:.0f} / {null:.0f} us/req)"
        + _grpcio_note(res, 16, ratio),
        "pass": full <= 0.5 * null,
    }


def added_p50(res: dict[str, Any]) -> Row:
    floor = _agg(res, "floor", 1)["p50_ms"]
    full = _agg(res, "full", 1)["p50_ms"] - floor

    def added(row: Row) -> str:
        return f"+{row['p50_ms'] - floor:.2f} ms"

    return {
        "target": "full added p50 at c=1 <= 0.8 ms over floor",
        "measured": f"+{full:.2f} ms" + _grpcio_note(res, 1, added),
        "pass": full <= 0.8,
    }


def rps_vs_floor(res: dict[str, Any]) -> Row:
    floor = _agg(res, "floor", 16)["rps"]
    ratio = _agg(res, "full", 16)["rps"] / floor

    def share(row: Row) -> str:
        return f"{row['rps'] / floor * 100:.0f}%"

    return {
        "target": "full RPS at c=16 >= 30% of floor",
        "measured": f"{ratio * 100:.1f}%" + _grpcio_note(res, 16, share),
        "pass": ratio >= 0.30,
    }


def passthrough_p50(res: dict[str, Any]) -> Row:
    floor = _agg(res, "floor", 1)["p50_ms"]
    rel = (_agg(res, "passthrough", 1)["p50_ms"] - floor) / floor
    return {
        "target": "passthrough p50 at c=1 within 10% of floor",
        "measured": f"{rel * 100:+.1f}%",
        "pass": rel <= 0.10,
    }


def rss_flat(case: str) -> Callable[[dict[str, Any]], Row]:
    def check(res: dict[str, Any]) -> Row:
        soaks = [s for s in res.get("soaks", []) if s["case"] == case]
        if not soaks:
            raise Missing(f"no soak of {case} in this run")
        s = soaks[0]
        noise = s.get("rss_noise_kib", RSS_NOISE_KIB)
        half = s["rss_growth_second_half_kib"]
        return {
            "target": f"{case}: RSS flat over the soak (second-half growth <= "
            f"{noise / 1024:.0f} MiB)",
            "measured": f"{half / 1024:+.2f} MiB in the second half of {s['requests']} "
            f"requests ({s.get('rss_second_half_bytes_per_req', 0):.0f} B/req), "
            f"{s['rss_growth_kib'] / 1024:+.2f} MiB in all",
            "pass": half <= noise,
        }

    check.__name__ = f"rss_flat_{case}"
    return check


def streaming_ttft(res: dict[str, Any]) -> Row:
    added = res.get("streaming", {}).get("added", {})
    if "full" not in added:
        raise Missing("no streaming through full in this run")
    ttft = added["full"]["ttft_p50_ms"]
    note = ""
    if "full-grpcio" in added:
        note = f"; grpcio {added['full-grpcio']['ttft_p50_ms']:+.2f} ms"
    return {
        "target": "streaming: added TTFT p50 <= 1 ms",
        "measured": f"{ttft:+.2f} ms{note}",
        "pass": ttft <= 1.0,
    }


TARGETS: list[tuple[str, Callable[[dict[str, Any]], Row]]] = [
    ("full CPU/req at c=16 <= 0.5x grpc-null", cpu_vs_null),
    ("full added p50 at c=1 <= 0.8 ms over floor", added_p50),
    ("full RPS at c=16 >= 30% of floor", rps_vs_floor),
    ("passthrough p50 at c=1 within 10% of floor", passthrough_p50),
    *((f"{c}: RSS flat over the soak", rss_flat(c)) for c in TRANSPORT_SOAKS),
    ("streaming: added TTFT p50 <= 1 ms", streaming_ttft),
]


def code_share(res: dict[str, Any]) -> Row:
    """full against the null server on its own transport stack (h2corn, same
    config and gRPC framing): what is left is our exchange and codec."""
    null16, full16 = _agg(res, "h2corn-null", 16), _agg(res, "full", 16)
    null, full = null16["cpu_us_per_req"], full16["cpu_us_per_req"]
    if not null or not full:
        raise Missing("no server CPU for full / h2corn-null at c=16")
    p50 = _agg(res, "full", 1)["p50_ms"] - _agg(res, "h2corn-null", 1)["p50_ms"]
    return {
        "target": "full over h2corn-null (our code's share)",
        "measured": f"CPU c=16 {full - null:+.0f} us/req = {(full - null) / full * 100:.0f}% "
        f"of full's {full:.0f} ({full / null:.2f}x the null server's {null:.0f}); "
        f"p50 c=1 {p50 * 1000:+.0f} us; "
        f"RPS c=16 {full16['rps'] / null16['rps'] * 100:.0f}% of the null server's",
        "pass": None,
    }


# Printed with the targets, never a pass or a miss.
INFO: list[tuple[str, Callable[[dict[str, Any]], Row]]] = [
    ("full over h2corn-null (our code's share)", code_share),
]


def _rows(
    res: dict[str, Any], checks: list[tuple[str, Callable[[dict[str, Any]], Row]]]
) -> list[Row]:
    rows = []
    for name, fn in checks:
        try:
            rows.append(fn(res))
        except Missing as e:
            rows.append({"target": name, "measured": f"n/a ({e})", "pass": None})
    return rows


def evaluate(res: dict[str, Any]) -> list[Row]:
    """One row per target: target, measured, pass (True, False, or None when
    the run did not measure it)."""
    return _rows(res, TARGETS)


def informational(res: dict[str, Any]) -> list[Row]:
    """The INFO rows (info: True; pass always None)."""
    return [{**r, "info": True} for r in _rows(res, INFO)]


def format_rows(rows: list[Row]) -> list[str]:
    mark = {True: "PASS", False: "MISS", None: "n/a "}
    return [
        f"  [{'info' if r.get('info') else mark[r['pass']]}] {r['target']}: {r['measured']}"
        for r in rows
    ]


def newest() -> Path:
    found = sorted(p for p in RESULTS.glob("*.json") if p.stem[:1].isdigit() and "-" not in p.stem)
    if not found:
        raise FileNotFoundError(f"no result JSON in {RESULTS}")
    return found[-1]


def main(argv: list[str]) -> int:
    try:
        path = Path(argv[0]) if argv else newest()
        res = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        print(f"check_targets: {e}", file=sys.stderr)
        return 2
    rows = evaluate(res)
    print(f"issue #14 targets: {path} (git {res.get('git', '?')}, {res.get('command', '?')})")
    print("\n".join(format_rows(rows + informational(res))))
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
