"""The h2corn transport (default): a hand-written gRPC handler on h2corn.

h2corn is an HTTP/2 ASGI server whose I/O runs in Rust; the ASGI app below
speaks just enough gRPC for ext_proc's bidirectional stream and the health
service's Check. It costs a fraction of grpc.aio per stream (see
docs/performance.md). grpc is not imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import h2corn
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2

from extproc.core.attempt import stream_origin
from extproc.core.exchange import PhaseError
from extproc.transport.asgi_grpc import (
    FAILED_PRECONDITION,
    INTERNAL,
    NOT_FOUND,
    UNAVAILABLE,
    UNIMPLEMENTED,
    Disconnected,
    GrpcError,
    GrpcStream,
    Message,
    Receive,
    Send,
)
from extproc.transport.base import HEALTH_SERVICES, ExchangeFactory, Listen, ListenError
from extproc.transport.codec import (
    ProcessingRequest,
    UnexpectedMessage,
    decode,
    encode_bytes,
    no_event_answer,
)

log = logging.getLogger("extproc.transport")

PROCESS = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

_SERVING = health_pb2.HealthCheckResponse(
    status=health_pb2.HealthCheckResponse.SERVING
).SerializeToString()
_NOT_SERVING = health_pb2.HealthCheckResponse(
    status=health_pb2.HealthCheckResponse.NOT_SERVING
).SerializeToString()


# A draining server's answer to a new Process stream: HTTP 503 with the gRPC
# status in the headers (trailers-only). gRPC clients read it as UNAVAILABLE;
# Envoy's retry policy (retry_on 5xx) then sends the stream to another
# replica, which a 200 with grpc-status 14 would not make it do.
_REFUSED_START: Message = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/grpc"),
        (b"grpc-status", str(UNAVAILABLE).encode()),
        (b"grpc-message", b"the server is shutting down"),
    ],
    "trailers": False,
}
_REFUSED_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


async def _refuse(send: Send) -> None:
    with contextlib.suppress(OSError):  # the client may be gone already
        await send(_REFUSED_START)
        await send(_REFUSED_END)


class GrpcApp:
    """The ASGI application: ext_proc's Process, health Check, UNIMPLEMENTED
    for any other method (also health Watch: clients then treat the server
    as healthy, as the health protocol says)."""

    def __init__(self, new_exchange: ExchangeFactory, max_message_bytes: int) -> None:
        self.new_exchange = new_exchange
        self.max_message_bytes = max_message_bytes
        # False from the start of a drain: health says NOT_SERVING and new
        # Process streams are refused with UNAVAILABLE at once, so Envoy's
        # health check and retry move them to another replica.
        self.serving = True
        self.open_streams = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Until no Process stream is open (True) or `timeout` passed (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; nothing else is configured
        stream = GrpcStream(receive, send, self.max_message_bytes)
        path = scope["path"]
        if path == PROCESS:
            if not self.serving:
                await _refuse(send)
                return
            self.open_streams += 1
            self._idle.clear()
            try:
                await self._process(stream, *stream_origin(scope.get("headers") or ()))
            finally:
                self.open_streams -= 1
                if not self.open_streams:
                    self._idle.set()
        elif path == HEALTH_CHECK:
            await self._check(stream)
        else:
            await stream.finish(UNIMPLEMENTED, f"unknown method {path}")

    async def _process(self, stream: GrpcStream, provider: str, traceparent: str) -> None:
        ex = self.new_exchange(provider, traceparent)
        try:
            while (msg := await stream.read()) is not None:
                kind, ev = decode(ProcessingRequest.FromString(msg))
                if ev is not None:
                    await stream.write(encode_bytes(kind, await ex.handle(ev)))
                else:
                    await stream.write(no_event_answer(kind).SerializeToString())
            await stream.finish()
        except (PhaseError, UnexpectedMessage) as e:
            log.error("ext_proc protocol error: %s", e)
            await stream.finish(FAILED_PRECONDITION, str(e))
        except Disconnected:
            pass  # Envoy reset the stream: nothing to answer
        except GrpcError as e:
            log.warning("ext_proc stream refused: %s", e.message)
            await stream.finish(e.code, e.message)
        except DecodeError:
            log.warning("ext_proc stream refused: undecodable ProcessingRequest")
            await stream.finish(INTERNAL, "could not decode the ProcessingRequest")
        except Exception:
            # Type and message only reach the log (JsonFormatter), no traceback locals.
            log.exception("ext_proc stream failed")
            await stream.finish(INTERNAL, "internal error")
        finally:
            # Also on cancellation (h2corn cancels the handler on a stream reset).
            ex.close()

    async def _check(self, stream: GrpcStream) -> None:
        try:
            msg = await stream.read()
            service = health_pb2.HealthCheckRequest.FromString(msg or b"").service
        except Disconnected:
            return
        except GrpcError as e:
            await stream.finish(e.code, e.message)
            return
        except DecodeError:
            await stream.finish(INTERNAL, "could not decode the HealthCheckRequest")
            return
        if service not in HEALTH_SERVICES:
            await stream.finish(NOT_FOUND, "unknown service")
            return
        await stream.write(_SERVING if self.serving else _NOT_SERVING)
        await stream.finish()


_H2CORN_DRAIN_S = 1.0


def _config(listen: Listen) -> h2corn.Config:
    bind = []
    if listen.tcp:
        bind.append(
            f"[{listen.host}]:{listen.port}"
            if ":" in listen.host
            else f"{listen.host}:{listen.port}"
        )
    if listen.unix_socket:
        bind.append(f"unix:{listen.unix_socket}")
    return h2corn.Config(
        bind=tuple(bind),
        grpc=True,  # without it h2corn answers application/grpc with 415
        http1=False,  # gRPC is HTTP/2 only (prior knowledge, as Envoy connects)
        lifespan="off",
        access_log=False,  # our request log line has the facts
        log_format="json",  # its few lines match ours
        date_header=False,
        # One Tokio thread: measured faster than two on 2 cores shared with Envoy.
        runtime_threads=1,
        reuse_port=listen.reuse_port,
        # The grace period is spent in H2cornTransport.stop before h2corn's
        # own drain, which then has only stragglers (a health check) left.
        timeout_graceful_shutdown=min(listen.grace_s, _H2CORN_DRAIN_S),
        # grpc.aio closes no idle connection; Envoy keeps one open to us.
        timeout_keep_alive=0,
        max_concurrent_streams=1024,
    )


class H2cornTransport:
    def __init__(self, new_exchange: ExchangeFactory, listen: Listen) -> None:
        if not listen.tcp and not listen.unix_socket:
            raise ValueError("nothing to listen on: give a TCP host and port or a unix socket")
        self.listen = listen
        self.bound_port = 0
        self.app = GrpcApp(new_exchange, listen.max_message_bytes)
        self._server: h2corn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        server = h2corn.Server(self.app, _config(self.listen))
        task = asyncio.get_running_loop().create_task(server.serve())
        try:
            await server.wait_started()
        except OSError as e:  # h2corn names the address and the reason
            with contextlib.suppress(Exception):
                await task
            raise ListenError(str(e)) from e
        self._server, self._task = server, task
        if self.listen.tcp:
            self.bound_port = int(server.addresses[0].rsplit(":", 1)[1])

    async def stop(self) -> None:
        """Drain: refuse new streams and answer NOT_SERVING at once while the
        open streams finish (up to the grace period), then stop h2corn. Its
        own shutdown stops taking new streams without answering them, which
        would hold Envoy's requests (and health checks) until the end."""
        if self._server is None or self._task is None:
            return
        self.app.serving = False
        if not await self.app.drained(self.listen.grace_s):
            log.warning(
                "grace period over with streams still open; cutting them",
                extra={"fields": {"open_streams": self.app.open_streams}},
            )
        self._server.shutdown()
        await self._task

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)
