"""The Envoy side of provider fallback: what `llm-extproc envoy-fallback` prints,
that Envoy accepts it, and that envoy/envoy-demo.yaml carries exactly it."""

from __future__ import annotations

import copy
import importlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.cli import main
from extproc.compiler.compile import compile_config
from extproc.config.fallback import PROVIDER_METADATA_KEY
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
from extproc.envoy_fallback import UPSTREAM_FILTER, fallback_resources, merge_fallback
from harness import ROOT, envoy_binary
from support import runtime as compile_runtime

CONFIG = """
providers:
- {name: qwen, type: qwen, api_tokens: [k1]}
- {name: qwen-b, type: qwen, host: "10.0.0.7:8000", api_tokens: [k2]}
- {name: claude, type: claude, api_tokens: [k3]}
- {name: local, type: ollama, base_url: "http://ollama.internal:11434"}
routes:
- name: chat
  match: {hosts: [a.test]}
  providers: [{provider: qwen, weight: 3}, {provider: qwen-b, weight: 1}]
  fallback: [claude]
  retry: {retry_on: ["429", "timeout"], max_attempts: 3, per_try_timeout: 15s}
- {name: plain, match: {hosts: [b.test]}, provider: qwen}
- {name: local, match: {hosts: [c.test]}, provider: local, client_api: ollama, retry: {}}
observability: {metadata_namespace: gw}
"""


def runtime(text: str = CONFIG) -> Runtime:
    return compile_runtime(text)


@pytest.fixture(scope="module")
def res() -> dict[str, Any]:
    return fallback_resources(runtime())


def route(res: dict[str, Any], name: str) -> dict[str, Any]:
    (r,) = [r for r in res["virtual_host"]["routes"] if r["name"] == f"llm-fallback/{name}"]
    return r


def clusters(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in res["clusters"]}


def test_a_config_without_fallback_needs_nothing() -> None:
    assert (
        fallback_resources(
            runtime(CONFIG.split("- name: chat")[0] + "- {name: p, provider: qwen}\n")
        )
        == {}
    )


def test_only_fallback_routes_get_an_envoy_route(res: dict[str, Any]) -> None:
    vh = res["virtual_host"]
    assert vh["domains"] == ["llm-fallback"]
    assert vh["include_request_attempt_count"] and vh["include_attempt_count_in_response"]
    assert [r["name"] for r in vh["routes"]] == ["llm-fallback/chat", "llm-fallback/local"]


def test_the_route_matches_the_gateways_metadata_only(res: dict[str, Any]) -> None:
    (m,) = route(res, "chat")["match"]["dynamic_metadata"]
    assert m == {
        "filter": "gw",
        "path": [{"key": "fallback"}],
        "value": {"string_match": {"exact": "chat"}},
    }


def test_attempt_n_goes_to_group_n(res: dict[str, Any]) -> None:
    spec = route(res, "chat")["route"]["inline_cluster_specifier_plugin"]["extension"]
    assert spec["name"] == "envoy.router.cluster_specifier_plugin.priority_group"
    # A request's own order (providers whose keys cool down last) comes from here.
    assert spec["typed_config"]["override_metadata_namespace"] == "gw.fallback"
    groups = spec["typed_config"]["priority_groups"]
    assert groups == [
        {
            "name": "attempt-1",
            "clusters": [
                {"cluster_name": "llm_fallback_qwen", "weight": 3},
                {"cluster_name": "llm_fallback_qwen-b", "weight": 1},
            ],
        },
        {"name": "attempt-2", "clusters": [{"cluster_name": "llm_fallback_claude", "weight": 1}]},
    ]


def test_retry_policy_from_retry_on(res: dict[str, Any]) -> None:
    assert route(res, "chat")["route"]["retry_policy"] == {
        "retry_on": "reset,retriable-status-codes",
        "retriable_status_codes": [429],
        "num_retries": 2,
        "per_try_timeout": "15s",
        "refresh_cluster_on_retry": True,
    }
    # Defaults: every condition, one attempt per group.
    assert route(res, "local")["route"]["retry_policy"] == {
        "retry_on": "5xx,connect-failure,reset,retriable-status-codes",
        "retriable_status_codes": [429],
        "num_retries": 0,
        "refresh_cluster_on_retry": True,
    }


def test_each_provider_cluster_names_its_provider_to_the_upstream_filter(
    res: dict[str, Any],
) -> None:
    cs = clusters(res)
    assert set(cs) == {f"llm_fallback_{n}" for n in ("qwen", "qwen-b", "claude", "local")}
    for name, c in cs.items():
        opts = c["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]
        ext, codec = opts["http_filters"]
        assert codec["name"] == "envoy.filters.http.upstream_codec"
        assert ext["name"] == UPSTREAM_FILTER
        cfg = ext["typed_config"]
        (md,) = cfg["grpc_service"]["initial_metadata"]
        assert md == {"key": PROVIDER_METADATA_KEY, "value": name.removeprefix("llm_fallback_")}
        assert cfg["grpc_service"]["envoy_grpc"] == {"cluster_name": "llm_extproc"}
        assert cfg["metadata_options"]["forwarding_namespaces"] == {"untyped": ["gw"]}
        assert cfg["processing_mode"]["request_body_mode"] == "BUFFERED"
        assert cfg["failure_mode_allow"] is False
        # Envoy's default allows 3 retries at once per cluster: a fallback needs more.
        (th,) = c["circuit_breakers"]["thresholds"]
        assert th["retry_budget"]["budget_percent"] == {"value": 100.0}


def test_clusters_reach_the_provider_host(res: dict[str, Any]) -> None:
    def where(c: dict[str, Any]) -> tuple[str, str, int, bool]:
        ep = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        sa = ep["address"]["socket_address"]
        return c["type"], sa["address"], sa["port_value"], "transport_socket" in c

    cs = clusters(res)
    assert where(cs["llm_fallback_qwen"]) == ("STRICT_DNS", "dashscope.aliyuncs.com", 443, True)
    tls = cs["llm_fallback_qwen"]["transport_socket"]["typed_config"]
    assert tls["sni"] == "dashscope.aliyuncs.com"
    # The provider's certificate is verified: the connection carries its key.
    check = tls["common_tls_context"]["validation_context"]
    assert check["trusted_ca"]["filename"].endswith(".crt")
    assert check["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "dashscope.aliyuncs.com"}}
    ]
    assert where(cs["llm_fallback_qwen-b"]) == ("STATIC", "10.0.0.7", 8000, False)
    assert where(cs["llm_fallback_local"]) == ("STRICT_DNS", "ollama.internal", 11434, False)


def test_upstream_override_points_every_cluster_at_one_address() -> None:
    res = fallback_resources(runtime(), "grpc_svc", upstream=("127.0.0.1", 9999))
    for c in res["clusters"]:
        sa = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        assert sa["socket_address"] == {"address": "127.0.0.1", "port_value": 9999}
        assert c["type"] == "STATIC" and "transport_socket" not in c
        opts = c["typed_extension_protocol_options"]
        (po,) = opts.values()
        assert po["http_filters"][0]["typed_config"]["grpc_service"]["envoy_grpc"] == {
            "cluster_name": "grpc_svc"
        }


def validate(cfg: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    p = tmp_path / "envoy.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def demo_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "envoy" / "envoy-demo.yaml").read_text())


def test_envoy_accepts_the_generated_config(res: dict[str, Any], tmp_path: Path) -> None:
    cfg = merge_fallback(demo_config(), copy.deepcopy(res))
    p = validate(cfg, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    # ... and refuses it when a cluster the route names is missing.
    cfg["static_resources"]["clusters"] = [
        c for c in cfg["static_resources"]["clusters"] if c["name"] != "llm_fallback_claude"
    ]
    assert validate(cfg, tmp_path).returncode != 0


def test_the_demo_carries_exactly_what_its_config_needs() -> None:
    demo = importlib.import_module("demo")  # test/demo.py (harness put test/ on sys.path)
    rt = compile_config(load_text(demo.render_config(False), "demo"), dict(demo.DEMO_KEYS))
    res = fallback_resources(rt, upstream=("127.0.0.1", 18001))
    assert res, "the demo config has a fallback route"
    committed = demo_config()
    assert merge_fallback(copy.deepcopy(committed), res, listeners=["llm"]) == committed


def test_merge_replaces_entries_of_the_same_name(res: dict[str, Any]) -> None:
    once = merge_fallback(demo_config(), copy.deepcopy(res))
    twice = merge_fallback(copy.deepcopy(once), copy.deepcopy(res))
    assert once == twice


def test_cli_prints_the_resources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    assert main(["envoy-fallback", str(cfg), "--upstream", "127.0.0.1:18001"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == fallback_resources(runtime(), upstream=("127.0.0.1", 18001))
    assert "k1" not in yaml.safe_dump(printed)  # no provider key in Envoy's config
    assert main(["envoy-fallback", str(cfg), "--upstream", "nope"]) == 2
    plain = tmp_path / "plain.yaml"
    plain.write_text(
        "providers: [{name: q, type: qwen, api_tokens: [k]}]\nroutes: [{name: r, provider: q}]\n"
    )
    assert main(["envoy-fallback", str(plain)]) == 1
    assert "no route has fallback or retry" in capsys.readouterr().err
