"""Istio objects in asm/: strict validation against Istio's CRD OpenAPI schemas, and
the contract between the EnvoyFilters, ServiceEntries and the llm-extproc Service."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from mesh_routes import (
    EXT_PROC,
    PER_ROUTE,
    enabled_vhosts,
    filter_patch,
    inserts_ext_proc,
    patches_of,
)

EXTPROC_CLUSTER = "outbound|50051||llm-extproc.llm-extproc.svc.cluster.local"
EXTPROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
PROVIDER_HOSTS = {"dashscope.aliyuncs.com", "api.anthropic.com"}
ISTIO_KINDS = {
    "EnvoyFilter",
    "ServiceEntry",
    "DestinationRule",
    "Gateway",
    "VirtualService",
    "AuthorizationPolicy",
    "RequestAuthentication",
}


def of_kind(manifests, kind: str) -> list[dict[str, Any]]:
    return [m.doc for m in manifests if m.kind == kind]


def by_file(manifests, filename: str, kind: str) -> dict[str, Any]:
    (doc,) = [m.doc for m in manifests if m.path.name == filename and m.kind == kind]
    return doc


# ------------------------------------------------------------------ schema checks


def test_schemas_have_a_storage_version_for_every_kind(istio_schemas):
    kinds = {kind for (_, kind) in istio_schemas.storage}
    assert kinds >= ISTIO_KINDS


def test_istio_object_strict_schema(istio_manifest, istio_schemas, meta_validate):
    doc = istio_manifest.doc
    crd = istio_schemas.for_doc(doc)
    assert crd.storage, (
        f"{doc['apiVersion']} is served but not the storage version of {doc['kind']}"
    )
    assert istio_schemas.errors(doc) == []
    assert meta_validate(doc) == []
    assert doc["metadata"].get("namespace"), "namespace every Istio object explicitly"


@pytest.mark.parametrize(
    ("kind", "mutate", "needle"),
    [
        (
            "EnvoyFilter",
            lambda d: d["spec"]["configPatches"][0]["match"].update(contextt="GATEWAY"),
            "contextt",
        ),
        ("ServiceEntry", lambda d: d["spec"].update(hostz=["x"]), "hostz"),
        (
            "DestinationRule",
            lambda d: d["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"].update(
                sni_name="x"
            ),
            "sni_name",
        ),
        ("Gateway", lambda d: d["spec"]["servers"][0]["port"].update(protocl="HTTP"), "protocl"),
        ("AuthorizationPolicy", lambda d: d.update(specs={}), "specs"),
    ],
    ids=["envoyfilter-match", "serviceentry-spec", "destinationrule-tls", "gateway-port", "root"],
)
def test_strict_schema_rejects_unknown_field(manifests, istio_schemas, kind, mutate, needle):
    docs = of_kind(manifests, kind)
    if kind == "DestinationRule":  # the providers' (TLS origination), not llm-extproc's
        docs = [d for d in docs if "portLevelSettings" in d["spec"].get("trafficPolicy", {})]
    doc = copy.deepcopy(docs[0])
    assert istio_schemas.errors(doc) == []
    mutate(doc)
    errors = istio_schemas.errors(doc)
    assert errors, f"unknown field {needle!r} was accepted"
    assert any(needle in e for e in errors), errors


def test_schema_rejects_bad_enum_and_type(manifests, istio_schemas):
    ef = copy.deepcopy(of_kind(manifests, "EnvoyFilter")[0])
    ef["spec"]["configPatches"][0]["match"]["context"] = "GATEWAYS"
    assert istio_schemas.errors(ef)
    se = copy.deepcopy(of_kind(manifests, "ServiceEntry")[0])
    se["spec"]["ports"][0]["number"] = "eighty"
    assert istio_schemas.errors(se)


def test_metadata_is_checked_strictly(manifests, meta_validate):
    doc = copy.deepcopy(of_kind(manifests, "Gateway")[0])
    doc["metadata"]["lables"] = {"a": "b"}
    assert meta_validate(doc)


def test_envoyfilter_patch_value_is_opaque_to_istio(manifests, istio_schemas):
    """Istio preserves unknown fields in patch.value, so its schema cannot catch filter
    typos; that is what the `envoy --mode validate` tests are for."""
    doc = copy.deepcopy(of_kind(manifests, "EnvoyFilter")[0])
    doc["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["bogus"] = 1
    assert istio_schemas.errors(doc) == []


# ------------------------------------------------------------------ EnvoyFilters


@pytest.mark.parametrize(
    ("filename", "context", "selector"),
    [
        ("envoyfilter-ingress-gateway.yaml", "GATEWAY", {"istio": "ingressgateway"}),
        ("envoyfilter-egress-gateway.yaml", "GATEWAY", {"istio": "egressgateway"}),
        ("envoyfilter-sidecar-outbound.yaml", "SIDECAR_OUTBOUND", {"app": "llm-client"}),
    ],
)
def test_envoyfilter_variant(manifests, filename, context, selector):
    ef = by_file(manifests, filename, "EnvoyFilter")
    assert ef["spec"]["workloadSelector"]["labels"] == selector
    patch = filter_patch(ef)
    assert patch["match"]["context"] == context
    listener = patch["match"]["listener"]["filterChain"]["filter"]
    assert listener["name"] == "envoy.filters.network.http_connection_manager"
    assert listener["subFilter"]["name"] == "envoy.filters.http.router"
    assert patch["patch"]["operation"] == "INSERT_BEFORE"


def test_envoyfilter_ext_proc_settings(envoyfilter_manifest):
    value = filter_patch(envoyfilter_manifest.doc)["patch"]["value"]
    assert value["name"] == "envoy.filters.http.ext_proc"
    tc = value["typed_config"]
    assert tc["@type"] == EXTPROC_TYPE
    assert tc["grpc_service"]["envoy_grpc"]["cluster_name"] == EXTPROC_CLUSTER
    assert tc["failure_mode_allow"] is False
    assert tc["allow_mode_override"] is True
    assert tc["mutation_rules"]["allow_all_routing"] is True
    assert tc["message_timeout"] == "30s"
    assert tc["max_message_timeout"] == "60s"
    # The processor's dynamic metadata is accepted (access logs; fallback routing).
    assert tc["metadata_options"] == {
        "receiving_namespaces": {"untyped": ["llm_extproc", "llm_extproc.fallback"]}
    }
    mode = tc["processing_mode"]
    assert mode["request_header_mode"] == "SEND"
    assert mode["response_header_mode"] == "SEND"
    assert mode["request_body_mode"] == "BUFFERED"
    assert mode["response_body_mode"] == "NONE"
    # Trailers come to us: with SKIP, a request with trailers skips the body phase.
    assert mode["request_trailer_mode"] == "SEND"


def test_envoyfilter_variants_share_one_filter_config(manifests):
    values = [
        filter_patch(d)["patch"]["value"]
        for d in of_kind(manifests, "EnvoyFilter")
        if inserts_ext_proc(d)
    ]
    assert len(values) == 3
    assert all(v == values[0] for v in values)


def test_ext_proc_cluster_points_at_the_service(manifests):
    direction, port, subset, fqdn = EXTPROC_CLUSTER.split("|")
    assert (direction, subset) == ("outbound", "")
    name, namespace, *_ = fqdn.split(".")
    (svc,) = [
        d
        for d in of_kind(manifests, "Service")
        if d["metadata"]["name"] == name and d["metadata"]["namespace"] == namespace
    ]
    grpc_port = [p for p in svc["spec"]["ports"] if p["port"] == int(port)]
    assert grpc_port and grpc_port[0]["appProtocol"] == "grpc"


# ------------------------------------------------------------------ providers


@pytest.mark.parametrize("host", sorted(PROVIDER_HOSTS))
def test_provider_tls_origination(manifests, host):
    (se,) = [d for d in of_kind(manifests, "ServiceEntry") if host in d["spec"]["hosts"]]
    assert se["spec"]["location"] == "MESH_EXTERNAL"
    assert se["spec"]["resolution"] == "DNS"
    (http,) = [p for p in se["spec"]["ports"] if p["number"] == 80]
    assert http["protocol"] == "HTTP"
    assert http["targetPort"] == 443
    (dr,) = [d for d in of_kind(manifests, "DestinationRule") if d["spec"]["host"] == host]
    (pls,) = dr["spec"]["trafficPolicy"]["portLevelSettings"]
    assert pls["port"]["number"] == 80
    assert pls["tls"]["mode"] == "SIMPLE"
    assert pls["tls"]["sni"] == host


def test_virtualservice_destinations_exist(manifests):
    se_ports = {
        (h, p["number"])
        for se in of_kind(manifests, "ServiceEntry")
        for h in se["spec"]["hosts"]
        for p in se["spec"]["ports"]
    }
    known_services = {"istio-egressgateway.istio-system.svc.cluster.local"}
    for vs in of_kind(manifests, "VirtualService"):
        for route in vs["spec"]["http"]:
            for dest in route["route"]:
                d = dest["destination"]
                if d["host"] in known_services:
                    continue
                assert (d["host"], d["port"]["number"]) in se_ports, (vs["metadata"]["name"], d)


# ------------------------------------------------------------------ seed walkthrough


def test_seed_walkthrough_gateway(manifests):
    gw = by_file(manifests, "gateway-seed-walkthrough.yaml", "Gateway")
    assert gw["spec"]["selector"] == {"istio": "ingressgateway"}
    gw_ref = f"{gw['metadata']['namespace']}/{gw['metadata']['name']}"
    (server,) = gw["spec"]["servers"]
    assert {"test.com", "dashscope.aliyuncs.com"} <= set(server["hosts"])
    vs_hosts = {
        h
        for vs in of_kind(manifests, "VirtualService")
        if gw_ref in vs["spec"].get("gateways", [])
        for h in vs["spec"]["hosts"]
    }
    # test.com is accepted; after the processor's host rewrite + clear_route_cache the
    # request is re-routed by the dashscope.aliyuncs.com VirtualService.
    assert {"test.com", "dashscope.aliyuncs.com"} <= vs_hosts


def test_security_examples(manifests):
    deny = by_file(manifests, "security-deny-ip.yaml", "AuthorizationPolicy")
    assert deny["spec"]["action"] == "DENY"
    assert deny["spec"]["selector"]["matchLabels"] == {"istio": "ingressgateway"}
    source = deny["spec"]["rules"][0]["from"][0]["source"]
    assert source.get("remoteIpBlocks") or source.get("ipBlocks")

    ra = by_file(manifests, "security-jwt.yaml", "RequestAuthentication")
    assert ra["spec"]["selector"]["matchLabels"] == {"istio": "ingressgateway"}
    rule = ra["spec"]["jwtRules"][0]
    assert rule["issuer"] and rule["jwksUri"].startswith("https://")


def test_asm_only_examples_are_not_istio_kinds(asm_only_manifest, istio_schemas):
    doc = asm_only_manifest.doc
    assert doc["apiVersion"] == "istio.alibabacloud.com/v1beta1"
    assert doc["spec"]["host"]
    with pytest.raises(KeyError):
        istio_schemas.for_doc(doc)


# ------------------------------------------------------------------ ext_proc per route


def config_hosts(manifests) -> set[str]:
    cm = by_file(manifests, "configmap.yaml", "ConfigMap")
    return set(yaml.safe_load(cm["data"]["config.yaml"])["hosts"])


def test_envoyfilter_route_scoping_shape(envoyfilter_manifest):
    doc = envoyfilter_manifest.doc
    fp = filter_patch(doc)
    (off,) = patches_of(doc, "VIRTUAL_HOST")
    on = patches_of(doc, "HTTP_ROUTE")
    assert on, "ext_proc is switched off everywhere and on nowhere"
    (normalise,) = patches_of(doc, "NETWORK_FILTER")
    assert len(doc["spec"]["configPatches"]) == 3 + len(on)
    assert normalise["match"]["context"] == fp["match"]["context"]
    assert normalise["patch"]["operation"] == "MERGE"
    hcm = dict(normalise["patch"]["value"]["typed_config"])
    # ... and the local replies for ext_proc's errors (test_extproc_resilience.py).
    assert hcm.pop("local_reply_config")["mappers"]
    assert hcm == {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
    }
    assert fp["match"]["listener"].get("portNumber", 80) == 80
    for p in (off, *on):
        assert p["match"]["context"] == fp["match"]["context"]
        assert p["match"]["routeConfiguration"]["portNumber"] == 80
        assert p["patch"]["operation"] == "MERGE"
        assert list(p["patch"]["value"]) == ["typed_per_filter_config"]
        assert list(p["patch"]["value"]["typed_per_filter_config"]) == [EXT_PROC]
    # Off on every virtual host of the port (no vhost match) ...
    assert "vhost" not in off["match"]["routeConfiguration"]
    assert off["patch"]["value"]["typed_per_filter_config"][EXT_PROC] == {
        "@type": PER_ROUTE,
        "disabled": True,
    }
    # ... on again for every route (no route match) of the named virtual hosts.
    for p in on:
        assert set(p["match"]["routeConfiguration"]["vhost"]) == {"name"}
        assert p["patch"]["value"]["typed_per_filter_config"][EXT_PROC] == {
            "@type": PER_ROUTE,
            "overrides": {},
        }


def test_ext_proc_runs_on_exactly_the_llm_hosts(manifests):
    """Every host config.yaml handles and the proxy serves on port 80 gets ext_proc;
    nothing else does (a host missing here would skip keys and guards)."""
    hosts = config_hosts(manifests)
    for ef in filter(inserts_ext_proc, of_kind(manifests, "EnvoyFilter")):
        on = {n.removesuffix(":80") for n in enabled_vhosts(ef)}
        assert all(n.endswith(":80") for n in enabled_vhosts(ef))
        selector = ef["spec"]["workloadSelector"]["labels"]
        gateways = [g for g in of_kind(manifests, "Gateway") if g["spec"]["selector"] == selector]
        if gateways:
            served = {
                h
                for g in gateways
                for server in g["spec"]["servers"]
                if server["port"]["number"] == 80
                for h in server["hosts"]
            }
        else:  # a sidecar: the ServiceEntry hosts it calls on port 80
            served = {
                h
                for se in of_kind(manifests, "ServiceEntry")
                if any(p["number"] == 80 for p in se["spec"]["ports"])
                for h in se["spec"]["hosts"]
            }
        assert on == hosts & served, ef["metadata"]["name"]
