"""The grpc.aio transport (`--transport grpcio`): ext_proc and health on grpcio."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from extproc.core.attempt import stream_origin
from extproc.core.exchange import PhaseError
from extproc.transport.base import HEALTH_SERVICES, ExchangeFactory, Listen, ListenError
from extproc.transport.codec import UnexpectedMessage, decode, encode, no_event_answer

log = logging.getLogger("extproc.transport")


class ExternalProcessor(ep_grpc.ExternalProcessorServicer):
    def __init__(self, new_exchange: ExchangeFactory) -> None:
        self.new_exchange = new_exchange

    async def Process(
        self,
        request_iterator: AsyncIterator[ep.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ep.ProcessingResponse]:
        ex = self.new_exchange(*stream_origin(context.invocation_metadata() or ()))
        try:
            async for req in request_iterator:
                kind, ev = decode(req)
                if ev is not None:
                    yield encode(kind, await ex.handle(ev))
                else:
                    yield no_event_answer(kind)
        except (PhaseError, UnexpectedMessage) as e:
            log.error("ext_proc protocol error: %s", e)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        finally:
            ex.close()


def _bind(server: grpc.aio.Server, address: str) -> int:
    try:
        return server.add_insecure_port(address)
    except RuntimeError as e:  # grpc says no more than "Failed to bind"
        raise ListenError(f"cannot listen on {address}") from e


class GrpcioTransport:
    def __init__(self, new_exchange: ExchangeFactory, listen: Listen) -> None:
        self.listen = listen
        self.bound_port = 0
        self._servicer = ExternalProcessor(new_exchange)
        self._health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        opts = self.listen
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 1 if opts.reuse_port else 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.max_receive_message_length", opts.max_message_bytes),
            ]
        )
        ep_grpc.add_ExternalProcessorServicer_to_server(self._servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if opts.tcp:
            self.bound_port = _bind(server, f"{opts.host}:{opts.port}")
        if opts.unix_socket:
            _bind(server, f"unix:{opts.unix_socket}")
        await server.start()
        self._server = server
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for svc in HEALTH_SERVICES:
            await self._health.set(svc, status)

    async def stop(self) -> None:
        if self._server is None:
            return
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.stop(self.listen.grace_s)

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
