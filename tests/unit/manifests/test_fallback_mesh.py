"""asm/fallback.yaml: provider fallback on the ingress gateway. Its virtual host and
clusters are the generator's output for the config docs/mesh.md documents; Envoy
accepts them next to the gateway's ext_proc filter; ext_proc runs on the client host."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from mesh_routes import EXT_PROC, apply_route_patches, ext_proc_runs, filter_patch, patches_of

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.envoy_fallback import UPSTREAM_FILTER, fallback_resources

REPO_ROOT = Path(__file__).resolve().parents[3]
EXTPROC_CLUSTER = "outbound|50051||llm-extproc.llm-extproc.svc.cluster.local"
EXTPROC_AUTHORITY = "llm-extproc.llm-extproc.svc.cluster.local"


def by_file(manifests, filename: str, kind: str) -> dict[str, Any]:
    (doc,) = [m.doc for m in manifests if m.path.name == filename and m.kind == kind]
    return doc


@pytest.fixture(scope="module")
def documented_config() -> str:
    doc = (REPO_ROOT / "docs" / "mesh.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- fallback-config[^>]*-->\s*```yaml\n(.*?)```", doc, re.S)
    assert m, "docs/mesh.md lost its fallback-config block"
    return m.group(1)


@pytest.fixture(scope="module")
def generated(documented_config: str, manifests) -> dict[str, Any]:
    (secret,) = [m.doc for m in manifests if m.kind == "Secret"]
    rt = compile_config(load_text(documented_config, "mesh.md"), dict(secret["stringData"]))
    return fallback_resources(rt, EXTPROC_CLUSTER, extproc_authority=EXTPROC_AUTHORITY)


@pytest.fixture(scope="module")
def envoyfilter(manifests) -> dict[str, Any]:
    return by_file(manifests, "fallback.yaml", "EnvoyFilter")


def test_the_documented_config_extends_the_configmaps(documented_config: str, manifests) -> None:
    """The block is appended to config.yaml: it starts a new document, and the
    plugin route and the fallback route compile together."""
    assert documented_config.startswith("---\n")
    (cm,) = [m.doc for m in manifests if m.kind == "ConfigMap"]
    (secret,) = [m.doc for m in manifests if m.kind == "Secret"]
    text = cm["data"]["config.yaml"] + documented_config
    rt = compile_config(load_text(text, "config.yaml"), dict(secret["stringData"]))
    routes = {r.name: r for r in rt.routes.routes}
    assert routes["fallback"].fallback is not None
    assert len(routes) == 2 and "test.com" in next(iter(routes.values())).hosts


def test_virtual_host_and_clusters_are_the_generators(
    envoyfilter: dict[str, Any], generated: dict[str, Any]
) -> None:
    (vh,) = patches_of(envoyfilter, "VIRTUAL_HOST")
    assert vh["patch"]["operation"] == "ADD"
    assert vh["match"] == {"context": "GATEWAY", "routeConfiguration": {"portNumber": 80}}
    assert vh["patch"]["value"] == generated["virtual_host"]
    clusters = patches_of(envoyfilter, "CLUSTER")
    assert all(p["patch"]["operation"] == "ADD" for p in clusters)
    assert all(p["match"] == {"context": "GATEWAY"} for p in clusters)
    assert [p["patch"]["value"] for p in clusters] == generated["clusters"]


def test_same_proxy_as_the_ext_proc_filter(manifests, envoyfilter: dict[str, Any]) -> None:
    ingress = by_file(manifests, "envoyfilter-ingress-gateway.yaml", "EnvoyFilter")
    assert envoyfilter["spec"]["workloadSelector"] == ingress["spec"]["workloadSelector"]
    assert envoyfilter["metadata"]["namespace"] == ingress["metadata"]["namespace"]
    gw = by_file(manifests, "fallback.yaml", "Gateway")
    assert gw["spec"]["selector"] == ingress["spec"]["workloadSelector"]["labels"]
    (server,) = gw["spec"]["servers"]
    assert server["hosts"] == ["fallback.test.com"] and server["port"]["number"] == 80


def test_ext_proc_runs_on_the_client_host(manifests, envoyfilter: dict[str, Any]) -> None:
    ingress = by_file(manifests, "envoyfilter-ingress-gateway.yaml", "EnvoyFilter")
    (vh,) = apply_route_patches(ingress, ["fallback.test.com:80"])
    assert not ext_proc_runs(vh)  # off on every port-80 host by the ingress filter ...
    for p in patches_of(envoyfilter, "HTTP_ROUTE"):
        assert p["match"]["routeConfiguration"]["vhost"]["name"] == "fallback.test.com:80"
        vh["routes"][0].setdefault("typed_per_filter_config", {}).update(
            copy.deepcopy(p["patch"]["value"]["typed_per_filter_config"])
        )
    assert ext_proc_runs(vh)  # ... and on again for its routes here


def test_envoy_validates_the_gateway_with_fallback(
    manifests, envoyfilter: dict[str, Any], envoy_check_bootstrap
) -> None:
    ingress = by_file(manifests, "envoyfilter-ingress-gateway.yaml", "EnvoyFilter")
    ext_proc = filter_patch(ingress)["patch"]["value"]
    (vh,) = patches_of(envoyfilter, "VIRTUAL_HOST")
    clusters = [p["patch"]["value"] for p in patches_of(envoyfilter, "CLUSTER")]
    proc = envoy_check_bootstrap(bootstrap(ext_proc, vh["patch"]["value"], clusters))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A typo in the upstream filter is caught too.
    broken = copy.deepcopy(clusters)
    opts = broken[0]["typed_extension_protocol_options"]
    (po,) = opts.values()
    (f,) = [f for f in po["http_filters"] if f["name"] == UPSTREAM_FILTER]
    f["typed_config"]["processing_mode"]["request_body_mode"] = "BUFFERD"
    proc = envoy_check_bootstrap(bootstrap(ext_proc, vh["patch"]["value"], broken))
    assert proc.returncode != 0


def bootstrap(
    ext_proc: dict[str, Any], vhost: dict[str, Any], clusters: list[dict[str, Any]]
) -> dict[str, Any]:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "gw",
        "route_config": {"name": "http.80", "virtual_hosts": [vhost]},
        "http_filters": [
            ext_proc,
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    assert ext_proc["name"] == EXT_PROC
    grpc = {
        "name": EXTPROC_CLUSTER,
        "type": "STATIC",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": EXTPROC_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": 50051}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    listener = {
        "name": "gw",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10080}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }
    return {"static_resources": {"listeners": [listener], "clusters": [grpc, *clusters]}}
