"""Kubernetes core objects in asm/: strict schema validation + deployment contract."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
ASM = REPO_ROOT / "asm"
NS = "llm-extproc"
KNOWN_KINDS = {
    # Kubernetes core (kubernetes-validate)
    "Namespace",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "NetworkPolicy",
    # Istio (CRD schemas)
    "EnvoyFilter",
    "ServiceEntry",
    "DestinationRule",
    "Gateway",
    "VirtualService",
    "AuthorizationPolicy",
    "RequestAuthentication",
    # ASM-only examples
    "LLMProvider",
    "LLMRoute",
}


def one(manifests, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [m.doc for m in manifests if m.kind == kind and (name is None or m.name == name)]
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]


def test_every_manifest_kind_is_validated(manifests):
    assert manifests, "no manifests found under asm/"
    unknown = sorted({m.id for m in manifests if m.kind not in KNOWN_KINDS})
    assert not unknown, f"kinds without a validator: {unknown}"


def test_core_kind_strict_schema(k8s_manifest, k8s_validate):
    assert k8s_validate(k8s_manifest.doc) == []


def test_core_objects_live_in_service_namespace(k8s_manifest):
    doc = k8s_manifest.doc
    if doc["kind"] == "Namespace":
        assert doc["metadata"]["name"] == NS
    else:
        assert doc["metadata"].get("namespace") == NS


def test_strict_mode_rejects_unknown_field(manifests, k8s_validate):
    dep = copy.deepcopy(one(manifests, "Deployment"))
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["grpc"]["portt"] = 50051
    errors = k8s_validate(dep)
    assert errors and "portt" in errors[0]


def test_strict_mode_rejects_wrong_type(manifests, k8s_validate):
    svc = copy.deepcopy(one(manifests, "Service"))
    svc["spec"]["ports"][0]["port"] = "fifty-thousand"
    assert k8s_validate(svc)


def test_deployment_contract(manifests):
    dep = one(manifests, "Deployment", "llm-extproc")
    spec = dep["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (c,) = pod["containers"]
    assert c["image"] == "llm-extproc:0.1.0"
    args = c["args"]
    assert args[0] == "serve"
    assert args[args.index("--config") + 1] == "/etc/llm-extproc/config.yaml"
    assert args[args.index("--port") + 1] == "50051"
    assert args[args.index("--metrics-port") + 1] == "9464"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc-extproc": 50051, "http-metrics": 9464}

    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == 50051, probe
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= c["resources"][kind].keys(), kind


def test_deployment_security_context(manifests):
    pod = one(manifests, "Deployment", "llm-extproc")["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 10001
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    csc = pod["containers"][0]["securityContext"]
    assert csc["runAsNonRoot"] is True
    assert csc["runAsUser"] == 10001
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in csc["capabilities"]
    assert csc["seccompProfile"]["type"] == "RuntimeDefault"


def test_config_is_mounted_from_configmap(manifests):
    pod = one(manifests, "Deployment", "llm-extproc")["spec"]["template"]["spec"]
    cm = one(manifests, "ConfigMap", "llm-extproc-config")
    assert "config.yaml" in cm["data"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    mount = mounts["/etc/llm-extproc"]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["configMap"]["name"] == "llm-extproc-config"


def test_every_config_variable_comes_from_the_secret(manifests):
    pod = one(manifests, "Deployment", "llm-extproc")["spec"]["template"]["spec"]
    secret = one(manifests, "Secret", "llm-extproc-keys")
    config = one(manifests, "ConfigMap", "llm-extproc-config")["data"]["config.yaml"]
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", config))
    assert referenced, "config.yaml should take its keys from the environment"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    for var in referenced:
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "llm-extproc-keys"
        assert ref["key"] in secret["stringData"]
    # No key material anywhere in the ConfigMap.
    assert "sk-" not in config


def test_secret_values_are_marked_placeholders(manifests):
    secret = one(manifests, "Secret", "llm-extproc-keys")
    assert "data" not in secret, "use stringData placeholders, never encoded real keys"
    for key, value in secret["stringData"].items():
        assert value.startswith("REPLACE-ME"), key
    assert "PLACEHOLDER" in (ASM / "secret.yaml").read_text(encoding="utf-8")


def test_pdb_covers_the_deployment(manifests):
    pdb = one(manifests, "PodDisruptionBudget")
    dep = one(manifests, "Deployment", "llm-extproc")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] == 1 < dep["spec"]["replicas"]


def test_service_ports(manifests):
    svc = one(manifests, "Service", "llm-extproc")
    dep = one(manifests, "Deployment", "llm-extproc")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["grpc-extproc"]["port"] == 50051
    assert ports["grpc-extproc"]["appProtocol"] == "grpc"
    assert ports["http-metrics"]["port"] == 9464
    container_ports = {p["name"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
    for p in ports.values():
        assert p["targetPort"] in container_ports


def test_kustomization_resources():
    kust = yaml.safe_load((ASM / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kust["kind"] == "Kustomization"
    resources = kust["resources"]
    assert len(resources) == len(set(resources))
    for res in resources:
        assert (ASM / res).is_file(), res
    # Gateway-scoped objects live in istio-system: a global namespace would move them.
    assert "namespace" not in kust
    # Re-applying the base must not overwrite real keys with placeholders.
    assert "secret.yaml" not in resources
    for needed in ("deployment.yaml", "service.yaml", "configmap.yaml", "namespace.yaml"):
        assert needed in resources
