"""Compiling opens nothing: no HTTP client exists until a processor's start(),
not for check-config and not for a config that fails to compile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from extproc.cli import main
from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text

CONFIG = """
providers:
- {name: p, type: generic, base_url: "http://127.0.0.1:9/v1", api_tokens: [sk-a, sk-b]}
routes:
- name: r
  match: {hosts: [a.test]}
  provider: p
  processors:
  - llm_guard: {host: 127.0.0.1, port: 9, api_key: sk-guard}
  - llm_guard: {provider: p}
  - llm_rewrite: {host: 127.0.0.1, port: 9, model: m}
  - context: {url: "http://127.0.0.1:9/context.txt", refresh: 3600s}
"""


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[httpx.AsyncClient]:
    """Every httpx.AsyncClient created while the test runs."""
    made: list[httpx.AsyncClient] = []
    real = httpx.AsyncClient.__init__

    def spy(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", spy)
    return made


async def test_no_client_until_start(clients: list[httpx.AsyncClient]) -> None:
    rt = compile_config(load_text(CONFIG), {})
    assert len(rt.processors) == 4
    assert clients == []
    for p in rt.processors:
        await p.start()
    assert len(clients) == 4  # two guards, the rewriter, the context URL
    for p in rt.processors:
        await p.aclose()
    assert all(c.is_closed for c in clients)


def test_compiling_takes_no_provider_token() -> None:
    rt = compile_config(load_text(CONFIG), {})
    pool = rt.providers["p"].tokens
    assert pool is not None
    assert pool.pick() == "sk-a"  # still the first: nothing picked one before


def test_check_config_creates_no_client(
    tmp_path: Path, clients: list[httpx.AsyncClient], capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(CONFIG)
    assert main(["check-config", str(f)]) == 0
    assert "OK" in capsys.readouterr().out
    assert clients == []


def test_a_config_that_fails_creates_no_client(clients: list[httpx.AsyncClient]) -> None:
    # Valid processors before a bad one: the old compiler had built their clients.
    bad = CONFIG + "  - regex_guard: {deny_patterns: ['(']}\n"
    with pytest.raises(ConfigError) as e:
        compile_config(load_text(bad), {})
    assert [p for p, _ in e.value.problems] == [
        "routes[0].processors[4].regex_guard.deny_patterns[0]"
    ]
    assert clients == []
