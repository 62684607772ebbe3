"""The real Codex CLI (`codex exec`) through the real Envoy and the gateway,
against the fake provider as dashscope: Codex speaks only the Responses API.

Runs when a Codex binary is found ($CODEX_BIN, or `codex` on PATH; npm package
@openai/codex); the suite installs nothing and reaches no network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Stack

pytestmark = pytest.mark.e2e

CODEX = os.environ.get("CODEX_BIN") or shutil.which("codex")
KEY = "ck-codex-cli-e2e"
QWEN_KEY = "sk-qwen-codex-e2e"
CONFIG = f"""
providers:
- {{name: qwen, type: qwen, api_tokens: [{QWEN_KEY}], model_mapping: {{"*": qwen-plus}}}}
routes:
- name: codex
  match: {{path_prefix: /v1/responses}}
  provider: qwen
  client_api: responses
  auth: {{required: true}}
consumers:
- {{name: dev, keys: [{KEY}]}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not CODEX:
        pytest.skip("no Codex CLI binary (set CODEX_BIN or put codex on PATH)")
    with Stack(tmp_path_factory.mktemp("codex"), CONFIG, fake_keys={"openai": QWEN_KEY}) as s:
        yield s


def test_codex_exec_gets_an_answer(stack: Stack, tmp_path: Path) -> None:
    assert CODEX is not None
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "any-model-name"\nmodel_provider = "gateway"\n\n'
        "[model_providers.gateway]\n"
        f'name = "llm-extproc"\nbase_url = "{stack.url}/v1"\n'
        'env_key = "LLM_PROXY_KEY"\nwire_api = "responses"\n\n'
        "[analytics]\nenabled = false\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CODEX_HOME": str(home),
        "LLM_PROXY_KEY": KEY,
    }
    run = subprocess.run(
        [CODEX, "exec", "--skip-git-repo-check", "--ephemeral", "--json", "-"],
        input="say hi",
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    events = [json.loads(x) for x in run.stdout.splitlines() if x.startswith("{")]
    done = [e for e in events if e.get("type") == "turn.completed"]
    assert done and done[-1]["usage"]["input_tokens"] > 0, run.stdout[-2000:]
    answers = [
        e["item"]["text"] for e in events if e.get("item", {}).get("type") == "agent_message"
    ]
    assert answers and answers[-1].startswith("Fake model"), answers
    recs = stack.fake.seen()
    assert recs and all(r.path == "/compatible-mode/v1/chat/completions" for r in recs)
    assert all(r.headers["authorization"] == f"Bearer {QWEN_KEY}" for r in recs)
    assert all("accept-encoding" not in r.headers for r in recs)
