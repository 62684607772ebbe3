"""Metrics: counters move as expected; label values stay bounded."""

from __future__ import annotations

import urllib.request

import pytest

from extproc.config.runtime import Runtime
from extproc.core.record import ExchangeRecord
from extproc.observability.metrics import (
    OTHER,
    BoundedLabel,
    Metrics,
    MetricsEndpoint,
    status_class,
)
from extproc.usage import Usage
from support import runtime as compile_runtime

CONFIG = """
providers:
- name: qwen
  type: qwen
  api_tokens: [sk-x]
  default_model: qwen-turbo
  model_mapping: {gpt-4o: qwen-max}
routes:
- name: chat
  provider: qwen
  auth: {required: false}
consumers:
- name: alice
  keys: [k1]
  allowed_models: [qwen-plus]
"""


@pytest.fixture
def runtime() -> Runtime:
    return compile_runtime(CONFIG)


def rec(**kw: object) -> ExchangeRecord:
    base: dict[str, object] = {
        "request_id": "rid-1",
        "route": "chat",
        "provider": "qwen",
        "consumer": "alice",
        "endpoint": "chat",
        "model_requested": "gpt-4o",
        "model_served": "qwen-max",
        "status": 200,
        "started": 100.0,
        "first_byte": 100.25,
        "ended": 101.0,
    }
    base.update(kw)
    return ExchangeRecord(**base)  # type: ignore[arg-type]


def val(m: Metrics, name: str, **labels: str) -> float:
    v = m.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_tokens_by_type(runtime: Runtime) -> None:
    m = Metrics(runtime)
    m.observe(rec(usage=Usage(10, 5, 15, cached_tokens=4, reasoning_tokens=2)))
    m.observe(rec(usage=Usage(1, 2, 3)))
    common = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "qwen",
        "gen_ai_request_model": "gpt-4o",
        "gen_ai_response_model": "qwen-max",
        "consumer": "alice",
    }
    name = "gen_ai_client_token_usage_sum"
    assert val(m, name, **common, gen_ai_token_type="input") == 11
    assert val(m, name, **common, gen_ai_token_type="output") == 7
    assert val(m, name, **common, gen_ai_token_type="cached") == 4
    assert val(m, name, **common, gen_ai_token_type="reasoning") == 2
    assert val(m, "gen_ai_client_token_usage_count", **common, gen_ai_token_type="input") == 2


@pytest.mark.parametrize(
    ("endpoint", "operation"),
    [
        ("chat", "chat"),
        ("anthropic_messages", "chat"),  # was "other": the Messages API is chat too
        ("ollama_chat", "chat"),
        ("ollama_generate", "text_completion"),
        ("embeddings", "embeddings"),
        ("anthropic_count_tokens", "other"),
        ("other", "other"),
    ],
)
def test_operation_name_per_endpoint(runtime: Runtime, endpoint: str, operation: str) -> None:
    m = Metrics(runtime)
    m.observe(rec(endpoint=endpoint, usage=Usage(3, 4, 7)))
    labels = {
        "gen_ai_operation_name": operation,
        "gen_ai_provider_name": "qwen",
        "gen_ai_request_model": "gpt-4o",
        "gen_ai_response_model": "qwen-max",
        "consumer": "alice",
        "gen_ai_token_type": "input",
    }
    assert val(m, "gen_ai_client_token_usage_sum", **labels) == 3


def test_requests_blocked_guard_upstream(runtime: Runtime) -> None:
    m = Metrics(runtime)
    m.observe(rec())
    m.observe(rec(status=403, blocked_reason="guard_denied", guard="deny", provider=""))
    m.observe(rec(status=401, blocked_reason="invalid_api_key", consumer="", provider=""))
    m.observe(rec(status=503, upstream_error=True))
    m.observe(rec(status=200, upstream_error=True, blocked_reason="stream_limit"))
    m.observe(rec(guard="allow"))
    assert (
        val(m, "llm_extproc_requests_total", route="chat", provider="qwen", status_class="2xx") == 3
    )
    assert val(m, "llm_extproc_requests_total", route="chat", provider="", status_class="4xx") == 2
    assert (
        val(m, "llm_extproc_requests_total", route="chat", provider="qwen", status_class="5xx") == 1
    )
    assert val(m, "llm_extproc_blocked_requests_total", reason="guard_denied") == 1
    assert val(m, "llm_extproc_blocked_requests_total", reason="invalid_api_key") == 1
    assert val(m, "llm_extproc_blocked_requests_total", reason="stream_limit") == 1
    assert val(m, "llm_extproc_guard_decisions_total", result="deny") == 1
    assert val(m, "llm_extproc_guard_decisions_total", result="allow") == 1
    assert (
        val(m, "llm_extproc_upstream_errors_total", gen_ai_provider_name="qwen", status="503") == 1
    )


def test_durations(runtime: Runtime) -> None:
    m = Metrics(runtime)
    labels = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "qwen",
        "gen_ai_request_model": "gpt-4o",
        "gen_ai_response_model": "qwen-max",
    }
    m.observe(rec(stream=True))
    m.observe(rec(stream=False))  # no TTFT for a buffered answer
    m.observe(rec(stream=True, status=500, upstream_error=True))  # nor for a failure
    d = "gen_ai_server_request_duration_seconds"
    assert val(m, d + "_count", **labels, error_type="") == 2
    assert val(m, d + "_sum", **labels, error_type="") == pytest.approx(2.0)
    assert val(m, d + "_count", **labels, error_type="5xx") == 1
    t = "gen_ai_server_time_to_first_token_seconds"
    assert val(m, t + "_count", **labels) == 1
    assert val(m, t + "_sum", **labels) == pytest.approx(0.25)


def test_model_labels_bounded(runtime: Runtime) -> None:
    m = Metrics(runtime, max_models=5)
    for i in range(200):
        m.observe(rec(model_requested=f"client-model-{i}", usage=Usage(1, 1, 2)))
    m.observe(rec(model_requested="x" * 500, usage=Usage(1, 1, 2)))
    m.observe(rec(model_requested="qwen-plus", usage=Usage(1, 1, 2)))  # configured: kept
    models = {
        s.labels["gen_ai_request_model"]
        for metric in m.registry.collect()
        if metric.name == "gen_ai_client_token_usage"
        for s in metric.samples
    }
    assert OTHER in models and "qwen-plus" in models
    assert len(models) <= 5 + 2
    assert not any(len(x) > 128 for x in models)


def test_unknown_names_and_odd_statuses_bounded(runtime: Runtime) -> None:
    m = Metrics(runtime)
    m.observe(rec(route="nope", provider="nope", consumer="mallory", status=0))
    assert (
        val(m, "llm_extproc_requests_total", route=OTHER, provider=OTHER, status_class="none") == 1
    )
    for i in range(500):
        m.observe(rec(blocked_reason=f"r{i}", guard=f"g{i}", status=400))
    reasons = {
        s.labels["reason"]
        for metric in m.registry.collect()
        if metric.name == "llm_extproc_blocked_requests"
        for s in metric.samples
    }
    assert len(reasons) <= 65


def test_no_request_ids_or_prompts_in_labels(runtime: Runtime) -> None:
    m = Metrics(runtime)
    m.observe(rec(request_id="rid-SECRET", usage=Usage(1, 1, 2)))
    for metric in m.registry.collect():
        for s in metric.samples:
            assert "rid-SECRET" not in repr(s.labels)


def test_bounded_label_and_status_class() -> None:
    b = BoundedLabel(["known"], cap=2)
    assert [b(x) for x in ("known", "a", "b", "c", "a", "")] == ["known", "a", "b", OTHER, "a", ""]
    assert status_class(204) == "2xx" and status_class(0) == "none" and status_class(999) == "none"


def test_endpoint_serves_metrics(runtime: Runtime) -> None:
    m = Metrics(runtime)
    m.observe(rec(usage=Usage(3, 4, 7)))
    ep = MetricsEndpoint(m.registry, "127.0.0.1", 0)
    ep.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ep.bound_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        ep.stop()
    assert "gen_ai_client_token_usage_bucket" in text
    assert 'llm_extproc_requests_total{provider="qwen",route="chat",status_class="2xx"} 1.0' in text


def test_fallback_attempts_and_requests(runtime: Runtime) -> None:
    m = Metrics(runtime)
    # A request of a fallback route: attempt 1 failed, attempt 2 answered.
    m.observe(rec(attempt=1, status=429, upstream_error=True, usage=None))
    m.observe(rec(attempt=2, status=200, usage=Usage(2, 3, 5)))
    m.observe(rec(attempts=2, attempt_log="1:qwen:429,2:qwen:200", usage=Usage(2, 3, 5)))
    name = "llm_extproc_upstream_attempts_total"
    assert val(m, name, route="chat", gen_ai_provider_name="qwen", status="429") == 1
    assert val(m, name, route="chat", gen_ai_provider_name="qwen", status="200") == 1
    assert val(m, "llm_extproc_request_attempts_count", route="chat") == 1
    assert val(m, "llm_extproc_request_attempts_sum", route="chat") == 2
    # The request counts once, its tokens once (the answer's); the failed
    # attempt's error counts once (from the attempt, not again from the request).
    assert (
        val(m, "llm_extproc_requests_total", route="chat", provider="qwen", status_class="2xx") == 1
    )
    assert val(m, "gen_ai_client_token_usage_count", gen_ai_token_type="input",
               gen_ai_operation_name="chat", gen_ai_provider_name="qwen",
               gen_ai_request_model="gpt-4o", gen_ai_response_model="qwen-max",
               consumer="alice") == 1  # fmt: skip
    assert (
        val(m, "llm_extproc_upstream_errors_total", gen_ai_provider_name="qwen", status="429") == 1
    )
    m.observe(rec(attempts=2, status=503, upstream_error=True))
    assert (
        val(m, "llm_extproc_upstream_errors_total", gen_ai_provider_name="qwen", status="503") == 0
    )


def test_cache_hits_count_tokens_saved_not_used(runtime: Runtime) -> None:
    m = Metrics(runtime)
    m.observe(rec(cache="hit", stream=True, usage=Usage(10, 5, 15)))
    m.observe(rec(cache="miss", usage=Usage(1, 2, 3)))
    saved = "llm_extproc_cache_tokens_saved_total"
    assert val(m, saved, route="chat", gen_ai_token_type="input") == 10
    assert val(m, saved, route="chat", gen_ai_token_type="output") == 5
    # Only the miss spent tokens; a hit has no model's first token either.
    assert val(m, "gen_ai_client_token_usage_count", **TOKEN_LABELS, gen_ai_token_type="input") == 1
    assert (
        m.registry.get_sample_value(
            "gen_ai_server_time_to_first_token_seconds_count",
            {
                "gen_ai_operation_name": "chat",
                "gen_ai_provider_name": "qwen",
                "gen_ai_request_model": "gpt-4o",
                "gen_ai_response_model": "qwen-max",
            },
        )
        is None
    )
    m.observe_cache("chat", "hit")
    m.observe_cache("chat", "unavailable")
    m.observe_cache("chat", "stored")
    m.observe_cache("nope", "stored")
    assert val(m, "llm_extproc_cache_lookups_total", route="chat", result="hit") == 1
    assert val(m, "llm_extproc_cache_lookups_total", route="chat", result="unavailable") == 1
    assert val(m, "llm_extproc_cache_stores_total", route="chat", result="stored") == 1
    assert val(m, "llm_extproc_cache_stores_total", route=OTHER, result="stored") == 1


TOKEN_LABELS = {
    "gen_ai_operation_name": "chat",
    "gen_ai_provider_name": "qwen",
    "gen_ai_request_model": "gpt-4o",
    "gen_ai_response_model": "qwen-max",
    "consumer": "alice",
}


def test_cost_and_overhead(runtime: Runtime) -> None:
    m = Metrics(runtime)
    r = rec(usage=Usage.of(10, 5), cost=0.25, work_request=0.004, waited=0.003, work_response=0.002)
    m.observe(r)
    m.observe(rec(cost=None))  # no price: nothing added
    labels = {
        "gen_ai_provider_name": "qwen",
        "gen_ai_response_model": "qwen-max",
        "consumer": "alice",
    }
    assert m.registry.get_sample_value("llm_extproc_cost_usd_total", labels) == pytest.approx(0.25)
    count = m.registry.get_sample_value("llm_extproc_overhead_seconds_count", {"side": "request"})
    total = m.registry.get_sample_value("llm_extproc_overhead_seconds_sum", {"side": "request"})
    assert count == 1 and total == pytest.approx(0.001)  # the guard's wait is left out
    resp = m.registry.get_sample_value("llm_extproc_overhead_seconds_sum", {"side": "response"})
    assert resp == pytest.approx(0.002)
