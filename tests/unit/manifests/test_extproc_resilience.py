"""Envoy's side of the ext_proc service's failures, in every config we ship
(issue 22): replicas health checked and ejected when they fail, and a JSON
error in the client API's shape (503) when no replica can process a request."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from conftest import envoy_bootstrap, envoy_validate
from mesh_routes import filter_patch

ROOT = Path(__file__).resolve().parents[3]
SERVICE = "llm-extproc.llm-extproc.svc.cluster.local"


def hcm_patch(doc: dict[str, Any]) -> dict[str, Any]:
    (p,) = [p for p in doc["spec"]["configPatches"] if p["applyTo"] == "NETWORK_FILTER"]
    return p


def test_destination_rule_ejects_failing_replicas(manifests) -> None:  # type: ignore[no-untyped-def]
    (dr,) = [
        m.doc for m in manifests if m.kind == "DestinationRule" and m.doc["spec"]["host"] == SERVICE
    ]
    od = dr["spec"]["trafficPolicy"]["outlierDetection"]
    assert od["consecutive5xxErrors"] >= 1 and od["consecutiveGatewayErrors"] >= 1
    assert od["maxEjectionPercent"] >= 50  # one of two replicas can go
    kust = yaml.safe_load((ROOT / "asm" / "kustomization.yaml").read_text())
    assert "destinationrule-llm-extproc.yaml" in kust["resources"]


def test_mesh_ext_proc_answers_503_on_error(envoyfilter_manifest) -> None:  # type: ignore[no-untyped-def]
    tc = filter_patch(envoyfilter_manifest.doc)["patch"]["value"]["typed_config"]
    assert tc["status_on_error"] == {"code": "ServiceUnavailable"}
    assert tc["mutation_rules"]["allow_envoy"] is True


def test_mesh_local_replies_for_ext_proc_errors_validate(  # type: ignore[no-untyped-def]
    envoyfilter_manifest, envoy_bin, tmp_path
) -> None:
    doc = envoyfilter_manifest.doc
    patch = hcm_patch(doc)
    assert patch["patch"]["operation"] == "MERGE"
    # Same listener as the ext_proc filter, without the sub-filter.
    http = filter_patch(doc)["match"]
    assert patch["match"]["context"] == http["context"]
    assert patch["match"]["listener"].get("portNumber") == http["listener"].get("portNumber")
    lrc = patch["patch"]["value"]["typed_config"]["local_reply_config"]
    demo = yaml.safe_load((ROOT / "envoy" / "envoy-demo.yaml").read_text())
    demo_hcm = demo["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    assert lrc == demo_hcm["typed_config"]["local_reply_config"]  # one behaviour everywhere
    boot = envoy_bootstrap(copy.deepcopy(filter_patch(doc)["patch"]["value"]))
    boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "local_reply_config"
    ] = lrc
    proc = envoy_validate(envoy_bin, boot, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_broken_local_reply_mapper_fails_validation(  # type: ignore[no-untyped-def]
    manifests, envoy_bin, tmp_path
) -> None:
    (doc,) = [m.doc for m in manifests if m.path.name == "envoyfilter-ingress-gateway.yaml"]
    lrc = copy.deepcopy(hcm_patch(doc)["patch"]["value"]["typed_config"]["local_reply_config"])
    lrc["mappers"][0]["filter"]["extension_filter"]["typed_config"]["expression"] = "response.("
    boot = envoy_bootstrap(copy.deepcopy(filter_patch(doc)["patch"]["value"]))
    boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "local_reply_config"
    ] = lrc
    assert envoy_validate(envoy_bin, boot, tmp_path).returncode != 0


def extproc_clusters(cfg: dict[str, Any], names: set[str]) -> list[dict[str, Any]]:
    return [c for c in cfg["static_resources"]["clusters"] if c["name"] in names]


def test_demo_and_bench_check_the_ext_proc_replicas() -> None:
    demo = yaml.safe_load((ROOT / "envoy" / "envoy-demo.yaml").read_text())
    bench = yaml.safe_load((ROOT / "bench" / "envoy-bench.yaml").read_text())
    clusters = [
        *extproc_clusters(demo, {"llm_extproc"}),
        *extproc_clusters(bench, {"llm_extproc", "llm_extproc_grpcio"}),
    ]
    assert len(clusters) == 3
    for c in clusters:
        (hc,) = c["health_checks"]
        assert (
            hc["grpc_health_check"]["service_name"] == "envoy.service.ext_proc.v3.ExternalProcessor"
        )
        # Checked before the first request too (Envoy's default there is 60 s).
        assert hc["no_traffic_interval"] == hc["interval"]
        od = c["outlier_detection"]
        assert od["enforcing_consecutive_gateway_failure"] == 100
        assert od["max_ejection_percent"] >= 50


def test_refused_streams_are_retried_on_another_replica_everywhere(envoyfilter_manifest) -> None:  # type: ignore[no-untyped-def]
    """A draining replica answers HTTP 503 (retry_on 5xx); a dead one resets or
    refuses the connection. The demo's policy is the mesh's."""
    demo = yaml.safe_load((ROOT / "envoy" / "envoy-demo.yaml").read_text())
    hcm = demo["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    (ext,) = [
        f for f in hcm["typed_config"]["http_filters"] if f["name"] == "envoy.filters.http.ext_proc"
    ]
    policy = ext["typed_config"]["grpc_service"]["retry_policy"]
    assert {"5xx", "connect-failure", "reset"} <= set(policy["retry_on"].split(","))
    assert policy["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    mesh = filter_patch(envoyfilter_manifest.doc)["patch"]["value"]["typed_config"]
    assert mesh["grpc_service"]["retry_policy"] == policy
