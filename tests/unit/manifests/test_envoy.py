"""Each EnvoyFilter's HTTP filter, wrapped in a minimal bootstrap, must pass the real
Envoy's config validation (`envoy --mode validate`), with its per-route patches applied
to the routes as Istio would; and the check must be able to fail."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from mesh_routes import apply_route_patches, enabled_vhosts, ext_proc_runs, filter_patch


def ext_proc_filter(doc: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(filter_patch(doc)["patch"]["value"])


@pytest.fixture
def ingress_filter(manifests) -> dict[str, Any]:
    (doc,) = [m.doc for m in manifests if m.path.name == "envoyfilter-ingress-gateway.yaml"]
    return ext_proc_filter(doc)


def output(proc) -> str:
    return proc.stdout + proc.stderr


def test_envoyfilter_value_passes_envoy_validate(envoyfilter_manifest, envoy_check):
    proc = envoy_check(ext_proc_filter(envoyfilter_manifest.doc))
    assert proc.returncode == 0, output(proc)
    assert "OK" in output(proc)


def test_envoy_rejects_enum_typo(ingress_filter, envoy_check):
    ingress_filter["typed_config"]["processing_mode"]["request_body_mode"] = "BUFFERD"
    proc = envoy_check(ingress_filter)
    assert proc.returncode != 0
    assert "BUFFERD" in output(proc)


def test_envoy_rejects_non_protobuf_duration(ingress_filter, envoy_check):
    ingress_filter["typed_config"]["message_timeout"] = "500ms"  # protobuf JSON wants 0.5s
    proc = envoy_check(ingress_filter)
    assert proc.returncode != 0
    assert "duration" in output(proc).lower()


def test_envoy_accepts_fractional_seconds(ingress_filter, envoy_check):
    ingress_filter["typed_config"]["message_timeout"] = "0.5s"
    proc = envoy_check(ingress_filter)
    assert proc.returncode == 0, output(proc)


def test_envoy_rejects_unknown_nested_field(ingress_filter, envoy_check):
    ingress_filter["typed_config"]["mutation_rules"]["allow_all_routng"] = True
    proc = envoy_check(ingress_filter)
    assert proc.returncode != 0
    assert "allow_all_routng" in output(proc)


def test_envoy_rejects_wrong_type_url(ingress_filter, envoy_check):
    ingress_filter["typed_config"]["@type"] = (
        "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcesor"
    )
    proc = envoy_check(ingress_filter)
    assert proc.returncode != 0


def test_route_patches_pass_envoy_validate(envoyfilter_manifest, envoy_check):
    doc = envoyfilter_manifest.doc
    names = [*enabled_vhosts(doc), "other.example.com:80", "allow_any"]
    vhosts = apply_route_patches(doc, names)
    assert {vh["name"]: ext_proc_runs(vh) for vh in vhosts} == {
        **{n: True for n in enabled_vhosts(doc)},
        "other.example.com:80": False,
        "allow_any": False,
    }
    for vh in vhosts:  # Envoy wants every domain unique across virtual hosts
        vh["domains"] = sorted(set(vh["domains"])) if vh["name"] != "allow_any" else ["*"]
    proc = envoy_check(ext_proc_filter(doc), virtual_hosts=vhosts)
    assert proc.returncode == 0, output(proc)


def test_envoy_rejects_a_per_route_typo(manifests, envoy_check):
    (doc,) = [m.doc for m in manifests if m.path.name == "envoyfilter-ingress-gateway.yaml"]
    vhosts = apply_route_patches(doc, ["other.example.com:80"])
    per = vhosts[0]["typed_per_filter_config"]["envoy.filters.http.ext_proc"]
    per["disabld"] = per.pop("disabled")
    proc = envoy_check(ext_proc_filter(doc), virtual_hosts=vhosts)
    assert proc.returncode != 0
    assert "disabld" in output(proc)
