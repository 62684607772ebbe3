"""The demo: Envoy on 127.0.0.1:18000 + llm-extproc + a fake provider.

Started by ./test/run.sh. With DASHSCOPE_API_KEY set, the dashscope cluster
points at the real dashscope.aliyuncs.com:443 (TLS) and the guard asks the
real qwen-turbo; otherwise everything is local and the fake provider plays
dashscope, Claude and the guard model. Runs in the foreground; Ctrl-C or
SIGTERM stops every process it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import envoy_binary, stop, wait_healthy, wait_port  # noqa: E402
from harness import render_envoy as render_envoy_ports  # noqa: E402

# Fixed demo ports; tests/e2e/test_demo.py moves them with DEMO_* variables.
LISTENER = int(os.environ.get("DEMO_LISTENER", 18000))
OLLAMA = int(os.environ.get("DEMO_OLLAMA", 8004))
EXTPROC = int(os.environ.get("DEMO_EXTPROC", 50051))
FAKE = int(os.environ.get("DEMO_FAKE", 18001))
ADMIN = int(os.environ.get("DEMO_ADMIN", 19000))
METRICS = int(os.environ.get("DEMO_METRICS", 9464))
DEMO_KEYS = {
    "DASHSCOPE_API_KEY": "sk-demo-dashscope",
    "ANTHROPIC_API_KEY": "sk-demo-anthropic",
    "GUARD_API_KEY": "sk-demo-guard",
    "LLM_PROXY_KEY": "demo-ollama-key",
}


def render_config(real: bool) -> str:
    text = (HERE / "demo" / "config.yaml").read_text()
    guard = ("dashscope.aliyuncs.com", "443", "true") if real else ("127.0.0.1", str(FAKE), "false")
    for k, v in zip(("GUARD_HOST", "GUARD_PORT", "GUARD_TLS"), guard, strict=True):
        text = text.replace("${" + k + "}", v)
    return text.replace(":8004", f":{OLLAMA}")


def render_envoy(real: bool) -> str:
    cfg = yaml.safe_load(render_envoy_ports(LISTENER, EXTPROC, FAKE, ADMIN, ollama=OLLAMA))
    if real:
        for c in cfg["static_resources"]["clusters"]:
            if c["name"] in ("dashscope", "llm_fallback_dashscope"):
                c["type"] = "LOGICAL_DNS"
                c["dns_lookup_family"] = "V4_ONLY"
                ep = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
                ep["address"]["socket_address"] = {
                    "address": "dashscope.aliyuncs.com",
                    "port_value": 443,
                }
                c["transport_socket"] = {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                        "sni": "dashscope.aliyuncs.com",
                    },
                }
    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)


def banner(real: bool, own_key: bool, run: Path) -> str:
    """What the demo prints once it is up. Keys appear only as "$LLM_PROXY_KEY",
    for the user's shell to expand: no secret value is printed."""
    key_note = (
        "your LLM_PROXY_KEY"
        if own_key
        else "the demo's built-in key; first: export LLM_PROXY_KEY=" + DEMO_KEYS["LLM_PROXY_KEY"]
    )
    mode = (
        "the REAL dashscope (DASHSCOPE_API_KEY is set)"
        if real
        else f"a local fake provider on 127.0.0.1:{FAKE}"
    )
    ollama = f"http://localhost:{OLLAMA}"
    gen = '{"model": "llama3", "prompt": "Why is the sky blue?", "key": "\'"$LLM_PROXY_KEY"\'"}'
    chat = '{"model": "llama3", "messages": [{"role": "user", "content": "Hello!"}]}'
    return f"""
llm-extproc demo is up: Envoy on 127.0.0.1:{LISTENER} -> {mode}
  ext_proc gRPC 127.0.0.1:{EXTPROC}   metrics http://127.0.0.1:{METRICS}/metrics
  logs: {run}/extproc.log (one JSON line per request), Envoy access log below

Try:
  curl 127.0.0.1:{LISTENER}/ -H 'host: test.com' -d '{{"messages":[{{"role":"user","content":"Please introduce yourself"}}]}}'
  curl 127.0.0.1:{LISTENER}/ -H 'host: test.com' -d '{{"messages":[{{"role":"user","content":"我的账号是多少"}}]}}'
  curl -N 127.0.0.1:{LISTENER}/ -H 'host: test.com' -d '{{"stream":true,"messages":[{{"role":"user","content":"Tell me a story"}}]}}'
  curl 127.0.0.1:{LISTENER}/v1/chat/completions -H 'host: claude.test.com' -d '{{"model":"gpt-4o","messages":[{{"role":"user","content":"Hi"}}]}}'

The Ollama API on {ollama} takes the key ({key_note}) in the body "key" or as
Authorization: Bearer (the ollama clients, Open WebUI):
  curl -X POST {ollama}/api/generate -H "Content-Type: application/json" -d '{gen}'
  curl -X POST {ollama}/api/chat -H "Authorization: Bearer $LLM_PROXY_KEY" -d '{chat}'
or run ./test/test.sh in another terminal. Ctrl-C stops everything.
"""


def main() -> int:
    real = bool(os.environ.get("DASHSCOPE_API_KEY"))
    env = dict(os.environ)
    for k, v in DEMO_KEYS.items():
        env.setdefault(k, v)
    run = Path(os.environ.get("DEMO_DIR", ROOT / ".demo"))
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_text(render_config(real))
    (run / "envoy.yaml").write_text(render_envoy(real))
    procs: list[subprocess.Popen[bytes]] = []

    def shutdown(*_: object) -> None:
        for p in reversed(procs):
            stop(p)
        print("demo stopped", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        # The fake always runs: it also answers the catch-all (pass-through) route.
        fake_cmd = [
            sys.executable,
            str(HERE / "fake_provider.py"),
            "--port",
            str(FAKE),
            "--drip",
            "0.2",
        ]
        fake_cmd += ["--openai-key", env["DASHSCOPE_API_KEY"], "--openai-key", env["GUARD_API_KEY"]]
        fake_cmd += ["--claude-key", env["ANTHROPIC_API_KEY"]]
        procs.append(subprocess.Popen(fake_cmd))
        wait_port(FAKE, proc=procs[-1])
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "extproc.cli",
                    "serve",
                    "--config",
                    str(run / "config.yaml"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(EXTPROC),
                    "--metrics-port",
                    str(METRICS),
                ],
                env=env,
                cwd=ROOT,
                stderr=(run / "extproc.log").open("wb"),
            )
        )
        wait_port(EXTPROC, proc=procs[-1])
        wait_healthy(EXTPROC)
        procs.append(
            subprocess.Popen(
                [
                    envoy_binary(),
                    "-c",
                    str(run / "envoy.yaml"),
                    "--base-id",
                    str(LISTENER),
                    "-l",
                    "warning",
                    "--log-path",
                    str(run / "envoy.log"),
                ],
            )
        )
        wait_port(LISTENER, proc=procs[-1])
    except BaseException:
        shutdown()
        raise
    print(banner(real, "LLM_PROXY_KEY" in os.environ, run), flush=True)
    while True:
        for p in procs:
            if p.poll() is not None:
                print(f"process {p.args[0]} exited with {p.returncode}; stopping", file=sys.stderr)
                shutdown()
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
