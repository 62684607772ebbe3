"""The cheapest possible ext_proc server on each transport stack: the
transport floor that llm-extproc's own cost is measured against.

It answers the same four messages the full pipeline gets (request headers,
request body, response headers with a BUFFERED mode override, response body)
with prebuilt, empty responses: no parsing beyond the ProcessingRequest
itself, no routing, no logging.

  --transport grpcio  grpc.aio + uvloop (case grpc-null): the old transport's floor
  --transport h2corn  h2corn with llm-extproc's own h2corn config and ASGI gRPC
                      framing (extproc.transport: _config, asgi_grpc.GrpcStream)
                      but none of our exchange or codec code (case h2corn-null)

    python bench/null_extproc.py --port 50052 [--transport h2corn] [--no-uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2 as pm
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

_RESP = {
    "request_headers": ep.ProcessingResponse(request_headers=ep.HeadersResponse()),
    "request_body": ep.ProcessingResponse(request_body=ep.BodyResponse()),
    "response_headers": ep.ProcessingResponse(
        response_headers=ep.HeadersResponse(),
        mode_override=pm.ProcessingMode(response_body_mode=pm.ProcessingMode.BUFFERED),
    ),
    "response_body": ep.ProcessingResponse(response_body=ep.BodyResponse()),
}
_RESP_BYTES = {k: v.SerializeToString() for k, v in _RESP.items()}
PROCESS = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()


# -- h2corn -------------------------------------------------------------------


class NullApp:
    """ASGI: Process answered from _RESP_BYTES through the same GrpcStream
    framing as extproc.transport.h2corn.GrpcApp; any other method UNIMPLEMENTED."""

    def __init__(self, max_message_bytes: int) -> None:
        from extproc.transport import asgi_grpc

        self.grpc = asgi_grpc
        self.max_message_bytes = max_message_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        stream = self.grpc.GrpcStream(receive, send, self.max_message_bytes)
        if scope["path"] != PROCESS:
            await stream.finish(self.grpc.UNIMPLEMENTED, f"unknown method {scope['path']}")
            return
        parse, answers = ep.ProcessingRequest.FromString, _RESP_BYTES
        try:
            while (msg := await stream.read()) is not None:
                r = answers.get(parse(msg).WhichOneof("request") or "")
                if r is not None:
                    await stream.write(r)
            await stream.finish()
        except self.grpc.Disconnected:
            pass


async def serve_h2corn(port: int) -> None:
    import h2corn

    # This checkout's extproc, whichever Python runs the script.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from extproc.transport.base import Listen
    from extproc.transport.h2corn import _config

    listen = Listen(host="127.0.0.1", port=port)
    server = h2corn.Server(NullApp(listen.max_message_bytes), _config(listen))
    task = asyncio.get_running_loop().create_task(server.serve())
    await server.wait_started()
    print(f'{{"msg":"serving","port":{port},"transport":"h2corn"}}', flush=True)
    await _until_signalled()
    server.shutdown()
    await task


# -- grpcio (imported on use: the h2corn process never loads grpc's core) ------


def _grpcio_servicer(style: str) -> Any:
    from collections.abc import AsyncIterator

    import grpc
    from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

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

    class NullSync(ep_grpc.ExternalProcessorServicer):
        """The same on the synchronous (thread pool) gRPC server."""

        def Process(self, request_iterator: Any, context: Any) -> Any:  # type: ignore[override]
            for req in request_iterator:
                r = _RESP.get(req.WhichOneof("request"))
                if r is not None:
                    yield r

    return {"readwrite": NullReadWrite, "sync": NullSync}.get(style, Null)()


async def serve(port: int) -> None:
    import grpc
    from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

    server = grpc.aio.server()
    style = os.environ.get("NULL_EXTPROC_STYLE", "generator")
    ep_grpc.add_ExternalProcessorServicer_to_server(_grpcio_servicer(style), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f'{{"msg":"serving","port":{port}}}', flush=True)
    await _until_signalled()
    await server.stop(1)


def serve_sync(port: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc

    server = grpc.server(ThreadPoolExecutor(max_workers=64))
    ep_grpc.add_ExternalProcessorServicer_to_server(_grpcio_servicer("sync"), server)
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
    ap.add_argument("--transport", choices=("grpcio", "h2corn"), default="grpcio")
    ap.add_argument("--no-uvloop", action="store_true")
    a = ap.parse_args()
    if a.transport == "grpcio" and os.environ.get("NULL_EXTPROC_STYLE") == "sync":
        serve_sync(a.port)
        return
    if not a.no_uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(serve_h2corn(a.port) if a.transport == "h2corn" else serve(a.port))


if __name__ == "__main__":
    main()
