"""asm/patches/proxy-runtime.yaml: the Envoy runtime flag for the proxies that run
ext_proc, set through Istio's ProxyConfig.runtimeValues in the pod annotation
proxy.istio.io/config. Checked as Kubernetes (the patched Deployment), as Istio
(the annotation's ProxyConfig) and as Envoy (the runtime layer it becomes)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

PATCH = Path(__file__).resolve().parents[3] / "asm" / "patches" / "proxy-runtime.yaml"
ANNOTATION = "proxy.istio.io/config"
GRACEFUL_CLOSE = "envoy.reloadable_features.ext_proc_graceful_grpc_close"

# A gateway Deployment as Istio installs it, cut down to what the schema requires.
GATEWAY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
    "spec": {
        "selector": {"matchLabels": {"istio": "ingressgateway"}},
        "template": {
            "metadata": {
                "labels": {"istio": "ingressgateway"},
                "annotations": {"prometheus.io/scrape": "true"},
            },
            "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]},
        },
    },
}


def strategic_merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """kubectl's strategic merge for maps (the patch has no lists)."""
    out = copy.deepcopy(target)
    for k, v in patch.items():
        out[k] = strategic_merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


@pytest.fixture(scope="module")
def patch() -> dict[str, Any]:
    return yaml.safe_load(PATCH.read_text())


@pytest.fixture(scope="module")
def proxy_config(patch: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(patch["spec"]["template"]["metadata"]["annotations"][ANNOTATION])


def test_patch_touches_only_the_pod_annotation(patch: dict[str, Any]) -> None:
    assert patch == {
        "spec": {"template": {"metadata": {"annotations": {ANNOTATION: patch_value(patch)}}}}
    }


def patch_value(patch: dict[str, Any]) -> str:
    value: str = patch["spec"]["template"]["metadata"]["annotations"][ANNOTATION]
    return value


def test_patched_deployment_is_valid_and_keeps_its_annotations(patch, k8s_validate) -> None:
    patched = strategic_merge(GATEWAY, patch)
    assert k8s_validate(patched) == []
    annotations = patched["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert ANNOTATION in annotations


def test_annotation_sets_the_flag_as_a_proxyconfig_string(proxy_config: dict[str, Any]) -> None:
    # ProxyConfig.runtime_values is map<string, string>: a YAML boolean would not parse.
    assert list(proxy_config) == ["runtimeValues"]
    assert proxy_config["runtimeValues"] == {GRACEFUL_CLOSE: "true"}


def test_envoy_accepts_the_runtime_layer_istio_builds(
    proxy_config: dict[str, Any], envoy_check_bootstrap
) -> None:
    """Istio's bootstrap puts runtimeValues into a static layer ("global config")
    followed by the admin layer."""
    bootstrap = {
        "layered_runtime": {
            "layers": [
                {"name": "global config", "static_layer": proxy_config["runtimeValues"]},
                {"name": "admin", "admin_layer": {}},
            ]
        },
        "static_resources": {},
    }
    proc = envoy_check_bootstrap(bootstrap)
    assert proc.returncode == 0, proc.stdout + proc.stderr
