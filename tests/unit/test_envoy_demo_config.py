"""envoy/envoy-demo.yaml must pass the real Envoy's validation, and its
ext_proc filter must agree with the mesh EnvoyFilters on the settings the
service relies on."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from harness import ROOT, envoy_binary, render_envoy


def ext_proc(filters: list[dict[str, Any]]) -> dict[str, Any]:
    (f,) = [f for f in filters if f["name"] == "envoy.filters.http.ext_proc"]
    return f["typed_config"]


def validate(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "envoy.yaml"
    cfg.write_text(text)
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_config_validates(tmp_path: Path) -> None:
    p = validate((ROOT / "envoy" / "envoy-demo.yaml").read_text(), tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_rendered_demo_config_validates(tmp_path: Path) -> None:
    p = validate(render_envoy(20000, 20001, 20002, 20003, ollama=20004), tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def test_validation_catches_a_bad_duration(tmp_path: Path) -> None:
    text = (
        (ROOT / "envoy" / "envoy-demo.yaml")
        .read_text()
        .replace("message_timeout: 30s", "message_timeout: 500ms")
    )
    assert "500ms" in text
    assert validate(text, tmp_path).returncode != 0


def test_demo_and_mesh_filters_agree() -> None:
    demo = yaml.safe_load((ROOT / "envoy" / "envoy-demo.yaml").read_text())
    hcms = [
        f["typed_config"]
        for lst in demo["static_resources"]["listeners"]
        for chain in lst["filter_chains"]
        for f in chain["filters"]
    ]
    mesh = yaml.safe_load((ROOT / "asm" / "envoyfilter-ingress-gateway.yaml").read_text())
    (patch,) = mesh["spec"]["configPatches"]
    mesh_cfg = patch["patch"]["value"]["typed_config"]
    for hcm in hcms:
        cfg = ext_proc(hcm["http_filters"])
        assert hcm["http_filters"][-1]["name"] == "envoy.filters.http.router"
        for key in (
            "processing_mode",
            "allow_mode_override",
            "failure_mode_allow",
            "mutation_rules",
        ):
            assert cfg[key] == mesh_cfg[key], key
