"""The shipped image, built and run for real (issue 22): `podman build` of the
unmodified Dockerfile, the container run as a non-root user with
--network host behind the e2e Envoy and fake provider, a chat request through
Envoy, its HEALTHCHECK, and Redis budgets inside it.

CI installs podman and local base images with
../shared/containers/setup-podman.sh (.ci/run). Elsewhere the test is skipped,
saying why, where podman cannot run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from harness import ROOT, Stack, free_port, stop, wait_port

pytestmark = pytest.mark.e2e

IMAGE = f"localhost/llm-extproc:test-{os.getpid()}"
USER = "10001:10001"  # the Dockerfile's USER
KEY = "ck-image-7c1d"
BUDGET = 40  # tokens; the fake's answer to "hi" costs 18


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _unusable(why: str) -> None:
    msg = f"podman cannot run here ({why}); run ../shared/containers/setup-podman.sh"
    if _in_ci():
        pytest.fail(msg + "; CI (.ci/run) must have it")
    pytest.skip(msg)


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    if shutil.which("podman") is None:
        _unusable("no podman binary")
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if info.returncode != 0:
        _unusable(f"podman info failed: {info.stderr.strip()[-300:]}")
    if podman("image", "exists", "python:3.11-slim", check=False).returncode != 0:
        _unusable("no python:3.11-slim base image")
    # --format docker keeps the HEALTHCHECK (the OCI format has none).
    t0 = time.monotonic()
    build = subprocess.run(
        ["podman", "build", "--format", "docker", "--network", "host", "-t", IMAGE, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(f"image built in {time.monotonic() - t0:.0f}s")
    try:
        yield IMAGE
    finally:
        podman("rmi", "-f", IMAGE, check=False)


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        if _in_ci():
            pytest.fail("redis-server is not installed; CI must have it")
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path_factory.mktemp("redis"),
    )
    try:
        wait_port(port, proc=proc)
        yield port
    finally:
        stop(proc)


def config(redis_port: int) -> str:
    return f"""
providers:
- {{name: qwen, type: qwen, api_tokens: [sk-qwen-image]}}
routes:
- {{name: chat, match: {{hosts: [chat.test]}}, provider: qwen, auth: {{required: true}}}}
consumers:
- {{name: team-image, keys: [{KEY}], token_budget: {BUDGET}}}
budgets:
  window: 3600s
  backend: redis
  redis_url: redis://127.0.0.1:{redis_port}/0
"""


def test_the_image_serves_behind_envoy_as_non_root_with_redis_budgets(
    image: str, redis_port: int, tmp_path: Path
) -> None:
    name = f"llm-extproc-test-{uuid.uuid4().hex[:8]}"

    def run_in_podman(cfg: Path, port: int, metrics: int) -> list[str]:
        cfg.chmod(0o644)  # read by the image's user
        return [
            "podman",
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            "host",
            "--user",
            USER,
            "--read-only",
            "-v",
            f"{cfg}:/etc/llm-extproc/config.yaml:ro",
            image,
            "serve",
            "--config",
            "/etc/llm-extproc/config.yaml",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics),
        ]

    try:
        with Stack(tmp_path, config(redis_port), server_cmd=run_in_podman) as s:
            # Non-root: the image's user, and the process in the container.
            assert (
                podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
                == USER
            )
            assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
            # Its HEALTHCHECK (grpc.health.v1 against :50051 by default: here
            # the port is another, so the check is run as the image has it,
            # pointed at our port).
            hc = podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image)
            assert "grpc_health" in hc.stdout, hc.stdout
            probe = podman(
                "exec",
                name,
                "python",
                "-c",
                "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g;"
                f" r = g.HealthStub(grpc.insecure_channel('localhost:{s.extproc_port}'))"
                ".Check(h.HealthCheckRequest(), timeout=3);"
                " sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)",
                check=False,
            )
            assert probe.returncode == 0, probe.stderr

            with httpx.Client(
                base_url=s.url,
                timeout=15,
                headers={"host": "chat.test", "authorization": f"Bearer {KEY}"},
            ) as c:
                body = b'{"model":"qwen-turbo","messages":[{"role":"user","content":"hi"}]}'
                first = c.post("/v1/chat/completions", content=body)
                assert first.status_code == 200, first.text
                assert first.json()["choices"][0]["message"]["content"]
                (seen,) = s.fake.take()
                assert seen.headers["authorization"] == "Bearer sk-qwen-image"
                assert seen.path == "/compatible-mode/v1/chat/completions"
                # Budgets in Redis: charged by the container, then refused.
                r = redis.Redis(port=redis_port)
                deadline = time.monotonic() + 10
                while not list(r.scan_iter("llm_extproc:budget:team-image:*")):
                    assert time.monotonic() < deadline, "no budget key in Redis"
                    time.sleep(0.05)
                # Then refused once the budget is spent (admission reserves an
                # estimate, the end settles the real usage: a few requests).
                codes = []
                for _ in range(6):
                    time.sleep(0.3)  # the settlement is written after the answer
                    over = c.post("/v1/chat/completions", content=body)
                    codes.append(over.status_code)
                    if over.status_code != 200:
                        break
                assert codes[-1] == 429, (codes, over.text)
                assert "team-image" in over.json()["error"]["message"]
                spent = sum(
                    int(r.get(k) or 0) for k in r.scan_iter("llm_extproc:budget:team-image:*")
                )
                assert spent >= 18, spent  # at least the first answer's real usage
            assert KEY not in s.logs()
    finally:
        podman("rm", "-f", name, check=False)


def test_the_healthcheck_of_the_image_passes_on_its_default_port(
    image: str, tmp_path: Path
) -> None:
    """`podman healthcheck run`: the image's own HEALTHCHECK, unchanged, on
    the default port 50051 (only when that port is free here)."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 50051))
        except OSError:
            pytest.skip("port 50051 is taken on this machine")
    cfg = tmp_path / "config.yaml"
    cfg.write_text('hosts: ["chat.test"]\napi_key: "sk-x"\n')
    cfg.chmod(0o644)
    name = f"llm-extproc-hc-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [
            "podman",
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            "host",
            "--user",
            USER,
            "-v",
            f"{cfg}:/etc/llm-extproc/config.yaml:ro",
            image,
            "serve",
            "--config",
            "/etc/llm-extproc/config.yaml",
            "--host",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(50051, 90, proc=proc)
        deadline = time.monotonic() + 30
        while True:
            hc = podman("healthcheck", "run", name, check=False)
            if hc.returncode == 0:
                break
            assert time.monotonic() < deadline, (hc.stdout, hc.stderr)
            time.sleep(0.5)
    finally:
        stop(proc)
        podman("rm", "-f", name, check=False)
