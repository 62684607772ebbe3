"""The cheapest possible ext_proc server on the same stack (grpc.aio + uvloop):
the transport floor that llm-extproc's own cost is measured against.

It answers the same four messages the full pipeline gets (request headers,
request body, response headers with a BUFFERED mode override, response body)
with prebuilt, empty responses: no parsing, no routing, no logging.

    python bench/null_extproc.py --port 50052 [--no-uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2 as pm
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

_RESP = {
    "request_headers": ep.ProcessingResponse(request_headers=ep.HeadersResponse()),
    "request_body": ep.ProcessingResponse(request_body=ep.BodyResponse()),
    "response_headers": ep.ProcessingResponse(
        response_headers=ep.HeadersResponse(),
        mode_override=pm.ProcessingMode(response_body_mode=pm.ProcessingMode.BUFFERED),
    ),
    "response_body": ep.ProcessingResponse(response_body=ep.BodyResponse()),
}


class Null(ep_grpc.ExternalProcessorServicer):
    async def Process(
        self, request_iterator: AsyncIterator[ep.ProcessingRequest], context: Any
    ) -> AsyncIterator[ep.ProcessingResponse]:
        async for req in request_iterator:
            r = _RESP.get(req.WhichOneof("request"))
            if r is not None:
                yield r


class NullReadWrite(ep_grpc.ExternalProcessorServicer):
    """The same, with the explicit read()/write() API instead of an async generator."""

    async def Process(self, request_iterator: Any, context: Any) -> None:  # type: ignore[override]
        read, write, eof = context.read, context.write, grpc.aio.EOF
        while True:
            req = await read()
            if req is eof:
                return
            r = _RESP.get(req.WhichOneof("request"))
            if r is not None:
                await write(r)


async def serve(port: int) -> None:
    server = grpc.aio.server()
    style = os.environ.get("NULL_EXTPROC_STYLE", "generator")
    servicer = NullReadWrite() if style == "readwrite" else Null()
    ep_grpc.add_ExternalProcessorServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f'{{"msg":"serving","port":{port}}}', flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    await server.stop(1)


class NullSync(ep_grpc.ExternalProcessorServicer):
    """The same on the synchronous (thread pool) gRPC server."""

    def Process(self, request_iterator: Any, context: Any) -> Any:  # type: ignore[override]
        for req in request_iterator:
            r = _RESP.get(req.WhichOneof("request"))
            if r is not None:
                yield r


def serve_sync(port: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = grpc.server(ThreadPoolExecutor(max_workers=64))
    ep_grpc.add_ExternalProcessorServicer_to_server(NullSync(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f'{{"msg":"serving","port":{port}}}', flush=True)
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    stop.wait()
    server.stop(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-uvloop", action="store_true")
    a = ap.parse_args()
    if os.environ.get("NULL_EXTPROC_STYLE") == "sync":
        serve_sync(a.port)
        return
    if not a.no_uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(serve(a.port))


if __name__ == "__main__":
    main()
