"""docs/grafana-dashboard.json: every query names metrics the service exports,
with labels those metrics have."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.observability.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"
_IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# PromQL words that are not metric names.
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
     "bool", "offset"}
)  # fmt: skip
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def exported() -> dict[str, frozenset[str]]:
    """Every series name the service exports -> its label names."""
    rt = compile_config(
        load_text(
            "providers: [{name: q, type: qwen, api_tokens: [k]}]\nroutes: [{name: r, provider: q}]"
        ),
        env={},
    )
    m = Metrics(rt)
    out: dict[str, frozenset[str]] = {}
    for metric in vars(m).values():
        kind = getattr(metric, "_type", None)
        if kind not in _SUFFIXES:
            continue
        labels = frozenset(metric._labelnames) | ({"le"} if kind == "histogram" else set())
        for suffix in _SUFFIXES[kind]:
            out[metric._name + suffix] = labels
    return out


def queries(dash: dict[str, Any]) -> list[str]:
    out = [t["expr"] for p in dash["panels"] for t in p.get("targets", ())]
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def names_and_labels(expr: str) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """(metric names, (metric, label) pairs of selectors, labels of by/without)."""
    pairs = []
    for name, body in re.findall(rf"({_IDENT})\s*\{{([^}}]*)\}}", expr):
        for label in re.findall(rf"({_IDENT})\s*(?:=~|!~|!=|=)", body):
            pairs.append((name, label))
    grouping = [
        label.strip()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        for label in group.split(",")
        if label.strip()
    ]
    lv = re.findall(rf"label_values\(\s*({_IDENT})\s*,\s*({_IDENT})\s*\)", expr)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    stripped = re.sub(r"\b(?:by|without)\s*\([^)]*\)", " ", stripped)
    stripped = re.sub(r"label_values\([^)]*\)", " ", stripped)
    names = [
        tok
        for tok in re.findall(rf"(?<![\w.$])({_IDENT})\b(?!\s*\()", stripped)
        if tok not in _KEYWORDS
    ]
    for metric, label in lv:
        names.append(metric)
        pairs.append((metric, label))
    return names, pairs, grouping


@pytest.fixture(scope="module")
def dash() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_every_query_names_exported_metrics_and_their_labels(dash: dict[str, Any]) -> None:
    series = exported()
    qs = queries(dash)
    assert len(qs) >= 15
    for q in qs:
        names, pairs, grouping = names_and_labels(q)
        assert names, f"no metric in {q!r}"
        for n in names:
            assert n in series, f"{n!r} in {q!r} is not exported"
        for n, label in pairs:
            assert label in series[n], f"{n!r} has no label {label!r} ({q!r})"
        have = frozenset().union(*(series[n] for n in names))
        for label in grouping:
            assert label in have, f"grouping label {label!r} of {q!r} is on none of {names}"


def test_the_dashboard_covers_what_users_watch(dash: dict[str, Any]) -> None:
    text = " ".join(queries(dash))
    for metric in (
        "llm_extproc_requests_total",
        "gen_ai_client_token_usage_sum",
        "llm_extproc_cost_usd_total",
        "gen_ai_server_request_duration_seconds_bucket",
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "llm_extproc_overhead_seconds_bucket",
        "llm_extproc_upstream_errors_total",
    ):
        assert metric in text, metric
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_the_checker_catches_a_wrong_name_or_label() -> None:
    series = exported()
    names, pairs, _ = names_and_labels(
        'sum by (x) (rate(llm_extproc_request_total{provider="a"}[5m]))'
    )
    assert names == ["llm_extproc_request_total"] and names[0] not in series
    names, pairs, grouping = names_and_labels(
        'sum by (model) (rate(llm_extproc_requests_total{consumer="a"}[5m]))'
    )
    assert pairs == [("llm_extproc_requests_total", "consumer")]
    assert "consumer" not in series["llm_extproc_requests_total"]
    assert grouping == ["model"]
