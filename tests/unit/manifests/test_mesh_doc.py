"""docs/mesh.md must stay in step with asm/: every manifest is explained there."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DOC = REPO_ROOT / "docs" / "mesh.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "asm").rglob("*.yaml")),
)
def test_every_manifest_is_documented(doc, path):
    if path == "asm/kustomization.yaml":
        assert "kubectl apply -k asm/" in doc
    else:
        assert path in doc, f"{path} is not mentioned in docs/mesh.md"


def test_scenarios_and_walkthrough(doc):
    lowered = doc.lower()
    for heading in ("ingress gateway", "sidecar", "egress gateway", "wasm-plugin.yaml"):
        assert heading in lowered, heading
    assert "curl -sS -H 'host: test.com' http://$GATEWAY_IP/" in doc
    assert '"messages":[' in doc
    # The WasmPlugin mapping: pluginConfig -> ConfigMap, key -> Secret, selector -> EnvoyFilter
    for term in ("pluginConfig", "llm-extproc-keys", "workloadSelector", "WasmPlugin"):
        assert term in doc, term
