"""In-process cost of llm-extproc's own code per matched request, without
gRPC: the parts bench.py's end-to-end numbers cannot separate.

Drives the same four ext_proc messages Envoy sends for the full pipeline
(bench/extproc-bench.yaml, host llm.bench) through the transport codec's
functions and the Exchange, and times each step with time.perf_counter_ns
over many iterations:

  decode        ProcessingRequest.FromString (what grpc's deserializer does)
  headers_of    HeaderMap -> dict, request and response headers
  exchange      Exchange.handle for the four events (routing, JSON, regex
                guard, translation, usage read), on_done excluded
  regex_guard   the route's RegexGuard.process alone (part of exchange)
  encode_bytes  Decision -> serialized ProcessingResponse (codec.encode_bytes)
  log_line      log_exchange into a file (the per-request JSON log line)
  metrics       Metrics.observe (Prometheus counters/histograms)
  tracing       the exchange with observability.tracing on (Envoy's
                traceparent on the stream; ours set toward the provider) next
                to the same exchange with it off, and the span's cost in
                on_done (built and queued to a BatchSpanProcessor whose
                exporter drops it: export runs in the SDK's thread, off the
                request path). Not part of the total.

Usage: python bench/micro.py [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from envoy.service.ext_proc.v3 import external_processor_pb2 as ep  # noqa: E402

from extproc.compiler.compile import compile_config  # noqa: E402
from extproc.config.loader import load_file  # noqa: E402
from extproc.core.events import (  # noqa: E402
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange  # noqa: E402
from extproc.core.request import RequestContext  # noqa: E402
from extproc.transport import codec  # noqa: E402

sys.path.insert(0, str(BENCH))
from bench import CHAT_BODY, CLIENT_AUTH  # noqa: E402

UPSTREAM_BODY = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"qwen-turbo","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello."},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,'
    b'"completion_tokens":2,"total_tokens":13}}'
)


def header_map(pairs: list[tuple[str, str]]) -> Any:
    from envoy.config.core.v3 import base_pb2 as b

    return b.HeaderMap(headers=[b.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs])


def envoy_messages() -> list[bytes]:
    """The four ProcessingRequests of one full-pipeline request, serialized."""
    req_h = [
        (":authority", "llm.bench"),
        (":path", "/v1/chat/completions"),
        (":method", "POST"),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("authorization", CLIENT_AUTH),
        ("content-length", str(len(CHAT_BODY))),
        ("user-agent", "wrk"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5b0c8a3e-3d0e-4f0e-9d6a-1c2b3a4d5e6f"),
    ]
    resp_h = [
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-length", str(len(UPSTREAM_BODY))),
        ("date", "Sun, 22 Nov 2026 23:00:00 GMT"),
        ("server", "envoy"),
        ("x-envoy-upstream-service-time", "0"),
    ]
    msgs = [
        ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=header_map(req_h))),
        ep.ProcessingRequest(request_body=ep.HttpBody(body=CHAT_BODY.encode(), end_of_stream=True)),
        ep.ProcessingRequest(response_headers=ep.HttpHeaders(headers=header_map(resp_h))),
        ep.ProcessingRequest(response_body=ep.HttpBody(body=UPSTREAM_BODY, end_of_stream=True)),
    ]
    return [m.SerializeToString() for m in msgs]


def run_sync(coro: Any) -> Any:
    """Run a coroutine that never suspends to completion without an event loop
    (the bench config's processors and hooks do no I/O)."""
    try:
        coro.send(None)
    except StopIteration as s:
        return s.value
    coro.close()
    raise RuntimeError("the coroutine suspended; a processor awaits I/O")


def drive(ex: Exchange, ev: Any) -> Any:
    return run_sync(ex.handle(ev))


def timed(n: int, fn: Callable[[], Any]) -> float:
    """Microseconds per call, best of 3."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / n / 1000)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--config", default=str(BENCH / "extproc-bench.yaml"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    runtime = compile_config(load_file(a.config))
    raw = envoy_messages()
    kinds = ["request_headers", "request_body", "response_headers", "response_body"]
    decoded = [ep.ProcessingRequest.FromString(b) for b in raw]

    def events() -> list[Any]:
        d = decoded
        return [
            RequestHeaders(codec.headers_of(d[0].request_headers.headers), False),
            RequestBody(d[1].request_body.body, True),
            ResponseHeaders(codec.headers_of(d[2].response_headers.headers), False),
            ResponseBody(d[3].response_body.body, True),
        ]

    evs = events()
    records = []

    def one_exchange() -> list[Any]:
        ex = Exchange(runtime, records.append if len(records) < 1 else None)
        return [drive(ex, e) for e in evs]

    decisions = one_exchange()
    rec = records[0]
    assert rec.usage is not None and rec.usage.input_tokens == 11, rec
    assert rec.model_served == "qwen-turbo", rec

    out: dict[str, float] = {}
    out["decode (4 x FromString)"] = timed(
        a.n, lambda: [ep.ProcessingRequest.FromString(b) for b in raw]
    )
    out["headers_of (req + resp)"] = timed(
        a.n,
        lambda: (
            codec.headers_of(decoded[0].request_headers.headers),
            codec.headers_of(decoded[2].response_headers.headers),
        ),
    )
    out["exchange (4 events, no on_done)"] = timed(a.n, one_exchange)
    tracing_on, span_us = tracing_costs(runtime, evs, a.n)

    route = runtime.routes.match("llm.bench", "/v1/chat/completions", {})
    guard = next(p for p in route.processors if p.name == "regex_guard")
    body = json.loads(CHAT_BODY)
    ctx = RequestContext(route, {":authority": "llm.bench"}, "chat", body)
    out["  of which regex_guard.process"] = timed(a.n, lambda: run_sync(guard.process(ctx)))

    def convert() -> None:
        for k, d in zip(kinds, decisions, strict=False):
            codec.encode_bytes(k, d)

    out["encode_bytes (4)"] = timed(a.n, convert)

    # The request log line, to a file as production logs to stderr.
    from extproc.observability import logs

    fd, path = tempfile.mkstemp(prefix="micro-log-")
    os.close(fd)
    logs.setup_logging("info")
    root = logging.getLogger()
    stream = open(path, "w")  # noqa: SIM115
    handler = root.handlers[0]
    if hasattr(handler, "setStream"):
        handler.setStream(stream)
    else:  # the batched handler (logs.BufferedHandler) writes to `_stream`
        handler._stream = stream  # type: ignore[attr-defined]
    try:
        out["log_line (log_exchange)"] = timed(a.n, lambda: logs.log_exchange(rec))
    except TypeError:  # older signature
        out["log_line (log_exchange)"] = timed(a.n, lambda: logs.log_exchange(rec, None))
    stream.close()
    os.unlink(path)
    root.handlers.clear()

    try:
        from extproc.observability.metrics import Metrics

        m = Metrics(runtime)
        out["metrics (Metrics.observe)"] = timed(a.n, lambda: m.observe(rec))
    except ImportError:
        pass

    # asyncio overhead the servicer pays per message: one await of a
    # coroutine that does not suspend.
    async def noop() -> None:
        return None

    async def awaits(n: int) -> None:
        for _ in range(n):
            await noop()

    loop = asyncio.new_event_loop()
    t0 = time.perf_counter_ns()
    loop.run_until_complete(awaits(a.n * 4))
    out["4 x await (no suspension)"] = (time.perf_counter_ns() - t0) / a.n / 1000
    loop.close()

    # Tracing on vs off, after the total (not part of it).
    total = sum(v for k, v in out.items() if not k.startswith("  "))
    tracing = {
        "exchange, tracing off": timed(a.n, one_exchange),
        "exchange, tracing on": tracing_on,
        "span built + queued (on_done)": span_us,
    }
    if a.json:
        print(
            json.dumps({"us_per_request": out, "total_us": total, "tracing_us": tracing}, indent=2)
        )
        return
    print(f"{'step':<36} {'us/request':>10}")
    for k, v in out.items():
        print(f"{k:<36} {v:>10.1f}")
    print(f"{'total (our code, no grpc)':<36} {total:>10.1f}")
    print("tracing (observability.tracing), not in the total:")
    for k, v in tracing.items():
        print(f"  {k:<34} {v:>10.1f}")


def tracing_costs(runtime: Any, evs: list[Any], n: int) -> tuple[float, float]:
    """(us per exchange with tracing on, us per span built and queued)."""
    import dataclasses

    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from extproc.config.runtime import TracingConfig
    from extproc.observability.tracing import Tracing

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    traced = dataclasses.replace(runtime, tracing=TracingConfig())
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    records: list[Any] = []

    def one() -> None:
        ex = Exchange(traced, records.append if len(records) < 1 else None)
        ex.record.traceparent = parent
        for e in evs:
            drive(ex, e)

    on = timed(n, one)
    rec = records[0]
    assert rec.span_id and rec.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736", rec
    t = Tracing(TracingConfig(), processor=BatchSpanProcessor(Drop(), max_queue_size=1 << 16))
    try:
        span = timed(n, lambda: t.export(rec, runtime.providers))
    finally:
        t.shutdown()
    return on, span


if __name__ == "__main__":
    main()
