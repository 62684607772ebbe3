"""The ConfigMap's config.yaml must pass the service's own checker
(`llm-extproc check-config`), run exactly as an operator would, with the Secret's keys
in the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]


def one(manifests, kind: str, name: str) -> dict[str, Any]:
    (doc,) = [m.doc for m in manifests if m.kind == kind and m.name == name]
    return doc


def check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    pytest.importorskip("extproc.cli", reason="extproc.cli (check-config) not written yet")
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "extproc.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
        env=full_env,
    )


@pytest.fixture
def secret_env(manifests) -> dict[str, str]:
    return dict(one(manifests, "Secret", "llm-extproc-keys")["stringData"])


@pytest.fixture
def configmap_config(manifests) -> str:
    return one(manifests, "ConfigMap", "llm-extproc-config")["data"]["config.yaml"]


def test_configmap_is_old_plugin_format(configmap_config):
    cfg = yaml.safe_load(configmap_config)
    assert set(cfg) <= {"hosts", "api_key", "allow_patterns", "deny_patterns", "intelligent_guard"}
    assert "test.com" in cfg["hosts"] and "dashscope.aliyuncs.com" in cfg["hosts"]
    assert cfg["api_key"] == "${DASHSCOPE_API_KEY}"
    guard = cfg["intelligent_guard"]
    assert (guard["host"], guard["port"]) == ("dashscope.aliyuncs.com", 443)
    assert guard["api_key"] == "${GUARD_API_KEY}"


def test_configmap_config_passes_check_config(configmap_config, secret_env, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(configmap_config, encoding="utf-8")
    proc = check_config(path, secret_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_config_rejects_a_broken_config(configmap_config, secret_env, tmp_path):
    """Guards the test above against a checker that accepts anything."""
    cfg = yaml.safe_load(configmap_config)
    cfg["hosts"] = 42
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    proc = check_config(path, secret_env)
    assert proc.returncode != 0
    assert "hosts" in proc.stdout + proc.stderr


def test_asm_examples_pass_check_config(manifests, secret_env, tmp_path):
    """ASM's LLMProvider + LLMRoute documents (asm/examples/) are accepted as one config
    file; the route needs the provider, so they are checked together."""
    docs = [m.doc for m in manifests if m.kind in {"LLMProvider", "LLMRoute"}]
    assert {d["kind"] for d in docs} == {"LLMProvider", "LLMRoute"}
    path = tmp_path / "asm-crds.yaml"
    path.write_text(yaml.safe_dump_all(docs, allow_unicode=True), encoding="utf-8")
    proc = check_config(path, secret_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
