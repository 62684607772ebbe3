"""Traces, cost and overhead from a real Exchange, exported to an in-memory OTel exporter.

The exchange runs unmocked (a compiled config, the events Envoy sends); the
span comes from its record through `Tracing.export`, the SDK's own span
processor and an in-memory exporter in place of OTLP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from typing import Any, ClassVar

import orjson
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text
from extproc.config.runtime import RouteTable, Runtime, TracingConfig
from extproc.consumers.auth import make_authenticator
from extproc.core.attempt import stream_origin
from extproc.core.events import (
    Continue,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import OVERHEAD_HEADER, Exchange
from extproc.core.record import ExchangeRecord
from extproc.core.request import RequestContext
from extproc.observability.tracing import Tracing, error_type
from extproc.serving.generation import Generation

PROVIDER_KEY = "sk-trace-provider-0a1b"
CLIENT_KEY = "ck-trace-consumer-2c3d"
PROMPT = "my password is hunter2-secret"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ENVOY_SPAN = "00f067aa0ba902b7"
PARENT = f"00-{TRACE}-{ENVOY_SPAN}-01"

CONFIG = f"""
observability:
  tracing: {{enabled: true, endpoint: "127.0.0.1:4317"}}
  overhead_header: true
  prices:
  - {{provider: qwen, model: qwen-max, input: 2.0, output: 6.0, cached_input: 0.5}}
providers:
- name: qwen
  type: qwen
  api_tokens: [{PROVIDER_KEY}]
  default_model: qwen-turbo
  model_mapping: {{gpt-4o: qwen-max}}
routes:
- name: chat
  match: {{hosts: [api.test]}}
  provider: qwen
  auth: {{required: true}}
consumers:
- {{name: team-a, keys: [{CLIENT_KEY}]}}
"""

ANSWER = {
    "id": "chatcmpl-1",
    "model": "qwen-max",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 120,
        "prompt_tokens_details": {"cached_tokens": 40},
    },
}


class SlowModelCall:
    """A processor that calls a model (as the LLM guard does): its wait is timed."""

    name = "slow_guard"
    reads_texts = False
    calls_model: ClassVar[str] = "guard"

    def call_target(self) -> tuple[str, str]:
        return "guard-model", "guard.internal:8443"

    async def process(self, ctx: RequestContext) -> Reject | None:
        await asyncio.sleep(0.05)
        ctx.annotations["guard"] = "allow"
        return None

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def runtime(text: str = CONFIG, env: dict[str, str] | None = None) -> Runtime:
    return compile_config(load_text(text), env=env or {})


def with_guard(rt: Runtime) -> Runtime:
    route = dataclasses.replace(rt.routes.routes[0], processors=(SlowModelCall(),))  # type: ignore[arg-type]
    return dataclasses.replace(rt, routes=RouteTable((route,)))


@pytest.fixture
def exported() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    mem = InMemorySpanExporter()
    t = Tracing(TracingConfig(endpoint="127.0.0.1:1"), processor=SimpleSpanProcessor(mem))
    yield t, mem
    t.shutdown()


async def run(rt: Runtime, headers: dict[str, str] | None = None) -> tuple[ExchangeRecord, Any]:
    """One chat request through an Exchange; (its record, the decisions)."""
    done: list[ExchangeRecord] = []
    ex = Exchange(rt, done.append, make_authenticator(rt, None))
    h = {
        ":authority": "api.test",
        ":path": "/v1/chat/completions",
        ":method": "POST",
        "content-type": "application/json",
        "authorization": f"Bearer {CLIENT_KEY}",
        "x-request-id": "req-trace-1",
        **(headers or {}),
    }
    await ex.handle(RequestHeaders(h, False))
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}
    req = await ex.handle(RequestBody(orjson.dumps(body), True))
    resp_h = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "application/json"}, False)
    )
    end = await ex.handle(ResponseBody(orjson.dumps(ANSWER), True))
    assert done, "on_done not called"
    return done[0], (req, resp_h, end)


async def test_the_upstream_request_carries_our_span_in_the_parents_trace() -> None:
    rec, (req, _, _) = await run(runtime(), {"traceparent": PARENT})
    assert isinstance(req, Continue)
    sent = dict(req.set_headers)["traceparent"]
    assert sent == f"00-{TRACE}-{rec.span_id}-01"
    assert rec.trace_id == TRACE and rec.span_id != ENVOY_SPAN
    assert rec.traceparent == PARENT


async def test_with_tracing_off_nothing_is_read_or_sent() -> None:
    rt = runtime(CONFIG.replace("enabled: true", "enabled: false"))
    rec, (req, _, _) = await run(rt, {"traceparent": PARENT})
    assert "traceparent" not in dict(req.set_headers)
    assert not rec.traceparent and not rec.span_id
    # OTEL_SDK_DISABLED turns a configured tracer off.
    assert runtime(env={"OTEL_SDK_DISABLED": "true"}).tracing is None


async def test_cost_overhead_and_model_calls_in_the_record_and_metadata() -> None:
    rec, (_, resp_h, end) = await run(with_guard(runtime()))
    cost = ((100 - 40) * 2.0 + 40 * 0.5 + 20 * 6.0) / 1e6
    assert rec.cost == pytest.approx(cost)
    assert isinstance(end, Continue) and end.metadata is not None
    assert end.metadata["llm_extproc"]["cost_usd"] == pytest.approx(cost)
    assert rec.model_mapped == "qwen-max"
    # The guard's 50 ms wait is timed, and left out of our own overhead.
    assert rec.calls is not None and len(rec.calls) == 1
    call = rec.calls[0]
    assert (call.kind, call.model, call.outcome) == ("guard", "guard-model", "allow")
    assert call.ended - call.started >= 0.045
    assert rec.waited >= 0.045 and rec.work_request >= rec.waited
    assert 0 < rec.overhead_request < 0.045
    assert rec.work_response > 0
    # The optional header: the request side, in milliseconds.
    assert isinstance(resp_h, Continue)
    assert 0 < float(dict(resp_h.set_headers)[OVERHEAD_HEADER]) < 45


async def test_the_overhead_header_is_off_by_default() -> None:
    rt = runtime(CONFIG.replace("overhead_header: true", "overhead_header: false"))
    _, (_, resp_h, _) = await run(rt)
    assert OVERHEAD_HEADER not in dict(resp_h.set_headers)


async def test_span_attributes_parent_children_and_no_secret(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, mem = exported
    rt = with_guard(runtime())
    rec, _ = await run(rt, {"traceparent": PARENT})
    tracing.export(rec, rt.providers)
    spans = {s.name: s for s in mem.get_finished_spans()}
    span, guard = spans["chat gpt-4o"], spans["chat guard-model"]
    assert span.kind is SpanKind.CLIENT
    ctx = span.get_span_context()
    assert f"{ctx.trace_id:032x}" == TRACE and f"{ctx.span_id:016x}" == rec.span_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == ENVOY_SPAN
    a = dict(span.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "qwen"
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["gen_ai.response.model"] == "qwen-max"
    assert a["gen_ai.usage.input_tokens"] == 100
    assert a["gen_ai.usage.output_tokens"] == 20
    assert a["gen_ai.usage.cache_read.input_tokens"] == 40
    assert a["server.address"] == "dashscope.aliyuncs.com"
    assert a["llm_extproc.request_id"] == "req-trace-1"
    assert a["llm_extproc.consumer"] == "team-a"
    assert a["gen_ai.usage.cost"] == pytest.approx(rec.cost)
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.response.id"] == "chatcmpl-1"
    assert "error.type" not in a
    assert span.status.status_code is StatusCode.UNSET
    assert guard.parent is not None and guard.parent.span_id == ctx.span_id
    g = dict(guard.attributes or {})
    assert g["llm_extproc.call"] == "guard" and g["server.address"] == "guard.internal"
    assert span.start_time is not None and guard.start_time is not None
    assert span.start_time <= guard.start_time <= (guard.end_time or 0) <= (span.end_time or 0)
    # No key and no prompt in any name, attribute or event.
    for s in mem.get_finished_spans():
        text = json.dumps(
            [
                s.name,
                dict(s.attributes or {}),
                [(e.name, dict(e.attributes or {})) for e in s.events],
            ],
            default=str,
        )
        for secret in (PROVIDER_KEY, CLIENT_KEY, PROMPT, "hunter2"):
            assert secret not in text


def test_stream_events_fallback_attempts_and_errors(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, mem = exported
    rec = ExchangeRecord(
        request_id="r2",
        route="fb",
        provider="claude",
        provider_type="claude",
        endpoint="chat",
        model_requested="m",
        model_served="claude-x",
        stream=True,
        status=200,
        started=10.0,
        first_token=10.2,
        ended=11.0,
        attempts=2,
        attempt_log="1:qwen:503,2:claude:200",
        trace_id=TRACE,
        span_id="1111111111111111",
        trace_flags="01",
    )
    tracing.export(rec)
    (span,) = mem.get_finished_spans()
    # No parent: a root span in the trace our ids chose.
    assert span.parent is None and f"{span.get_span_context().trace_id:032x}" == TRACE
    assert (span.attributes or {})["gen_ai.provider.name"] == "anthropic"
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert events[0][0] == "gen_ai.first_token"
    assert events[0] and span.events[0].timestamp - (span.start_time or 0) == pytest.approx(
        0.2e9, rel=0.01
    )
    attempts = [(x["llm_extproc.provider"], x["http.response.status_code"]) for _, x in events[1:]]
    assert attempts == [("qwen", 503), ("claude", 200)]

    mem.clear()
    failed = dataclasses.replace(rec, status=503, upstream_error=True, attempts=0, attempt_log="")
    tracing.export(failed)
    (span,) = mem.get_finished_spans()
    assert (span.attributes or {})["error.type"] == "503"
    assert span.status.status_code is StatusCode.ERROR
    # Refused before a leg was built (no ids yet): a span in the parent's trace.
    mem.clear()
    blocked = ExchangeRecord(
        route="chat",
        endpoint="chat",
        status=403,
        blocked_reason="guard_denied",
        started=1.0,
        ended=1.1,
        traceparent=PARENT,
    )
    tracing.export(blocked)
    (span,) = mem.get_finished_spans()
    assert f"{span.get_span_context().trace_id:032x}" == TRACE
    assert span.parent is not None and f"{span.parent.span_id:016x}" == ENVOY_SPAN
    assert (span.attributes or {})["error.type"] == "guard_denied"


def test_error_type() -> None:
    assert error_type(ExchangeRecord(status=200)) == ""
    assert error_type(ExchangeRecord(status=403, blocked_reason="guard_denied")) == "guard_denied"
    assert error_type(ExchangeRecord(status=0)) == "no_response"
    assert error_type(ExchangeRecord(status=429, upstream_error=True)) == "429"


def test_the_ext_proc_streams_traceparent_reaches_the_record_only_with_tracing() -> None:
    md = [(b"x-llm-extproc-provider", b"claude"), (b"traceparent", PARENT.encode())]
    assert stream_origin(md) == ("claude", PARENT)
    assert stream_origin([("traceparent", PARENT)]) == ("", PARENT)
    on = Generation(runtime(), None, lambda rec: None)
    assert on.exchange("", PARENT).record.traceparent == PARENT
    assert on.exchange("qwen", PARENT).record.traceparent == PARENT
    off = Generation(runtime(CONFIG.replace("enabled: true", "enabled: false")), None, print)
    assert off.exchange("", PARENT).record.traceparent == ""


def test_config_errors_name_the_field() -> None:
    bad = """
observability:
  tracing: {enabled: true, protocol: thrift, endpoint: "collector:4318"}
  prices:
  - {provider: "", model: "a*b", input: -1, output: 2}
providers: [{name: q, type: qwen, api_tokens: [k]}]
routes: [{name: r, provider: q}]
"""
    with pytest.raises(ConfigError) as e:
        runtime(bad)
    text = str(e.value)
    for path in (
        "observability.tracing.protocol",
        "observability.prices[0].provider",
        "observability.prices[0].model",
        "observability.prices[0].input",
    ):
        assert path in text, text
    # Fields left empty: the OTEL_* variables; an http/protobuf endpoint is a URL.
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_SERVICE_NAME": "gw"}
    with pytest.raises(ConfigError, match=r"observability\.tracing\.endpoint"):
        runtime(CONFIG, env=env)
    url = "http://127.0.0.1:4318/v1/traces"
    http = runtime(CONFIG.replace('"127.0.0.1:4317"', url), env=env)
    assert http.tracing == TracingConfig("http/protobuf", url, "gw", None)


def test_both_otlp_exporters_build_from_the_config() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    from extproc.observability.tracing import make_exporter

    g = make_exporter(TracingConfig("grpc", "127.0.0.1:1"))
    h = make_exporter(TracingConfig("http/protobuf", "http://127.0.0.1:1/v1/traces"))
    assert isinstance(g, Grpc) and isinstance(h, Http)
    g.shutdown()
    h.shutdown()
