"""Traces and cost through the real Envoy with its OpenTelemetry tracer on.

Envoy and llm-extproc both export OTLP/gRPC to a receiver this test runs: a
chat request, a stream and a fallback each make one trace holding Envoy's
spans and ours, ours parented to Envoy's span of the ext_proc call, with the
GenAI attributes; no key appears in any span. Cost at the configured prices
reaches metrics, the request log and Envoy's dynamic metadata (access log)
for the official openai and anthropic SDKs.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from harness import Stack, free_port
from otlp_receiver import OtlpReceiver, Span, with_envoy_tracing

pytestmark = pytest.mark.e2e

from fake_provider import Scripted  # noqa: E402

QWEN_KEY = "sk-qwen-trace-3c1d"
CLAUDE_KEY = "sk-ant-trace-8e2f"
GUARD_KEY = "sk-guard-trace-5a6b"
CLIENT_KEY = "ck-trace-client-77d0"
SECRETS = (QWEN_KEY, CLAUDE_KEY, GUARD_KEY, CLIENT_KEY)
QWEN_PATH = "/compatible-mode/v1/chat/completions"
OTLP = free_port()

# USD per million tokens.
QWEN_IN, QWEN_OUT = 2.0, 6.0
CLAUDE_IN, CLAUDE_OUT = 1.0, 5.0

CONFIG = f"""
observability:
  tracing: {{enabled: true, endpoint: "127.0.0.1:{OTLP}"}}
  overhead_header: true
  prices:
  - {{provider: qwen, model: qwen-turbo, input: {QWEN_IN}, output: {QWEN_OUT}}}
  - {{provider: claude, model: "claude-3-5-haiku*", input: {CLAUDE_IN}, output: {CLAUDE_OUT}}}
providers:
- {{name: qwen, type: qwen, api_tokens: [{QWEN_KEY}], default_model: qwen-turbo}}
- name: claude
  type: claude
  api_tokens: [{CLAUDE_KEY}]
  model_mapping: {{"*": claude-3-5-haiku-latest}}
routes:
- name: chat
  match: {{hosts: [chat.test]}}
  provider: qwen
  auth: {{required: true}}
  processors:
  - llm_guard: {{host: 127.0.0.1, port: @FAKE_PORT@, api_key: {GUARD_KEY}}}
- name: fb
  match: {{hosts: [fallback.test]}}
  provider: qwen
  fallback: [claude]
  auth: {{required: true}}
- name: messages
  match: {{hosts: [messages.test]}}
  provider: claude
  client_api: anthropic
  auth: {{required: true}}
consumers:
- {{name: team-a, keys: [{CLIENT_KEY}]}}
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver(OTLP) as r:
        yield r


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[Stack]:
    keys = {"openai": [QWEN_KEY, GUARD_KEY], "claude": CLAUDE_KEY}
    with Stack(
        tmp_path_factory.mktemp("tracing"),
        CONFIG,
        fake_keys=keys,
        env={"OTEL_BSP_SCHEDULE_DELAY": "100"},
        envoy_edit=lambda text: with_envoy_tracing(text, OTLP),
    ) as s:
        yield s


def new_trace() -> tuple[str, str]:
    """(trace id, traceparent) of a client's sampled span: Envoy continues it."""
    trace_id = f"{random.getrandbits(128):032x}"
    return trace_id, f"00-{trace_id}-{random.getrandbits(64):016x}-01"


def oai(stack: Stack, host: str, traceparent: str) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=CLIENT_KEY,
        base_url=f"{stack.url}/v1",
        default_headers={"Host": host, "traceparent": traceparent},
        max_retries=0,
        timeout=20,
    )


def ours(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.service == "llm-extproc"]


def trace_spans(receiver: OtlpReceiver, trace_id: str, want_ours: int) -> list[Span]:
    """The trace's spans once ours (`want_ours` of them) and Envoy's arrived."""

    def done(spans: list[Span]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        return len(ours(mine)) >= want_ours and any(s.service == "envoy" for s in mine)

    spans = [s for s in receiver.wait_for(done) if s.trace_id == trace_id]
    time.sleep(0.3)  # late spans of the same trace (Envoy flushes on its own timer)
    return [s for s in receiver.spans if s.trace_id == trace_id] or spans


def request_span(spans: list[Span]) -> Span:
    """Our span of the request (not a guard call, not an attempt)."""
    found = [
        s
        for s in ours(spans)
        if "llm_extproc.call" not in s.attributes and "llm_extproc.attempt" not in s.attributes
    ]
    assert len(found) == 1, spans
    return found[0]


def assert_no_secret(spans: list[Span]) -> None:
    for s in spans:
        text = json.dumps([s.name, s.attributes, s.events], default=str)
        for secret in SECRETS:
            assert secret not in text, (s, secret)


def assert_parented_to_envoy(span: Span, spans: list[Span]) -> None:
    by_id = {s.span_id: s for s in spans}
    parent = by_id.get(span.parent_id)
    assert parent is not None and parent.service == "envoy", (span, spans)


def log_lines(stack: Stack, msg: str = "request") -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in stack.logs().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("msg") == msg]


def wait_log(stack: Stack, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        got = [x for x in log_lines(stack) if x.get("request_id") == request_id]
        if got or time.monotonic() > deadline:
            assert got, request_id
            return got[-1]
        time.sleep(0.1)


def access_line(stack: Stack, route: str, before: int) -> str:
    deadline = time.monotonic() + 5
    while True:
        lines = [x for x in stack.access_lines()[before:] if f"route={route} " in x]
        if lines or time.monotonic() > deadline:
            assert lines, route
            return lines[-1]
        time.sleep(0.1)


def scrape(stack: Stack) -> str:
    return httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5).text


def cost_total(text: str, provider: str, model: str) -> float:
    total = 0.0
    for m in re.finditer(r"^llm_extproc_cost_usd_total\{([^}]*)\} (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if (
            labels.get("gen_ai_provider_name") == provider
            and labels.get("gen_ai_response_model") == model
            and labels.get("consumer") == "team-a"
        ):
            total += float(m.group(2))
    return total


def test_a_chat_request_is_one_trace_with_envoy(stack: Stack, receiver: OtlpReceiver) -> None:
    trace_id, tp = new_trace()
    stack.fake.take()
    before_access = len(stack.access_lines())
    before_cost = cost_total(scrape(stack), "qwen", "qwen-turbo")
    raw = oai(stack, "chat.test", tp).chat.completions.with_raw_response.create(
        model="qwen-turbo", messages=[{"role": "user", "content": "hello traces"}]
    )
    reply = raw.parse()
    assert reply.usage is not None and reply.usage.prompt_tokens == 11
    # The gateway's own time, guard call excluded: present and small.
    overhead = float(raw.headers["x-llm-extproc-overhead-ms"])
    assert 0 < overhead < 1000

    spans = trace_spans(receiver, trace_id, want_ours=2)
    span = request_span(spans)
    a = span.attributes
    assert span.name == "chat qwen-turbo"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "qwen"
    assert a["gen_ai.request.model"] == "qwen-turbo"
    assert a["gen_ai.response.model"] == "qwen-turbo"
    assert a["gen_ai.usage.input_tokens"] == 11
    assert a["gen_ai.usage.output_tokens"] == 7
    assert a["server.address"] == "dashscope.aliyuncs.com"
    assert a["http.response.status_code"] == 200
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.response.id"] == "chatcmpl-fake"
    assert a["llm_extproc.consumer"] == "team-a"
    assert a["llm_extproc.request_id"]
    assert "error.type" not in a
    cost = (11 * QWEN_IN + 7 * QWEN_OUT) / 1e6
    assert a["gen_ai.usage.cost"] == pytest.approx(cost)
    assert_parented_to_envoy(span, spans)
    # The guard's model call: a child span of ours.
    (guard,) = [s for s in ours(spans) if s.attributes.get("llm_extproc.call") == "guard"]
    assert guard.parent_id == span.span_id
    assert guard.attributes["gen_ai.request.model"] == "qwen-turbo"
    assert guard.attributes["llm_extproc.call.outcome"] == "allow"
    assert span.start_ns <= guard.start_ns <= guard.end_ns <= span.end_ns
    assert_no_secret(spans)

    # The provider's request carries a traceparent of the same trace.
    seen = stack.fake.take()
    (up,) = [r for r in seen if r.headers.get("authorization") == f"Bearer {QWEN_KEY}"]
    assert up.headers["traceparent"].split("-")[1] == trace_id

    # Cost: the request log, Envoy's access log (dynamic metadata), the counter.
    line = wait_log(stack, a["llm_extproc.request_id"])
    assert line["cost_usd"] == pytest.approx(cost)
    assert line["overhead_ms"]["request"] >= 0
    access = access_line(stack, "chat", before_access)
    got = float(re.search(r"cost_usd=(\S+)", access).group(1))  # type: ignore[union-attr]
    assert got == pytest.approx(cost)
    after = cost_total(scrape(stack), "qwen", "qwen-turbo")
    assert after - before_cost == pytest.approx(cost)


def test_a_stream_has_its_first_token_event(stack: Stack, receiver: OtlpReceiver) -> None:
    trace_id, tp = new_trace()
    chunks = list(
        oai(stack, "chat.test", tp).chat.completions.create(
            model="qwen-turbo",
            messages=[{"role": "user", "content": "stream traces"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks
    spans = trace_spans(receiver, trace_id, want_ours=2)
    span = request_span(spans)
    a = span.attributes
    assert a["llm_extproc.stream"] is True
    assert a["gen_ai.usage.output_tokens"] == 7
    assert a["gen_ai.usage.cost"] == pytest.approx((11 * QWEN_IN + 7 * QWEN_OUT) / 1e6)
    names = [name for name, _ in span.events]
    assert "gen_ai.first_token" in names
    assert_parented_to_envoy(span, spans)
    assert_no_secret(spans)


def test_a_fallback_is_one_trace_with_its_attempts(stack: Stack, receiver: OtlpReceiver) -> None:
    trace_id, tp = new_trace()
    stack.fake.script(QWEN_PATH, Scripted(503, b'{"error":{"message":"down","type":"x"}}'))
    reply = oai(stack, "fallback.test", tp).chat.completions.create(
        model="qwen-turbo", messages=[{"role": "user", "content": "fall back"}]
    )
    assert reply.choices[0].message.content
    # The request's span and one span per attempt.
    spans = trace_spans(receiver, trace_id, want_ours=3)
    span = request_span(spans)
    a = span.attributes
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.response.model"].startswith("claude-3-5-haiku")
    assert a["llm_extproc.attempts"] == 2
    assert a["gen_ai.usage.cost"] == pytest.approx((12 * CLAUDE_IN + 9 * CLAUDE_OUT) / 1e6)
    events = [attrs for name, attrs in span.events if name == "llm_extproc.fallback.attempt"]
    assert [(e["llm_extproc.provider"], e["http.response.status_code"]) for e in events] == [
        ("qwen", 503),
        ("claude", 200),
    ]
    assert_parented_to_envoy(span, spans)
    attempts = sorted(
        (s for s in ours(spans) if "llm_extproc.attempt" in s.attributes),
        key=lambda s: s.attributes["llm_extproc.attempt"],
    )
    assert [s.attributes["llm_extproc.provider"] for s in attempts] == ["qwen", "claude"]
    assert attempts[0].attributes["error.type"] == "503"
    assert attempts[0].status_code == 2  # STATUS_CODE_ERROR
    for s in attempts:
        assert_parented_to_envoy(s, spans)
    assert_no_secret(spans)


def test_anthropic_sdk_cost_in_metrics_logs_and_metadata(stack: Stack) -> None:
    before_access = len(stack.access_lines())
    before = cost_total(scrape(stack), "claude", "claude-3-5-haiku-latest")
    client = anthropic.Anthropic(
        base_url=stack.url,
        api_key=CLIENT_KEY,
        default_headers={"host": "messages.test"},
        max_retries=0,
        timeout=15,
    )
    msg = client.messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=64,
        messages=[{"role": "user", "content": "what does this cost"}],
    )
    assert msg.usage.input_tokens == 12 and msg.usage.output_tokens == 9
    cost = (12 * CLAUDE_IN + 9 * CLAUDE_OUT) / 1e6
    access = access_line(stack, "messages", before_access)
    got = float(re.search(r"cost_usd=(\S+)", access).group(1))  # type: ignore[union-attr]
    assert got == pytest.approx(cost)
    lines = [x for x in log_lines(stack) if x.get("route") == "messages"]
    assert lines and lines[-1]["cost_usd"] == pytest.approx(cost)
    after = cost_total(scrape(stack), "claude", "claude-3-5-haiku-latest")
    assert after - before == pytest.approx(cost)


def test_a_request_the_guard_refuses_is_a_failed_span(stack: Stack, receiver: OtlpReceiver) -> None:
    trace_id, tp = new_trace()
    with pytest.raises(openai.PermissionDeniedError):
        oai(stack, "chat.test", tp).chat.completions.create(
            model="qwen-turbo", messages=[{"role": "user", "content": "CONFIDENTIAL plans"}]
        )
    spans = trace_spans(receiver, trace_id, want_ours=2)
    span = request_span(spans)
    assert span.attributes["error.type"] == "guard_denied"
    assert span.attributes["http.response.status_code"] == 403
    assert span.status_code == 2  # STATUS_CODE_ERROR
    (guard,) = [s for s in ours(spans) if s.attributes.get("llm_extproc.call") == "guard"]
    assert guard.parent_id == span.span_id
    assert guard.attributes["llm_extproc.call.outcome"] == "deny"
    assert_parented_to_envoy(span, spans)
    assert_no_secret(spans)
