"""Issue 18 item 8: who can reach the gRPC port (50051) and /metrics (9464).

The process binds loopback unless told otherwise; in asm/ a NetworkPolicy
lets only the gateways' proxies reach 50051 and only monitoring reach 9464,
and an Istio AuthorizationPolicy allows only the gateways' identities on 50051."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from extproc.cli import build_parser
from extproc.serving.options import ServeOptions

ASM = Path(__file__).resolve().parents[3] / "asm"


def _one(manifests: Any, kind: str) -> dict[str, Any]:
    (doc,) = [
        m.doc
        for m in manifests
        if m.kind == kind and m.doc["metadata"]["namespace"] == "llm-extproc"
    ]
    return doc


def test_process_defaults_bind_loopback() -> None:
    args = build_parser().parse_args(["serve", "--config", "x.yaml"])
    assert args.host == "127.0.0.1" and args.metrics_host == "127.0.0.1"
    assert ServeOptions().host == "127.0.0.1" and ServeOptions().metrics_host == "127.0.0.1"


def test_network_policy_admits_only_gateways_and_monitoring(manifests: Any) -> None:
    np = _one(manifests, "NetworkPolicy")
    dep = next(m.doc for m in manifests if m.kind == "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert np["spec"]["policyTypes"] == ["Ingress"]
    rules = np["spec"]["ingress"]
    by_port: dict[int, list[dict[str, Any]]] = {}
    for rule in rules:
        assert rule.get("from"), "a rule without `from` admits every source"
        for port in rule["ports"]:
            by_port.setdefault(port["port"], []).extend(rule["from"])
    assert set(by_port) == {50051, 9464, 15020, 15090}
    grpc = by_port[50051]
    # Every 50051 source names both a namespace and the proxy pods in it.
    assert all("namespaceSelector" in src and "podSelector" in src for src in grpc)
    gateways = next(
        src
        for src in grpc
        if src["namespaceSelector"]["matchLabels"]
        == {"kubernetes.io/metadata.name": "istio-system"}
    )
    (expr,) = gateways["podSelector"]["matchExpressions"]
    assert expr["key"] == "istio" and set(expr["values"]) == {"ingressgateway", "egressgateway"}
    namespaces = {
        src["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for src in by_port[9464]
    }
    assert namespaces == {"monitoring", "istio-system"}
    assert not any(src in by_port[9464] for src in grpc)  # monitoring cannot call gRPC


def test_authorization_policy_allows_only_gateway_identities_on_grpc(manifests: Any) -> None:
    ap = _one(manifests, "AuthorizationPolicy")
    assert ap["spec"]["action"] == "ALLOW"
    assert ap["spec"]["selector"]["matchLabels"] == {"app": "llm-extproc"}
    grpc = [
        r for r in ap["spec"]["rules"] if any("50051" in o["operation"]["ports"] for o in r["to"])
    ]
    (rule,) = grpc
    principals = {p for f in rule["from"] for p in f["source"]["principals"]}
    assert "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account" in principals
    assert all(p.startswith("cluster.local/ns/") for p in principals)
    # The open rule is for /metrics only (limited by the NetworkPolicy).
    for r in ap["spec"]["rules"]:
        if "from" not in r:
            assert [o["operation"]["ports"] for o in r["to"]] == [["9464"]]


def test_kustomization_applies_the_policies() -> None:
    kust = yaml.safe_load((ASM / "kustomization.yaml").read_text(encoding="utf-8"))
    assert {"networkpolicy.yaml", "authorizationpolicy-extproc.yaml"} <= set(kust["resources"])


def test_deployment_binds_explicitly(manifests: Any) -> None:
    dep = next(m.doc for m in manifests if m.kind == "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--metrics-host") + 1] == "0.0.0.0"
