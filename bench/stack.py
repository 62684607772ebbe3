"""The benchmark's processes: the two llm-extproc servers (h2corn and grpcio
transports), the two null ext_proc servers (the same two transport stacks,
prebuilt answers), the streaming fake provider and Envoy.
Every process is started here and stopped by PID (stop_all)."""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import socket
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Case:
    listener: str  # Envoy listener (a key of Stack.ports)
    host: str  # Host header the client sends
    server: str | None  # whose CPU/RSS the case is charged to: a transport, a NULLS key, or None


CASES = {
    "floor": Case("floor", "llm.bench", None),
    # bench/null_extproc.py: the same four ext_proc messages answered with
    # prebuilt empty responses on grpc.aio, the old transport's floor.
    "grpc-null": Case("extproc_null", "llm.bench", "null"),
    # The same null server on h2corn with our transport's config and ASGI gRPC
    # framing: the h2corn transport's floor, without our exchange or codec.
    "h2corn-null": Case("extproc_null_h2corn", "llm.bench", "null_h2corn"),
    "full": Case("extproc", "llm.bench", "h2corn"),
    "full-grpcio": Case("extproc_grpcio", "llm.bench", "grpcio"),
    # other.bench: the catch-all virtual host, ext_proc disabled per route: no
    # server sees it.
    "passthrough": Case("extproc", "other.bench", None),
    # skip.bench: on the LLM virtual host, not in the config: the SKIP answer.
    "skip": Case("extproc", "skip.bench", "h2corn"),
    # cache.bench: full's checks, then a response cache hit (no upstream).
    "cache-hit": Case("extproc", "cache.bench", "h2corn"),
}
DEFAULT_CASES = (
    "floor",
    "grpc-null",
    "h2corn-null",
    "full",
    "full-grpcio",
    "passthrough",
    "cache-hit",
)
# Which llm-extproc listener runs on which transport.
TRANSPORT_LISTENER = {"h2corn": "extproc", "grpcio": "extproc_grpcio"}
# The null servers (bench/null_extproc.py): server key -> (--transport, its case).
NULLS = {"null": ("grpcio", "grpc-null"), "null_h2corn": ("h2corn", "h2corn-null")}

# -- processes --------------------------------------------------------------------

_PROCS: list[subprocess.Popen[bytes]] = []


def stop_all() -> None:
    """Stop every process we started, by PID, newest first."""
    for p in reversed(_PROCS):
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(5)
    _PROCS.clear()


def start(cmd: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, **kw)
    _PROCS.append(p)
    return p


def track(p: subprocess.Popen[bytes]) -> None:
    _PROCS.append(p)


def untrack(p: subprocess.Popen[bytes]) -> None:
    _PROCS.remove(p)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pid {proc.pid} exited with {proc.returncode} before port {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def descendants(pid: int) -> list[int]:
    """pid and every process below it (the workers of --workers N)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{d}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children[ppid].append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            f = stat[stat.rindex(")") + 2 :].split()
            total += int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# -- the stack --------------------------------------------------------------------


@dataclass
class Stack:
    tmp: Path
    ports: dict[str, int] = field(default_factory=dict)
    # llm-extproc by transport ("h2corn", "grpcio"), plus the NULLS.
    servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    envoy: subprocess.Popen[bytes] | None = None

    def pids(self, server: str | None) -> list[int]:
        if server is None or server not in self.servers:
            return []
        return descendants(self.servers[server].pid)

    def pids_for(self, case: str) -> list[int]:
        return self.pids(CASES[case].server)

    def listener(self, name: str) -> int:
        return self.ports[name]

    def log(self, server: str) -> Path:
        return self.tmp / f"extproc-{server}.log"


def supports_transport_flag(python: str) -> bool:
    """Whether this checkout's `llm-extproc serve` takes --transport (before the
    h2corn transport lands it does not, and serves grpcio only)."""
    out = subprocess.run(
        [python, "-m", "extproc.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    return "--transport" in out.stdout


def server_cmd(
    args: argparse.Namespace, python: str, port: int, transport: str | None
) -> list[str]:
    """llm-extproc exactly as production starts it (default log level: one
    JSON log line per request is part of the cost)."""
    entry = [str(BENCH / "traced_serve.py")] if args.tracemalloc else ["-m", "extproc.cli"]
    cmd = [python, *entry, "serve", "--config", str(args.config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0"]
    if transport is not None:
        cmd += ["--transport", transport]
    if args.workers != 1:
        cmd += ["--workers", str(args.workers)]
    if args.no_uvloop:
        cmd.append("--no-uvloop")
    return cmd


def start_server(
    args: argparse.Namespace, st: Stack, python: str, transport: str, flag: bool
) -> None:
    port = st.ports[f"grpc_{transport}"]
    proc = start(server_cmd(args, python, port, transport if flag else None), st.log(transport))
    st.servers[transport] = proc
    wait_port(port, proc)
    if args.workers == 1:
        return
    # Every worker logs "serving" once it is bound to the shared port.
    deadline = time.monotonic() + 30
    while st.log(transport).read_text(errors="replace").count('"msg":"serving"') < args.workers:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"llm-extproc ({transport}) did not start; see {st.log(transport)}")
        time.sleep(0.05)


def render_envoy(ports: dict[str, int], routes: Path) -> str:
    """bench/envoy-bench.yaml with this run's ports and route file filled in."""
    return string.Template((BENCH / "envoy-bench.yaml").read_text()).substitute(
        ADMIN_PORT=ports["admin"],
        FLOOR_PORT=ports["floor"],
        EXTPROC_PORT=ports["extproc"],
        GRPCIO_PORT=ports["extproc_grpcio"],
        NULL_PORT=ports["extproc_null"],
        NULL_GRPC_PORT=ports["grpc_null"],
        NULL_H2CORN_PORT=ports["extproc_null_h2corn"],
        NULL_H2CORN_GRPC_PORT=ports["grpc_null_h2corn"],
        UPSTREAM_PORT=ports["upstream"],
        EXTPROC_GRPC_PORT=ports["grpc_h2corn"],
        GRPCIO_GRPC_PORT=ports["grpc_grpcio"],
        STREAM_PORT=ports["stream"],
        RDS_PATH=str(routes),
    )


def servers_needed(args: argparse.Namespace, flag: bool) -> list[str]:
    """The llm-extproc transports this run needs; drops what cannot run.

    Without --transport (before the h2corn transport lands) the server is
    grpcio only: it is started without the flag and the h2corn cases are
    dropped from args.cases / args.soak_cases."""
    args.transport_flag = flag
    if not flag:
        dropped = sorted(
            {c for c in (*args.cases, *args.soak_cases) if CASES[c].server == "h2corn"}
        )
        if dropped:
            print(f"llm-extproc serve has no --transport (grpcio only): dropping {dropped}")
        args.cases = [c for c in args.cases if CASES[c].server != "h2corn"]
        args.soak_cases = [c for c in args.soak_cases if CASES[c].server != "h2corn"]
    used = {CASES[c].server for c in (*args.cases, *args.soak_cases)}
    if args.profile_case in CASES:
        used.add(CASES[args.profile_case].server)
    return [t for t in ("h2corn", "grpcio") if t in used and (flag or t == "grpcio")]


LISTENERS = (
    "floor",
    "extproc",
    "extproc_grpcio",
    "extproc_null",
    "extproc_null_h2corn",
    "upstream",
)


def start_nulls(args: argparse.Namespace, st: Stack, python: str) -> None:
    """Both null servers, always: the preflight checks both."""
    for name, (transport, _) in NULLS.items():
        port = st.ports[f"grpc_{name}"]
        cmd = [python, str(BENCH / "null_extproc.py"), "--port", str(port)]
        cmd += ["--transport", transport]
        if args.no_uvloop:
            cmd.append("--no-uvloop")
        st.servers[name] = start(cmd, st.tmp / f"{name.replace('_', '-')}.log", cwd=ROOT)
        wait_port(port, st.servers[name])


def start_stack(args: argparse.Namespace, tmp: Path, python: str) -> Stack:
    st = Stack(tmp)
    grpc_ports = ("grpc_h2corn", "grpc_grpcio", *(f"grpc_{n}" for n in NULLS))
    for name in (*LISTENERS, "admin", *grpc_ports, "stream"):
        st.ports[name] = free_port()

    fake_cmd = [python, str(ROOT / "test" / "fake_provider.py"), "--port", str(st.ports["stream"])]
    fake = start([*fake_cmd, "--drip", str(args.drip)], tmp / "fake.log")
    wait_port(st.ports["stream"], fake)

    for transport in servers_needed(args, supports_transport_flag(python)):
        start_server(args, st, python, transport, args.transport_flag)
    start_nulls(args, st, python)

    routes = tmp / "routes.yaml"
    shutil.copy(BENCH / "envoy-bench-routes.yaml", routes)
    (tmp / "envoy.yaml").write_text(render_envoy(st.ports, routes))
    envoy_cmd = [args.envoy, "-c", str(tmp / "envoy.yaml"), "--use-dynamic-base-id"]
    envoy_cmd += ["-l", "warning", "--concurrency", str(args.envoy_concurrency)]
    st.envoy = start(envoy_cmd, tmp / "envoy.log")
    for name in LISTENERS:
        wait_port(st.ports[name], st.envoy)
    return st
