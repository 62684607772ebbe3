"""Issue 18 item 8: `llm-extproc serve` without --host / --metrics-host listens
on loopback only, so neither the gRPC port nor /metrics is reachable on the
machine's other addresses (it bound 0.0.0.0 before)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import free_port, stop, wait_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "providers: [{name: q, type: qwen, api_tokens: [sk-bind-test]}]\nroutes: [{name: r, provider: q}]\n"


def _other_address() -> str | None:
    """An address of this machine that is not loopback (None: there is none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))  # no packet is sent: only a route lookup
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_serve_binds_loopback_by_default(tmp_path: Path) -> None:
    other = _other_address()
    if other is None:
        pytest.skip("this machine has no address besides loopback")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    port, metrics = free_port(), free_port()
    cmd = [sys.executable, "-m", "extproc.cli", "serve", "--config", str(cfg)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--metrics-port", str(metrics)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc=proc)
        wait_port(metrics, proc=proc)
        assert _reachable("127.0.0.1", port) and _reachable("127.0.0.1", metrics)
        assert not _reachable(other, port), f"gRPC port reachable on {other}"
        assert not _reachable(other, metrics), f"/metrics reachable on {other}"
    finally:
        stop(proc)
