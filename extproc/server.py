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

from extproc.config.runtime import Runtime
from extproc.core.exchange import ExchangeRecord
from extproc.observability.logs import log_exchange
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
    """One process's gRPC server. `start`, then `wait` or `stop`."""

    def __init__(
        self,
        runtime: Runtime,
        opts: ServeOptions,
        on_done: Callable[[ExchangeRecord], None] | None = None,
    ):
        self.runtime = runtime
        self.opts = opts
        self.on_done = on_done or log_exchange
        self._server: grpc.aio.Server | None = None
        self._health = (
            health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        )
        self.bound_port = 0

    async def start(self) -> None:
        options = [
            ("grpc.so_reuseport", 1 if self.opts.workers > 1 else 0),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        server = grpc.aio.server(options=options)
        ep_grpc.add_ExternalProcessorServicer_to_server(
            ExternalProcessor(self.runtime, self.on_done), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if self.opts.port >= 0 and self.opts.host:
            self.bound_port = server.add_insecure_port(f"{self.opts.host}:{self.opts.port}")
        if self.opts.unix_socket:
            server.add_insecure_port(f"unix:{self.opts.unix_socket}")
        for p in self.runtime.processors:
            await p.start()
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
                    "pid": os.getpid(),
                }
            },
        )

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
        self._server = None
        log.info("stopped")

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


async def _maybe_await(x: object) -> None:
    if asyncio.iscoroutine(x):
        await x


async def serve_forever(
    runtime: Runtime, opts: ServeOptions, on_start: Callable[[Server], None] | None = None
) -> None:
    server = Server(runtime, opts)
    await server.start()
    if on_start is not None:
        on_start(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received; draining")
    await server.stop()


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
    not be shared across a fork."""
    import subprocess

    procs = [subprocess.Popen([sys.executable, "-m", "extproc.cli", *argv]) for _ in range(n)]

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for p in procs:
        code = p.wait()
        status = status or code
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the llm-extproc command")
