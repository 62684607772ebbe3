"""The Envoy configs we ship outside the mesh (envoy/envoy-demo.yaml and the
benchmark's bench/envoy-bench*.yaml) must pass the real Envoy's validation,
set the ext_proc graceful-close runtime flag, run ext_proc on the LLM hosts
only, and agree with the mesh EnvoyFilters on the settings the service
relies on."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from harness import ROOT, envoy_binary, render_envoy

EXT_PROC = "envoy.filters.http.ext_proc"
PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute"
GRACEFUL_CLOSE = "envoy.reloadable_features.ext_proc_graceful_grpc_close"
DEMO = ROOT / "envoy" / "envoy-demo.yaml"
BENCH = ROOT / "bench"


def ext_proc(filters: list[dict[str, Any]]) -> dict[str, Any]:
    (f,) = [f for f in filters if f["name"] == EXT_PROC]
    return f["typed_config"]


def validate(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "envoy.yaml"
    cfg.write_text(text)
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def hcms(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """HTTP connection managers by listener name."""
    return {
        lst["name"]: f["typed_config"]
        for lst in cfg["static_resources"]["listeners"]
        for chain in lst["filter_chains"]
        for f in chain["filters"]
        if f["name"] == "envoy.filters.network.http_connection_manager"
    }


def static_layer(cfg: dict[str, Any]) -> dict[str, Any]:
    layers = cfg["layered_runtime"]["layers"]
    (static,) = [layer["static_layer"] for layer in layers if "static_layer" in layer]
    return static


# -- which virtual host Envoy picks, and whether ext_proc runs there -----------


def domain_matches(domain: str, host: str) -> bool:
    if domain == "*":
        return True
    if domain.startswith("*"):
        return host.endswith(domain[1:]) and len(host) > len(domain) - 1
    if domain.endswith("*"):
        return host.startswith(domain[:-1]) and len(host) > len(domain) - 1
    return host == domain


def pick_vhost(route_config: dict[str, Any], host: str) -> dict[str, Any]:
    """Envoy's order: exact, then suffix wildcards (longest first), then prefix
    wildcards (longest first), then "*"."""
    if route_config.get("ignore_port_in_host_matching"):
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    def rank(domain: str) -> tuple[int, int]:
        if domain == "*":
            return (3, 0)
        if domain.startswith("*"):
            return (1, -len(domain))
        if domain.endswith("*"):
            return (2, -len(domain))
        return (0, 0)

    candidates = [
        (rank(d), vh)
        for vh in route_config["virtual_hosts"]
        for d in vh["domains"]
        if domain_matches(d, host)
    ]
    assert candidates, f"no virtual host for {host}"
    return min(candidates, key=lambda c: c[0])[1]


def ext_proc_runs(route_config: dict[str, Any], vhost: dict[str, Any], path: str = "/") -> bool:
    """Envoy merges ExtProcPerRoute from the route table, the virtual host and
    the route `path` takes (the first whose prefix matches; least to most
    specific); the most specific `disabled` wins and no per-route config at all
    means the filter runs."""
    route = next(r for r in vhost["routes"] if path.startswith(r["match"]["prefix"]))
    enabled = True
    for level in (route_config, vhost, route):
        per = level.get("typed_per_filter_config", {}).get(EXT_PROC)
        if per is not None:
            assert per["@type"] == PER_ROUTE
            enabled = not per.get("disabled", False)
    return enabled


def test_ext_proc_runs_follows_envoys_merge_order() -> None:
    off = {"typed_per_filter_config": {EXT_PROC: {"@type": PER_ROUTE, "disabled": True}}}
    on = {"typed_per_filter_config": {EXT_PROC: {"@type": PER_ROUTE, "overrides": {}}}}
    route = {"match": {"prefix": "/"}}
    assert ext_proc_runs({}, {"routes": [route]})
    assert not ext_proc_runs({}, {**off, "routes": [route]})
    assert ext_proc_runs({}, {**off, "routes": [{**route, **on}]})
    assert not ext_proc_runs(off, {"routes": [route]})
    assert ext_proc_runs(off, {**on, "routes": [route]})
    # The first route whose prefix matches the path decides.
    two = {**off, "routes": [{"match": {"prefix": "/v1/messages"}, **on}, route]}
    assert ext_proc_runs({}, two, "/v1/messages/count_tokens")
    assert not ext_proc_runs({}, two, "/v1/chat/completions")


def test_pick_vhost_prefers_exact_then_suffix_then_catch_all() -> None:
    rc = {
        "ignore_port_in_host_matching": True,
        "virtual_hosts": [
            {"name": "all", "domains": ["*"]},
            {"name": "tests", "domains": ["*.test"]},
            {"name": "exact", "domains": ["a.test"]},
        ],
    }
    assert pick_vhost(rc, "a.test")["name"] == "exact"
    assert pick_vhost(rc, "b.test:8080")["name"] == "tests"
    assert pick_vhost(rc, "example.com")["name"] == "all"


# -- the demo -----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    return yaml.safe_load(render_envoy(20000, 20001, 20002, 20003, ollama=20004))


def test_demo_config_validates(tmp_path: Path) -> None:
    p = validate(DEMO.read_text(), tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_rendered_demo_config_validates(tmp_path: Path) -> None:
    p = validate(render_envoy(20000, 20001, 20002, 20003, ollama=20004), tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_validation_catches_a_bad_duration(tmp_path: Path) -> None:
    text = DEMO.read_text().replace("message_timeout: 30s", "message_timeout: 500ms")
    assert "500ms" in text
    assert validate(text, tmp_path).returncode != 0


def test_validation_checks_the_per_route_config(tmp_path: Path) -> None:
    text = DEMO.read_text().replace("disabled: true", "disabld: true")
    assert "disabld" in text
    p = validate(text, tmp_path)
    assert p.returncode != 0
    assert "disabld" in p.stdout + p.stderr


def test_demo_sets_graceful_grpc_close(demo: dict[str, Any]) -> None:
    assert static_layer(demo)[GRACEFUL_CLOSE] is True


def test_demo_runs_ext_proc_on_llm_hosts_only(demo: dict[str, Any]) -> None:
    rc = hcms(demo)["llm"]["route_config"]
    state = {vh["name"]: ext_proc_runs(rc, vh) for vh in rc["virtual_hosts"]}
    assert state == {
        "llm-fallback": True,  # reached by re-routing only (see test_fallback_envoy)
        "llm-clients": True,
        "dashscope": True,
        "anthropic": True,
        "everything-else": False,
    }
    # Except the Anthropic Messages API (Claude Code) and the Responses API
    # (Codex), whatever host they name.
    other = pick_vhost(rc, "127.0.0.1:18000")
    for path in (
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/qwen/v1/messages",
        "/v1/responses",
        "/v1/responses/resp_1",
    ):
        assert ext_proc_runs(rc, other, path), path
    assert not ext_proc_runs(rc, other, "/v1/models")
    # The Ollama key proxy's listener: every Ollama API call, whatever its host;
    # Envoy answers other paths itself (no other route's key can land on Ollama).
    ollama_rc = hcms(demo)["ollama"]["route_config"]
    (ollama,) = ollama_rc["virtual_hosts"]
    assert ollama["domains"] == ["*"]
    for path in ("/api/chat", "/api/generate", "/api/tags"):
        assert ext_proc_runs(ollama_rc, ollama, path), path
    other_paths = next(r for r in ollama["routes"] if r["match"]["prefix"] == "/")
    assert other_paths["direct_response"]["status"] == 404 and "route" not in other_paths


def test_every_host_the_demo_config_routes_reaches_ext_proc(demo: dict[str, Any]) -> None:
    service = yaml.safe_load((ROOT / "test" / "demo" / "config.yaml").read_text())
    rc = hcms(demo)["llm"]["route_config"]
    hosts = [
        h
        for r in service["routes"]
        if r.get("client_api") != "ollama"  # the Ollama listener's (every host there)
        for h in r["match"].get("hosts", [])
    ]
    assert hosts == ["test.com", "claude.test.com", "fallback.test.com"]
    # Routes without hosts match any host by path: those paths reach ext_proc anywhere.
    prefixes = [r["match"]["path_prefix"] for r in service["routes"] if not r["match"].get("hosts")]
    assert prefixes == ["/v1/messages", "/qwen/v1/messages", "/v1/responses"]
    for host in ("127.0.0.1:18000", "localhost", "gateway.example.com"):
        for prefix in prefixes:
            assert ext_proc_runs(rc, pick_vhost(rc, host), prefix), (host, prefix)
    # The tests' configs use *.test hosts, with and without a port.
    for host in (*hosts, "qwen.test", "plugin.test:8080", "dashscope.aliyuncs.com"):
        assert ext_proc_runs(rc, pick_vhost(rc, host)), host
    for host in ("other.example.com", "elsewhere.example", "test.com.evil"):
        assert not ext_proc_runs(rc, pick_vhost(rc, host)), host


def test_demo_and_mesh_filters_agree(demo: dict[str, Any]) -> None:
    mesh = yaml.safe_load((ROOT / "asm" / "envoyfilter-ingress-gateway.yaml").read_text())
    (patch,) = [p for p in mesh["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER"]
    mesh_cfg = patch["patch"]["value"]["typed_config"]
    for hcm in hcms(demo).values():
        cfg = ext_proc(hcm["http_filters"])
        assert hcm["http_filters"][-1]["name"] == "envoy.filters.http.router"
        for key in (
            "processing_mode",
            "allow_mode_override",
            "failure_mode_allow",
            "mutation_rules",
            "metadata_options",  # without it the proxy drops the processor's metadata
        ):
            assert cfg[key] == mesh_cfg[key], key
        # Requests with trailers still go through the body phase; one spelling of each path.
        assert cfg["processing_mode"]["request_trailer_mode"] == "SEND"
        assert hcm["normalize_path"] is True and hcm["merge_slashes"] is True
        assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST"


# -- the benchmark ------------------------------------------------------------


@functools.cache
def bench_stack() -> ModuleType:
    """bench/stack.py (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_stack", BENCH / "stack.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench_text() -> str:
    stack = bench_stack()
    grpc_ports = ("grpc_h2corn", "grpc_grpcio", *(f"grpc_{n}" for n in stack.NULLS))
    names = (*stack.LISTENERS, "admin", *grpc_ports, "stream")
    ports = {n: 21000 + i for i, n in enumerate(names)}
    text: str = bench_stack().render_envoy(ports, BENCH / "envoy-bench-routes.yaml")
    return text


@pytest.fixture(scope="module")
def bench_routes() -> dict[str, Any]:
    (rc,) = yaml.safe_load((BENCH / "envoy-bench-routes.yaml").read_text())["resources"]
    return rc  # type: ignore[no-any-return]


def test_rendered_bench_config_validates(bench_text: str, tmp_path: Path) -> None:
    assert "$" not in bench_text
    p = validate(bench_text, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_bench_sets_graceful_grpc_close(bench_text: str) -> None:
    assert static_layer(yaml.safe_load(bench_text))[GRACEFUL_CLOSE] is True


def test_bench_ext_proc_listeners_differ_only_in_their_server(
    bench_text: str, demo: dict[str, Any]
) -> None:
    found = {
        name: ext_proc(hcm["http_filters"])
        for name, hcm in hcms(yaml.safe_load(bench_text)).items()
        if any(f["name"] == EXT_PROC for f in hcm["http_filters"])
    }
    clusters = {n: c["grpc_service"]["envoy_grpc"]["cluster_name"] for n, c in found.items()}
    assert clusters == {
        "extproc": "llm_extproc",
        "extproc_grpcio": "llm_extproc_grpcio",
        "extproc_null": "null_extproc",
        "extproc_null_h2corn": "null_extproc_h2corn",
    }
    demo_cfg = ext_proc(hcms(demo)["llm"]["http_filters"])
    for cfg in found.values():
        assert {k: v for k, v in cfg.items() if k != "grpc_service"} == {
            k: v for k, v in demo_cfg.items() if k != "grpc_service"
        }


def test_bench_hosts_reach_ext_proc_as_the_cases_expect(
    bench_text: str, bench_routes: dict[str, Any]
) -> None:
    cases = bench_stack().CASES
    runs = {
        name: ext_proc_runs(bench_routes, pick_vhost(bench_routes, case.host))
        for name, case in cases.items()
    }
    assert runs["passthrough"] is False
    assert all(
        runs[c] for c in ("grpc-null", "h2corn-null", "full", "full-grpcio", "skip", "cache-hit")
    )
    for host in ("stream.bench", "stream-upstream.bench", "dashscope.aliyuncs.com"):
        assert ext_proc_runs(bench_routes, pick_vhost(bench_routes, host)), host
    # The floor's listener shares the route table but has no ext_proc filter.
    floor = hcms(yaml.safe_load(bench_text))[cases["floor"].listener]
    assert [f["name"] for f in floor["http_filters"]] == ["envoy.filters.http.router"]
