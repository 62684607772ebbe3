"""The mesh EnvoyFilters' route scoping, run by the real Envoy: ext_proc switched
off on every virtual host (VIRTUAL_HOST patch) and on again for the LLM hosts'
routes (HTTP_ROUTE patches), applied to an Istio-like route table as Istio's MERGE
applies them. The filter itself is the EnvoyFilter's, pointed at our service."""

from __future__ import annotations

import copy
import http.client
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from harness import ROOT, Stack, envoy_binary, free_port, stop, wait_port

EF = ROOT / "asm" / "envoyfilter-ingress-gateway.yaml"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def patches(doc: dict[str, Any], apply_to: str) -> list[dict[str, Any]]:
    return [p for p in doc["spec"]["configPatches"] if p["applyTo"] == apply_to]


def vhost(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """An Istio-named virtual host with the EnvoyFilter's MERGE patches applied."""
    route: dict[str, Any] = {"name": "default", "match": {"prefix": "/"}}
    route["route"] = {"cluster": "provider", "timeout": "30s"}
    vh: dict[str, Any] = {"name": name, "domains": [name.split(":")[0]], "routes": [route]}
    for level, apply_to in ((vh, "VIRTUAL_HOST"), (route, "HTTP_ROUTE")):
        for p in patches(doc, apply_to):
            want = p["match"]["routeConfiguration"].get("vhost", {}).get("name")
            if want in (None, name):
                cfg = copy.deepcopy(p["patch"]["value"]["typed_per_filter_config"])
                level.setdefault("typed_per_filter_config", {}).update(cfg)
    return vh


def cluster(name: str, port: int, http2: bool = False) -> dict[str, Any]:
    address = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    c: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }
    if http2:
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return c


def bootstrap(s: Stack, listener: int, admin: int) -> dict[str, Any]:
    doc = yaml.safe_load(EF.read_text())
    (fp,) = patches(doc, "HTTP_FILTER")
    ext_proc = copy.deepcopy(fp["patch"]["value"])
    ext_proc["typed_config"]["grpc_service"] = {"envoy_grpc": {"cluster_name": "llm_extproc"}}
    names = ["test.com:80", "dashscope.aliyuncs.com:80", "other.example.com:80"]
    hcm = {
        "@type": HCM,
        "stat_prefix": "gw",
        "route_config": {"name": "http.80", "virtual_hosts": [vhost(doc, n) for n in names]},
        "http_filters": [
            ext_proc,
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}},
        ],
    }
    filters = [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "gw",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener}},
                    "filter_chains": [{"filters": filters}],
                }
            ],
            "clusters": [
                cluster("llm_extproc", s.extproc_port, http2=True),
                cluster("provider", s.fake.port),
            ],
        },
    }


def streams_started(admin: int) -> int:
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    c.request("GET", "/stats?filter=^http.gw.ext_proc.streams_started$")
    text = c.getresponse().read().decode()
    return int(text.split(": ")[1]) if ": " in text else 0


def test_ext_proc_runs_on_the_llm_hosts_routes_only(tmp_path: Path) -> None:
    config = 'hosts: ["test.com", "dashscope.aliyuncs.com"]\napi_key: "sk-mesh"\n'
    with Stack(tmp_path, config) as s:
        listener, admin = free_port(), free_port()
        cfg = tmp_path / "gateway.yaml"
        cfg.write_text(yaml.safe_dump(bootstrap(s, listener, admin)))
        envoy = subprocess.Popen(
            [envoy_binary(), "-c", str(cfg), "--base-id", str(listener), "-l", "warning"],
            stdout=(tmp_path / "gateway.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_port(listener, proc=envoy)
            body = b'{"messages":[{"role":"user","content":"hi"}]}'
            with httpx.Client(base_url=f"http://127.0.0.1:{listener}", timeout=10) as c:
                llm = c.post("/", content=body, headers={"host": "test.com"})
                assert llm.status_code == 200
                (seen,) = s.fake.take()
                assert seen.headers["authorization"] == "Bearer sk-mesh"  # processed
                assert streams_started(admin) == 1

                other = c.post(
                    "/x",
                    content=b"x",
                    headers={"host": "other.example.com", "authorization": "Bearer mine"},
                )
                assert other.status_code == 200
                (seen,) = s.fake.take()
                assert seen.headers["host"] == "other.example.com"
                assert seen.headers["authorization"] == "Bearer mine"
                assert streams_started(admin) == 1  # no stream for the non-LLM host

                stop(s.procs[0])  # llm-extproc, by PID: LLM hosts fail closed, others not
                assert c.post("/", content=body, headers={"host": "test.com"}).status_code >= 500
                assert (
                    c.post("/x", content=b"x", headers={"host": "other.example.com"}).status_code
                    == 200
                )
        finally:
            stop(envoy)
