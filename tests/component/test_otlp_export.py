"""Spans leave the process over both OTLP transports: gRPC to the test's
receiver and HTTP (protobuf) to a local HTTP endpoint, through the SDK's
BatchSpanProcessor as the server uses it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts

from extproc.config.runtime import TracingConfig
from extproc.core.record import ExchangeRecord
from extproc.observability.tracing import Tracing
from extproc.usage import Usage
from harness import free_port
from otlp_receiver import OtlpReceiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def record() -> ExchangeRecord:
    return ExchangeRecord(
        request_id="r-export",
        route="chat",
        provider="openai",
        provider_type="openai",
        endpoint="chat",
        model_requested="gpt-4o",
        model_served="gpt-4o-2024-08-06",
        status=200,
        usage=Usage.of(3, 4),
        started=1.0,
        ended=1.5,
        traceparent=f"00-{TRACE}-00f067aa0ba902b7-01",
        trace_id=TRACE,
        span_id="2222222222222222",
        trace_flags="01",
    )


def test_grpc_export() -> None:
    with OtlpReceiver(free_port()) as rx:
        t = Tracing(TracingConfig("grpc", f"127.0.0.1:{rx.port}", "gw-test"))
        t.export(record())
        t.shutdown()  # flushes the batch
        spans = rx.wait_for(lambda s: bool(s), timeout=10)
    (span,) = spans
    assert span.service == "gw-test" and span.trace_id == TRACE
    assert span.span_id == "2222222222222222" and span.parent_id == "00f067aa0ba902b7"
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.usage.output_tokens"] == 4


class _Sink(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length", "0"))
        _Sink.got.append((self.path, self.rfile.read(n)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(ts.ExportTraceServiceResponse().SerializeToString())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_sink() -> Iterator[int]:
    _Sink.got = []
    server = HTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_protobuf_export(http_sink: int) -> None:
    url = f"http://127.0.0.1:{http_sink}/v1/traces"
    t = Tracing(TracingConfig("http/protobuf", url, "gw-http"))
    t.export(record())
    t.shutdown()
    assert _Sink.got, "nothing exported"
    path, body = _Sink.got[0]
    assert path == "/v1/traces"
    req = ts.ExportTraceServiceRequest.FromString(body)
    spans = [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(spans) == 1 and spans[0].trace_id.hex() == TRACE
    assert spans[0].name == "chat gpt-4o"
