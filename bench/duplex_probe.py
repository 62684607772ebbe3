"""Probe how Envoy's ext_proc filter sends a request body before our headers
answer, and whether a response mode_override still applies (issue #25's
"two round trips" design). Usage: python bench/duplex_probe.py ENVOY_BINARY
with one of these in the environment:

  (none)                   request_body_mode FULL_DUPLEX_STREAMED
  PLAIN=1                  BUFFERED, headers answered at once (today's design)
  NOWAIT=1                 BUFFERED + send_body_without_waiting_for_header_response
  NOWAIT=1 STREAMWAIT=1    STREAMED + send_body_without_waiting_for_header_response

It prints the messages the processor received and what the upstream got.
Findings (Envoy 1.36.4 and 1.40.0) are in docs/performance.md."""

import asyncio
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import grpc
import httpx
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import (
    external_processor_pb2 as ep,
)
from envoy.service.ext_proc.v3 import (
    external_processor_pb2_grpc as ep_grpc,
)


def free():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


import tempfile  # noqa: E402

ENVOY_YAML = tempfile.mktemp(suffix="-probe-envoy.yaml")
LOG = []


class Up(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        if self.headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(n) if n else b""
        LOG.append(("upstream-headers", dict(self.headers)))
        LOG.append(("upstream", self.headers.get("host"), self.path, body))
        out = b'{"ok":true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass

    do_GET = do_POST


class Proc(ep_grpc.ExternalProcessorServicer):
    async def Process(self, it, ctx):
        body = b""
        async for req in it:
            kind = req.WhichOneof("request")
            if req.HasField("protocol_config"):
                LOG.append(("protocol_config", str(req.protocol_config).replace("\n", " ")))
            LOG.append(
                (
                    "msg",
                    kind,
                    getattr(req, kind).end_of_stream
                    if kind
                    in ("request_headers", "request_body", "response_headers", "response_body")
                    else None,
                    time.monotonic(),
                )
            )
            if kind == "request_headers":
                import os

                if req.request_headers.end_of_stream or os.environ.get("PLAIN"):
                    yield ep.ProcessingResponse(request_headers=ep.HeadersResponse())
                continue  # defer: answer with the body
            if kind == "request_body":
                body += req.request_body.body
                nparts = locals().get("nparts", 0) + 1
                if not req.request_body.end_of_stream:
                    continue
                if os.environ.get("PLAIN"):
                    r2 = ep.ProcessingResponse()
                    r2.request_body.response.body_mutation.body = body + b"-checked"
                    yield r2
                    continue
                r = ep.ProcessingResponse()
                c = r.request_headers.response
                c.header_mutation.set_headers.add(
                    header=base_pb2.HeaderValue(key=":path", raw_value=b"/rewritten")
                )
                c.header_mutation.set_headers.add(
                    header=base_pb2.HeaderValue(
                        key="content-length", raw_value=str(len(body) + 8).encode()
                    )
                )
                c.clear_route_cache = True
                yield r
                r2 = ep.ProcessingResponse()
                import os

                if os.environ.get("STREAMWAIT"):
                    for _ in range(nparts - 1):
                        e = ep.ProcessingResponse()
                        e.request_body.response.body_mutation.clear_body = True
                        yield e
                    r2.request_body.response.body_mutation.body = body + b"-checked"
                elif os.environ.get("NOWAIT"):
                    r2.request_body.response.body_mutation.body = body + b"-checked"
                else:
                    sb = r2.request_body.response.body_mutation.streamed_response
                    sb.body = body + b"-checked"
                    sb.end_of_stream = True
                yield r2
            elif kind == "request_trailers":
                yield ep.ProcessingResponse(request_trailers=ep.TrailersResponse())
            elif kind == "response_headers":
                r = ep.ProcessingResponse(response_headers=ep.HeadersResponse())
                import os

                from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2 as pm

                r.mode_override.request_header_mode = pm.ProcessingMode.SEND
                r.mode_override.response_header_mode = pm.ProcessingMode.SEND
                r.mode_override.response_body_mode = pm.ProcessingMode.BUFFERED
                if os.environ.get("KEEP_REQ"):
                    r.mode_override.request_body_mode = pm.ProcessingMode.FULL_DUPLEX_STREAMED
                    r.mode_override.request_trailer_mode = pm.ProcessingMode.SEND
                yield r
            elif kind == "response_body":
                yield ep.ProcessingResponse(response_body=ep.BodyResponse())


ENVOY = """
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: LISTEN}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: p
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: up}
          http_filters:
          - name: envoy.filters.http.ext_proc
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
              grpc_service: {envoy_grpc: {cluster_name: proc}}
              failure_mode_allow: false
              processing_mode: {request_header_mode: SEND, response_header_mode: SEND, request_body_mode: FULL_DUPLEX_STREAMED, response_body_mode: NONE, request_trailer_mode: SEND, response_trailer_mode: SKIP}
              mutation_rules: {allow_all_routing: true}
              allow_mode_override: true
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: up
    load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: UPSTREAMPORT}}}}]}]}
  - name: proc
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment: {cluster_name: proc, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: PROC}}}}]}]}
"""


async def main(envoy_bin):
    up, proc, listen = free(), free(), free()
    srv = HTTPServer(("127.0.0.1", up), Up)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    server = grpc.aio.server()
    ep_grpc.add_ExternalProcessorServicer_to_server(Proc(), server)
    server.add_insecure_port(f"127.0.0.1:{proc}")
    await server.start()
    import os

    env_text = ENVOY
    if os.environ.get("PLAIN"):
        env_text = env_text.replace(
            "request_body_mode: FULL_DUPLEX_STREAMED", "request_body_mode: BUFFERED"
        )
    if os.environ.get("NOWAIT"):
        env_text = env_text.replace(
            "request_body_mode: FULL_DUPLEX_STREAMED",
            "request_body_mode: " + ("STREAMED" if os.environ.get("STREAMWAIT") else "BUFFERED"),
        ).replace(
            "allow_mode_override: true",
            "allow_mode_override: true\n              send_body_without_waiting_for_header_response: true",
        )
    with open(ENVOY_YAML, "w") as f:
        f.write(
            env_text.replace("LISTEN", str(listen))
            .replace("UPSTREAMPORT", str(up))
            .replace("PROC", str(proc))
        )
    e = subprocess.Popen(
        [envoy_bin, "-c", ENVOY_YAML, "--base-id", str(listen), "-l", "warning"],
        stderr=open(ENVOY_YAML + ".log", "w"),  # noqa: SIM115
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", listen), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        async with httpx.AsyncClient() as c:
            r = await c.post(
                f"http://127.0.0.1:{listen}/orig",
                content=b'{"a":1}' * 3,
                headers={"content-type": "application/json"},
            )
            print("client got", r.status_code, r.text)
            r = await c.get(f"http://127.0.0.1:{listen}/nobody")
            print("client got (no body)", r.status_code)
        for entry in LOG:
            print(entry)
    finally:
        e.terminate()
        e.wait()
        await server.stop(0)
        srv.shutdown()


asyncio.run(main(sys.argv[1]))
