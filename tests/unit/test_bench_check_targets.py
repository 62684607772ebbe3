"""bench/check_targets.py: the issue #14 targets read from one bench result."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from harness import ROOT


@functools.cache
def check_targets() -> ModuleType:
    """bench/check_targets.py (bench/ is scripts, not a package)."""
    path = ROOT / "bench" / "check_targets.py"
    spec = importlib.util.spec_from_file_location("bench_check_targets", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def row(case: str, conns: int, p50_ms: float, rps: float, cpu: float | None) -> dict[str, Any]:
    return {"case": case, "conns": conns, "p50_ms": p50_ms, "rps": rps, "cpu_us_per_req": cpu}


def soak(case: str, second_half_kib: int) -> dict[str, Any]:
    return {
        "case": case,
        "requests": 100_000,
        "rss_growth_kib": second_half_kib * 2,
        "rss_growth_second_half_kib": second_half_kib,
        "rss_second_half_bytes_per_req": second_half_kib * 1024 / 50_000,
        "rss_noise_kib": 1024,
    }


# A run that meets every target, each by a small margin.
GOOD: dict[str, Any] = {
    "aggregate": [
        row("floor", 1, 0.50, 1800, None),
        row("grpc-null", 1, 2.50, 380, 1200),
        row("h2corn-null", 1, 0.90, 1000, 200),
        row("full", 1, 1.20, 700, 500),
        row("full-grpcio", 1, 3.80, 260, 2000),
        row("passthrough", 1, 0.54, 1750, None),
        row("floor", 16, 5.0, 3000, None),
        row("grpc-null", 16, 21.0, 700, 1000),
        row("h2corn-null", 16, 9.0, 1900, 180),
        row("full", 16, 15.0, 950, 450),
        row("full-grpcio", 16, 32.0, 450, 1300),
        row("passthrough", 16, 5.1, 2950, None),
    ],
    "soaks": [soak("full", 300), soak("full-grpcio", 500)],
    "streaming": {"added": {"full": {"ttft_p50_ms": 0.9}, "full-grpcio": {"ttft_p50_ms": 3.1}}},
}


def agg(res: dict[str, Any], case: str, conns: int) -> dict[str, Any]:
    return next(r for r in res["aggregate"] if (r["case"], r["conns"]) == (case, conns))


def passes(res: dict[str, Any]) -> list[bool | None]:
    return [r["pass"] for r in check_targets().evaluate(res)]


def test_a_run_that_meets_every_target() -> None:
    rows = check_targets().evaluate(GOOD)
    assert [r["pass"] for r in rows] == [True] * 7
    by = {r["target"]: r["measured"] for r in rows}
    assert by["full CPU/req at c=16 <= 0.5x grpc-null"].startswith("0.45x (450 / 1000 us/req)")
    assert "grpcio 1.30x" in by["full CPU/req at c=16 <= 0.5x grpc-null"]
    assert by["full added p50 at c=1 <= 0.8 ms over floor"].startswith("+0.70 ms")


@pytest.mark.parametrize(
    ("index", "mutate"),
    [
        (0, lambda r: agg(r, "full", 16).update(cpu_us_per_req=510)),  # 0.51x the null server
        (1, lambda r: agg(r, "full", 1).update(p50_ms=1.31)),  # +0.81 ms
        (2, lambda r: agg(r, "full", 16).update(rps=899)),  # 29.97% of the floor
        (3, lambda r: agg(r, "passthrough", 1).update(p50_ms=0.56)),  # +12%
        (4, lambda r: r["soaks"][0].update(rss_growth_second_half_kib=1100)),
        (5, lambda r: r["soaks"][1].update(rss_growth_second_half_kib=1100)),
        (6, lambda r: r["streaming"]["added"]["full"].update(ttft_p50_ms=1.2)),
    ],
)
def test_each_target_can_miss_alone(index: int, mutate: Any) -> None:
    res = copy.deepcopy(GOOD)
    mutate(res)
    want: list[bool | None] = [True] * 7
    want[index] = False
    assert passes(res) == want


def test_what_a_run_did_not_measure_is_not_a_pass() -> None:
    res = copy.deepcopy(GOOD)
    res["aggregate"] = [r for r in res["aggregate"] if r["case"] != "full"]
    res["soaks"] = []
    res["streaming"] = {"added": {}}
    assert passes(res) == [None, None, None, True, None, None, None]


def test_main_prints_every_target_and_sets_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD))
    assert check_targets().main([str(good)]) == 0
    out = capsys.readouterr().out
    assert out.count("[PASS]") == 7
    bad = copy.deepcopy(GOOD)
    bad["soaks"] = [soak("full", 300)]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert check_targets().main([str(tmp_path / "bad.json")]) == 1
    assert "[n/a ] full-grpcio: RSS flat over the soak" in capsys.readouterr().out
    assert check_targets().main([str(tmp_path / "missing.json")]) == 2


def test_our_code_share_is_full_over_the_h2corn_null_server() -> None:
    (info,) = check_targets().informational(GOOD)
    assert info["target"] == "full over h2corn-null (our code's share)"
    assert info["pass"] is None and info["info"] is True
    # 450 - 180 = 270 us/req of full's 450 (60%), 2.50x; 1.20 - 0.90 ms; 950 / 1900 rps.
    assert info["measured"] == (
        "CPU c=16 +270 us/req = 60% of full's 450 (2.50x the null server's 180); "
        "p50 c=1 +300 us; RPS c=16 50% of the null server's"
    )


def test_our_code_share_is_no_target() -> None:
    res = copy.deepcopy(GOOD)
    agg(res, "h2corn-null", 16).update(cpu_us_per_req=20)  # full: 22.5x the h2corn null server
    assert passes(res) == [True] * 7
    assert check_targets().informational(res)[0]["measured"].startswith("CPU c=16 +430 us/req")
    res["aggregate"] = [r for r in res["aggregate"] if r["case"] != "h2corn-null"]
    assert passes(res) == [True] * 7
    (info,) = check_targets().informational(res)
    assert info["measured"] == "n/a (no h2corn-null c=16 in this run)"


def test_main_prints_the_info_line_and_its_exit_status_ignores_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = copy.deepcopy(GOOD)
    res["aggregate"] = [r for r in res["aggregate"] if r["case"] != "h2corn-null"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(res))
    assert check_targets().main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "  [info] full over h2corn-null (our code's share): n/a (no h2corn-null" in out
    path.write_text(json.dumps(GOOD))
    assert check_targets().main([str(path)]) == 0
    assert "  [info] full over h2corn-null (our code's share): CPU c=16 +270 us/req" in (
        capsys.readouterr().out
    )
