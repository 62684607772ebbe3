"""The README's demo: test/demo.py (what ./test/run.sh starts) answered by
./test/test.sh, on ports chosen at run time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import envoy_has_fallback, free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
PROXY_KEY = "e2e-proxy-key-SECRET-91c2"


def test_demo_scenarios_pass_with_test_sh(tmp_path: Path) -> None:
    ports = {k: free_port() for k in ("LISTENER", "OLLAMA", "EXTPROC", "FAKE", "ADMIN", "METRICS")}
    env = {k: v for k, v in os.environ.items() if k != "DASHSCOPE_API_KEY"}
    env.update({f"DEMO_{k}": str(v) for k, v in ports.items()})
    env["DEMO_DIR"] = str(tmp_path)
    # The user's own key: used by test.sh, printed by nobody.
    env["LLM_PROXY_KEY"] = PROXY_KEY
    demo = subprocess.Popen(
        [sys.executable, str(ROOT / "test" / "demo.py")],
        env=env,
        cwd=ROOT,
        stdout=(tmp_path / "demo.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(ports["LISTENER"], timeout=60, proc=demo)
        deadline = time.monotonic() + 30
        while (
            b"demo is up" not in (tmp_path / "demo.out").read_bytes()
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        run = subprocess.run(
            ["bash", str(ROOT / "test" / "test.sh")],
            env={
                **env,
                "PYTHON": sys.executable,
                "BASE": f"http://127.0.0.1:{ports['LISTENER']}",
                "OLLAMA_BASE": f"http://localhost:{ports['OLLAMA']}",
                "METRICS": f"http://127.0.0.1:{ports['METRICS']}/metrics",
                "DEMO_FALLBACK": "1" if envoy_has_fallback() else "0",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        assert "all scenarios passed" in run.stdout
        assert "FAIL" not in run.stdout
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    out = (tmp_path / "demo.out").read_text()
    assert "demo stopped" in out
    assert '"$LLM_PROXY_KEY"' in out
    for text in (out, run.stdout, *(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))):
        assert PROXY_KEY not in text
