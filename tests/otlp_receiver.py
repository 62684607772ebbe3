"""An OTLP/gRPC trace receiver for e2e tests, and Envoy's OpenTelemetry tracer
pointed at it. The receiver keeps every span it is sent (Envoy's and ours)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as ts_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Span:
    """One received span, flattened."""

    def __init__(self, service: str, s: Any) -> None:
        self.service = service
        self.name: str = s.name
        self.trace_id = s.trace_id.hex()
        self.span_id = s.span_id.hex()
        self.parent_id = s.parent_span_id.hex()
        self.kind: int = s.kind
        self.attributes = {a.key: value(a.value) for a in s.attributes}
        self.events = [(e.name, {a.key: value(a.value) for a in e.attributes}) for e in s.events]
        self.status_code: int = s.status.code
        self.start_ns: int = s.start_time_unix_nano
        self.end_ns: int = s.end_time_unix_nano

    def __repr__(self) -> str:
        return (
            f"Span({self.service}: {self.name!r} {self.trace_id}/{self.span_id}<-{self.parent_id})"
        )


class _Service(ts_grpc.TraceServiceServicer):
    def __init__(self, sink: OtlpReceiver) -> None:
        self.sink = sink

    def Export(self, request: ts.ExportTraceServiceRequest, context: Any) -> Any:
        for rs in request.resource_spans:
            service = next(
                (value(a.value) for a in rs.resource.attributes if a.key == "service.name"), ""
            )
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.sink.add(Span(service, s))
        return ts.ExportTraceServiceResponse()


class OtlpReceiver:
    """OTLP/gRPC on 127.0.0.1:`port`; `with` starts and stops it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        ts_grpc.add_TraceServiceServicer_to_server(_Service(self), self._server)
        self._server.add_insecure_port(f"127.0.0.1:{port}")

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(1).wait(5)

    def add(self, span: Span) -> None:
        with self._lock:
            self.spans.append(span)

    def wait_for(self, pred: Callable[[list[Span]], bool], timeout: float = 15.0) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if pred(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)


def with_envoy_tracing(envoy_text: str, otlp_port: int) -> str:
    """Every HTTP connection manager traces every request with Envoy's
    OpenTelemetry tracer, exporting over OTLP/gRPC to 127.0.0.1:`otlp_port`."""
    cfg = yaml.safe_load(envoy_text)
    tracing = {
        "random_sampling": {"value": 100},
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {"envoy_grpc": {"cluster_name": "otlp"}, "timeout": "2s"},
                "service_name": "envoy",
            },
        },
    }
    for listener in cfg["static_resources"]["listeners"]:
        for chain in listener.get("filter_chains", ()):
            for f in chain.get("filters", ()):
                if f.get("name") == "envoy.filters.network.http_connection_manager":
                    f["typed_config"]["tracing"] = tracing
    cfg["static_resources"]["clusters"].append(
        {
            "name": "otlp",
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            "load_assignment": {
                "cluster_name": "otlp",
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {
                                            "address": "127.0.0.1",
                                            "port_value": otlp_port,
                                        }
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
        }
    )
    # Envoy flushes spans every 5 s by default: every 100 ms here.
    layers = cfg.setdefault("layered_runtime", {}).setdefault("layers", [])
    static = next((x for x in layers if "static_layer" in x), None)
    if static is None:
        static = {"name": "static", "static_layer": {}}
        layers.insert(0, static)
    static["static_layer"]["tracing.opentelemetry.flush_interval_ms"] = 100
    static["static_layer"]["tracing.opentelemetry.min_flush_spans"] = 1
    return yaml.safe_dump(cfg, sort_keys=False)
