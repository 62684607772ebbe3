"""The gRPC server: ext_proc + health, graceful shutdown, optional workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from extproc.budget import Budget, BudgetUnavailable, make_budget
from extproc.config.errors import ConfigError
from extproc.config.runtime import RouteProcessor, Runtime
from extproc.consumers.auth import AuthHook, make_authenticator
from extproc.core.events import Reject
from extproc.core.exchange import ExchangeRecord
from extproc.core.request import RequestContext
from extproc.observability.logs import PromptCapture, log_exchange
from extproc.observability.metrics import (
    Metrics,
    MetricsEndpoint,
    multiprocess_dir,
    multiprocess_registry,
)
from extproc.transport.servicer import ExternalProcessor

log = logging.getLogger("extproc.server")

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "0.0.0.0"
    port: int = 50051
    unix_socket: str = ""
    grace_s: float = 10.0
    workers: int = 1
    metrics_port: int = 0  # 0: no metrics endpoint


class Server:
    """One process's gRPC server. `start`, then `wait` or `stop`.

    Wires the exchange's hooks: `authenticate` (consumer keys, then the token
    budget) and `on_done` (the request's log line, metrics, budget charge)."""

    def __init__(
        self,
        runtime: Runtime,
        opts: ServeOptions,
        on_done: Callable[[ExchangeRecord], None] | None = None,
        budget: Budget | None = None,
    ):
        self.runtime = runtime
        self.opts = opts
        self.budget = budget if budget is not None else make_budget(runtime)
        self.metrics = Metrics(runtime)
        self._metrics_endpoint: MetricsEndpoint | None = None
        self.metrics_port = 0
        self._authenticator = make_authenticator(runtime, self.budget)
        self._prompts = (
            PromptCapture(k for k, _ in runtime.consumer_keys)
            if runtime.debug_log_prompts
            else None
        )
        self.authenticate: AuthHook | None = (
            self._authenticate
            if self._authenticator is not None or self._prompts is not None
            else None
        )
        self.on_done = on_done or self._on_done
        self._charges: set[asyncio.Task[None]] = set()
        self._server: grpc.aio.Server | None = None
        self._servicer: ExternalProcessor | None = None
        self._health = (
            health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        )
        self.bound_port = 0

    # -- hooks ---------------------------------------------------------------

    async def _authenticate(self, ctx: RequestContext) -> Reject | None:
        if self._prompts is not None:
            # Before the authenticator: it removes a body key, never a user text.
            self._prompts.capture(ctx)
        return await self._authenticator(ctx) if self._authenticator is not None else None

    def _on_done(self, rec: ExchangeRecord) -> None:
        """Once per exchange: log line, metrics, budget charge. Never raises."""
        try:
            log_exchange(rec, self._prompts.pop(rec) if self._prompts is not None else None)
        except Exception:
            log.exception("request log failed")
        try:
            self.metrics.observe(rec)
        except Exception:
            log.exception("metrics failed")
        self._charge(rec)

    def _charge(self, rec: ExchangeRecord) -> None:
        budget = self.budget
        tokens = rec.usage.total_tokens if rec.usage is not None else 0
        if budget is None or not rec.consumer or tokens <= 0:
            return
        task = asyncio.get_running_loop().create_task(self._charge_async(rec.consumer, tokens))
        self._charges.add(task)
        task.add_done_callback(self._charges.discard)

    async def _charge_async(self, consumer: str, tokens: int) -> None:
        assert self.budget is not None
        try:
            await self.budget.charge(consumer, tokens)
        except BudgetUnavailable as e:
            log.warning(
                "budget charge lost",
                extra={"fields": {"consumer": consumer, "tokens": tokens, "error": str(e)}},
            )

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        options = [
            ("grpc.so_reuseport", 1 if self.opts.workers > 1 else 0),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        server = grpc.aio.server(options=options)
        self._servicer = ExternalProcessor(self.runtime, self.on_done, self.authenticate)
        ep_grpc.add_ExternalProcessorServicer_to_server(self._servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if self.opts.port >= 0 and self.opts.host:
            self.bound_port = server.add_insecure_port(f"{self.opts.host}:{self.opts.port}")
        if self.opts.unix_socket:
            server.add_insecure_port(f"unix:{self.opts.unix_socket}")
        for p in self.runtime.processors:
            await p.start()
        if self.opts.metrics_port > 0 and not multiprocess_dir():
            # With --workers the parent serves every worker's metrics.
            ep = MetricsEndpoint(
                self.metrics.registry, self.opts.host or "0.0.0.0", self.opts.metrics_port
            )
            ep.start()
            self._metrics_endpoint, self.metrics_port = ep, ep.bound_port
        await server.start()
        self._server = server
        for svc in ("", EXT_PROC_SERVICE):
            await _maybe_await(self._health.set(svc, health_pb2.HealthCheckResponse.SERVING))
        log.info(
            "serving",
            extra={
                "fields": {
                    "port": self.bound_port,
                    "unix_socket": self.opts.unix_socket,
                    "metrics_port": self.metrics_port,
                    "pid": os.getpid(),
                }
            },
        )

    async def reload(self, runtime: Runtime) -> None:
        """Serve a new config: streams that start from now on use it; streams in
        flight finish on the old one, whose processors are closed after the
        grace period. Budget counters carry over (same backend)."""
        if self._servicer is None:
            raise RuntimeError("reload before start")
        if (runtime.budget_backend, runtime.redis_url) != (
            self.runtime.budget_backend,
            self.runtime.redis_url,
        ):
            log.warning("budgets backend changed: restart to apply it; keeping the current one")
        for p in runtime.processors:
            await p.start()
        authenticator = make_authenticator(runtime, self.budget)
        self.metrics.use_runtime(runtime)
        old = self.runtime
        # One assignment each, no await in between: a new stream sees either
        # the old pair or the new pair.
        self.runtime = runtime
        self._authenticator = authenticator
        self._servicer.runtime = runtime
        if self.authenticate is None and authenticator is not None:
            self.authenticate = self._authenticate
            self._servicer.authenticate = self._authenticate
        task = asyncio.get_running_loop().create_task(self._close_later(old.processors))
        self._charges.add(task)
        task.add_done_callback(self._charges.discard)
        log.info(
            "config reloaded",
            extra={
                "fields": {
                    "routes": len(runtime.routes.routes),
                    "providers": len(runtime.providers),
                }
            },
        )

    async def _close_later(self, processors: tuple[RouteProcessor, ...]) -> None:
        await asyncio.sleep(self.opts.grace_s)
        current = {id(p) for p in self.runtime.processors}
        for p in processors:
            if id(p) not in current:
                with contextlib.suppress(Exception):
                    await p.aclose()

    async def stop(self) -> None:
        """Stop accepting, let in-flight streams finish within the grace period."""
        if self._server is None:
            return
        for svc in ("", EXT_PROC_SERVICE):
            await _maybe_await(self._health.set(svc, health_pb2.HealthCheckResponse.NOT_SERVING))
        await self._server.stop(self.opts.grace_s)
        for p in self.runtime.processors:
            with contextlib.suppress(Exception):
                await p.aclose()
        if self._charges:
            await asyncio.wait(set(self._charges), timeout=self.opts.grace_s or None)
        if self.budget is not None:
            with contextlib.suppress(Exception):
                await self.budget.aclose()
        if self._metrics_endpoint is not None:
            self._metrics_endpoint.stop()
            self._metrics_endpoint = None
        self._server = None
        log.info("stopped")

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


async def _maybe_await(x: object) -> None:
    if asyncio.iscoroutine(x):
        await x


async def serve_forever(
    runtime: Runtime,
    opts: ServeOptions,
    on_start: Callable[[Server], None] | None = None,
    load: Callable[[], Runtime] | None = None,
    watch: str = "",
    watch_interval_s: float = 2.0,
) -> None:
    """Serve until SIGTERM/SIGINT. With `load`, SIGHUP reloads the config, and
    so does a change of the file `watch` (polled; a Kubernetes ConfigMap
    update swaps a symlink, which inotify on the file would miss)."""
    server = Server(runtime, opts)
    await server.start()
    if on_start is not None:
        on_start(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    if load is not None:
        reloads: asyncio.Queue[str] = asyncio.Queue()
        loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, "SIGHUP")
        tasks.append(loop.create_task(_reloader(server, load, reloads)))
        if watch:
            tasks.append(loop.create_task(_watch(watch, watch_interval_s, reloads)))
    await stop.wait()
    log.info("signal received; draining")
    for t in tasks:
        t.cancel()
    await server.stop()


async def _reloader(
    server: Server, load: Callable[[], Runtime], reloads: asyncio.Queue[str]
) -> None:
    while True:
        why = await reloads.get()
        try:
            runtime = await asyncio.to_thread(load)
        except ConfigError as e:
            server.metrics.reloads.labels("error").inc()
            log.error(
                "config reload failed; still serving the previous config",
                extra={
                    "fields": {"trigger": why, "problems": [f"{p}: {m}" for p, m in e.problems]}
                },
            )
            continue
        await server.reload(runtime)
        server.metrics.reloads.labels("ok").inc()


def _stamp(path: str) -> tuple[float, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size, st.st_ino)


async def _watch(path: str, interval_s: float, reloads: asyncio.Queue[str]) -> None:
    last = _stamp(path)
    while True:
        await asyncio.sleep(interval_s)
        now = _stamp(path)
        if now is not None and now != last:
            last = now
            reloads.put_nowait("file changed")


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    uvloop.install()
    return True


def run_workers(n: int, argv: list[str]) -> int:
    """Start n worker processes sharing the port (SO_REUSEPORT), forward
    SIGTERM/SIGINT to them, and wait. Processes, not forks: gRPC's core must
    not be shared across a fork. A worker that dies on its own takes the
    others down and the parent exits non-zero, so the orchestrator restarts
    the whole pod instead of running with fewer workers than configured."""
    import shutil
    import tempfile

    from extproc.cli import build_parser

    # Metrics: prometheus_client's multiprocess mode. Each worker writes its
    # samples to files in a private directory and serves no endpoint; this
    # parent serves /metrics for all of them on --metrics-port.
    args = build_parser().parse_args([a for a in argv if a != "--worker"])
    env = dict(os.environ)
    endpoint: MetricsEndpoint | None = None
    mp_dir = ""
    if args.metrics_port > 0:
        mp_dir = tempfile.mkdtemp(prefix="llm-extproc-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = mp_dir
        endpoint = MetricsEndpoint(
            multiprocess_registry(mp_dir), args.host or "0.0.0.0", args.metrics_port
        )
        endpoint.start()
    try:
        return _run_workers(n, argv, env)
    finally:
        if endpoint is not None:
            endpoint.stop()
        if mp_dir:
            shutil.rmtree(mp_dir, ignore_errors=True)


def _run_workers(n: int, argv: list[str], env: dict[str, str]) -> int:
    import subprocess
    import time

    procs = [
        subprocess.Popen([sys.executable, "-m", "extproc.cli", *argv], env=env) for _ in range(n)
    ]
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    def forward_reload(signum: int, _frame: object) -> None:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward_reload)
    while not stopping and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    if not stopping:
        log.error("a worker exited unexpectedly; stopping the others")
        forward(signal.SIGTERM, None)
    status = 0
    for p in procs:
        code = p.wait()
        # A worker still starting up dies of the signal we forwarded: a clean stop.
        if code in (-signal.SIGTERM, -signal.SIGINT):
            code = 0
        status = status or code
    return status if stopping else (status or 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the llm-extproc command")
