"""Each EnvoyFilter's HTTP filter, wrapped in a minimal bootstrap, must pass the real
Envoy's config validation (`envoy --mode validate`), and the check must be able to fail."""

from __future__ import annotations

import copy
from typing import Any

import pytest


def ext_proc_filter(doc: dict[str, Any]) -> dict[str, Any]:
    (patch,) = doc["spec"]["configPatches"]
    return copy.deepcopy(patch["patch"]["value"])


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
