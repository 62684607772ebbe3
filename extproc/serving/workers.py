"""Several serving processes on one port (`--workers N`), supervised here."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from extproc.observability.metrics import MetricsEndpoint, multiprocess_registry

log = logging.getLogger("extproc.server")


def run_workers(n: int, worker_argv: list[str], metrics_host: str, metrics_port: int) -> int:
    """Start n worker processes (`llm-extproc <worker_argv>`) sharing the port
    (SO_REUSEPORT, on either transport), forward SIGTERM/SIGINT/SIGHUP to
    them, and wait. Processes, not forks: gRPC's core must not be shared
    across a fork. A worker that dies on its own takes the others down and
    the parent exits non-zero, so the orchestrator restarts the whole pod
    instead of running with fewer workers than configured.

    Metrics: prometheus_client's multiprocess mode. Each worker writes its
    samples to files in a private directory and serves no endpoint; this
    parent serves /metrics for all of them on `metrics_port` (0: none)."""
    env = dict(os.environ)
    endpoint: MetricsEndpoint | None = None
    mp_dir = ""
    if metrics_port > 0:
        mp_dir = tempfile.mkdtemp(prefix="llm-extproc-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = mp_dir
        endpoint = MetricsEndpoint(
            multiprocess_registry(mp_dir), metrics_host or "127.0.0.1", metrics_port
        )
        endpoint.start()
    try:
        return _supervise(n, worker_argv, env)
    finally:
        if endpoint is not None:
            endpoint.stop()
        if mp_dir:
            shutil.rmtree(mp_dir, ignore_errors=True)


def _supervise(n: int, argv: list[str], env: dict[str, str]) -> int:
    procs = [
        subprocess.Popen([sys.executable, "-m", "extproc.cli", *argv], env=env) for _ in range(n)
    ]
    stopping = False

    def send_all(signum: int) -> None:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    def forward_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        send_all(signum)

    signal.signal(signal.SIGTERM, forward_stop)
    signal.signal(signal.SIGINT, forward_stop)
    signal.signal(signal.SIGHUP, lambda signum, _frame: send_all(signum))
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    if not stopping:
        log.error("a worker exited unexpectedly; stopping the others")
        forward_stop(signal.SIGTERM, None)
    status = 0
    for p in procs:
        code = p.wait()
        # A worker still starting up dies of the signal we forwarded: a clean stop.
        if code in (-signal.SIGTERM, -signal.SIGINT):
            code = 0
        status = status or code
    return status if stopping else (status or 1)
