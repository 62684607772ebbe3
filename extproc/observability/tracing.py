"""OpenTelemetry traces: one span per LLM request, built from its ExchangeRecord.

The span is made when the exchange is done (`on_done`), from the record's
timestamps: nothing runs on the request path but the record's bookkeeping
(core/exchange.py), and export is batched in the SDK's BatchSpanProcessor
thread. Its ids were chosen during the request (core/tracecontext.py) so the
`traceparent` we sent toward the provider names this very span; `_Ids` hands
them to the SDK when the span starts.

Attributes follow the OpenTelemetry GenAI semantic conventions
(gen_ai.operation.name, gen_ai.provider.name, gen_ai.request.model, ...).
They come only from record fields, which never hold a prompt, a key or a
header value: no secret can reach an attribute.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from extproc.config.runtime import ProviderRuntime, TracingConfig, split_host
from extproc.core.record import ExchangeRecord
from extproc.core.tracecontext import our_ids
from extproc.observability.metrics import OPERATION
from extproc.translators.registry import GENAI_PROVIDER_NAMES

log = logging.getLogger("extproc.tracing")


_PROPAGATOR = TraceContextTextMapPropagator()


class _Ids(IdGenerator):
    """Random ids, except the ids a record chose for its request's span."""

    def __init__(self) -> None:
        self._local = threading.local()

    def use(self, trace_id: int, span_id: int) -> None:
        self._local.ids = (trace_id, span_id)

    def generate_span_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        if ids is not None and ids[1]:
            self._local.ids = (ids[0], 0)
            return int(ids[1])
        return random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        if ids is not None and ids[0]:
            self._local.ids = (0, ids[1])
            return int(ids[0])
        return random.getrandbits(128) or 1

    def clear(self) -> None:
        self._local.ids = None


def make_exporter(cfg: TracingConfig) -> SpanExporter:
    """The OTLP exporter the config names; empty fields: the OTEL_* variables."""
    endpoint = cfg.endpoint or None
    if cfg.protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    insecure = cfg.insecure
    if insecure is None and endpoint is not None:
        insecure = not endpoint.startswith("https://")
    return GrpcExporter(endpoint=endpoint, insecure=insecure)


class Tracing:
    """The process's tracer: `export(record)` once per finished exchange."""

    def __init__(
        self,
        cfg: TracingConfig,
        exporter: SpanExporter | None = None,
        processor: SpanProcessor | None = None,
    ) -> None:
        self.config = cfg
        self._ids = _Ids()
        # Resource.create reads OTEL_RESOURCE_ATTRIBUTES; the sampler comes from
        # OTEL_TRACES_SAMPLER (default: parent-based, always on).
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": cfg.service_name}),
            id_generator=self._ids,
        )
        if processor is None:
            processor = BatchSpanProcessor(exporter if exporter is not None else make_exporter(cfg))
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("llm-extproc")

    def shutdown(self) -> None:
        """Export what is pending (bounded by the SDK's export timeout), then stop."""
        self.provider.shutdown()

    def export(
        self, rec: ExchangeRecord, providers: Mapping[str, ProviderRuntime] | None = None
    ) -> None:
        """The request's span (with its model calls as child spans). Never raises."""
        if not rec.span_id:
            # Refused before a leg was built (a key, a check, the guard): no id
            # went toward a provider, the span gets its ids now.
            rec.trace_id, rec.span_id, rec.trace_flags = our_ids(rec.traceparent)
        try:
            self._export(rec, providers or {})
        except Exception:
            log.exception("span export failed")
        finally:
            self._ids.clear()

    def _export(self, rec: ExchangeRecord, providers: Mapping[str, ProviderRuntime]) -> None:
        # Record times are time.monotonic(); spans want epoch nanoseconds.
        offset = time.time() - time.monotonic()

        def ns(t: float) -> int:
            return int((t + offset) * 1e9)

        parent = _PROPAGATOR.extract({"traceparent": rec.traceparent}) if rec.traceparent else None
        self._ids.use(int(rec.trace_id, 16), int(rec.span_id, 16))
        op = OPERATION.get(rec.endpoint, rec.endpoint or "other")
        model = rec.model_requested or rec.model_mapped
        name = f"{op} {model}" if model else op
        if rec.attempt:
            name += f" (attempt {rec.attempt})"
        started = rec.started or rec.ended
        span = self.tracer.start_span(
            name,
            context=parent if parent is not None else Context(),
            kind=SpanKind.CLIENT,
            start_time=ns(started),
            attributes=self._attributes(rec, op, providers),
        )
        ctx = trace.set_span_in_context(span)
        for call in rec.calls or ():
            child = self.tracer.start_span(
                f"chat {call.model}" if call.model else "chat",
                context=ctx,
                kind=SpanKind.CLIENT,
                start_time=ns(call.started),
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": call.model,
                    "server.address": split_host(call.server.lower())[0],
                    "llm_extproc.call": call.kind,
                    "llm_extproc.call.outcome": call.outcome,
                },
            )
            if call.outcome == "error":
                child.set_status(Status(StatusCode.ERROR))
                child.set_attribute("error.type", f"{call.kind}_failed")
            child.end(ns(call.ended))
        if rec.first_token:
            span.add_event("gen_ai.first_token", timestamp=ns(rec.first_token))
        ended = rec.ended or time.monotonic()
        for a in rec.attempt_statuses():
            span.add_event(
                "llm_extproc.fallback.attempt",
                {
                    "llm_extproc.attempt": a["attempt"],
                    "llm_extproc.provider": a["provider"],
                    "http.response.status_code": a["status"],
                },
                timestamp=ns(ended),
            )
        err = error_type(rec)
        if err:
            span.set_attribute("error.type", err)
            span.set_status(Status(StatusCode.ERROR))
        span.end(ns(ended))

    def _attributes(
        self, rec: ExchangeRecord, op: str, providers: Mapping[str, ProviderRuntime]
    ) -> dict[str, Any]:
        a: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": GENAI_PROVIDER_NAMES.get(rec.provider_type, rec.provider_type),
            "llm_extproc.route": rec.route,
            "llm_extproc.provider": rec.provider,
            "llm_extproc.overhead.request_ms": round(rec.overhead_request * 1000, 3),
            "llm_extproc.overhead.response_ms": round(rec.work_response * 1000, 3),
        }
        if rec.request_id:
            a["llm_extproc.request_id"] = rec.request_id
        if rec.consumer:
            a["llm_extproc.consumer"] = rec.consumer
        if rec.model_requested:
            a["gen_ai.request.model"] = rec.model_requested
        if rec.model_served:
            a["gen_ai.response.model"] = rec.model_served
        if rec.finish_reasons:
            a["gen_ai.response.finish_reasons"] = list(rec.finish_reasons)
        if rec.response_id:
            a["gen_ai.response.id"] = rec.response_id
        if rec.stream:
            a["llm_extproc.stream"] = True
        if rec.status:
            a["http.response.status_code"] = rec.status
        prov = providers.get(rec.provider)
        if prov is not None and prov.host:
            host, port = split_host(prov.host.lower())
            a["server.address"] = host
            if port.isdigit():
                a["server.port"] = int(port)
        u = rec.usage
        if u is not None:
            a["gen_ai.usage.input_tokens"] = u.input_tokens
            a["gen_ai.usage.output_tokens"] = u.output_tokens
            if u.cached_tokens:
                a["gen_ai.usage.cache_read.input_tokens"] = u.cached_tokens
        if rec.cost is not None:
            a["gen_ai.usage.cost"] = rec.cost  # USD
        if rec.attempt:
            a["llm_extproc.attempt"] = rec.attempt
        if rec.attempts:
            a["llm_extproc.attempts"] = rec.attempts
        if rec.blocked_reason:
            a["llm_extproc.blocked_reason"] = rec.blocked_reason
        if rec.guard:
            a["llm_extproc.guard"] = rec.guard
        return a


def error_type(rec: ExchangeRecord) -> str:
    """error.type: the gateway's reason, else the failed status ("" when it succeeded)."""
    if rec.blocked_reason:
        return rec.blocked_reason
    if rec.status >= 400 or rec.upstream_error:
        return str(rec.status) if rec.status else "no_response"
    if not rec.status:
        return "no_response"
    return ""
