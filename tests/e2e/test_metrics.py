"""Prometheus /metrics after a scripted mix of requests through the real Envoy."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from harness import Stack

pytestmark = pytest.mark.e2e

# After harness, which puts test/ (the fake provider) on sys.path.
from fake_provider import Scripted  # noqa: E402

KEY = "ck-metrics-4b1d"
PROVIDER_KEY = "sk-metrics-prov-77aa"
GUARD_KEY = "sk-metrics-guard-99cc"

CONFIG = f"""
providers:
- name: local-ollama
  type: ollama
  base_url: http://127.0.0.1:@FAKE_PORT@
- name: qwen
  type: qwen
  api_tokens: [{PROVIDER_KEY}]
  default_model: qwen-turbo
routes:
- name: ollama
  match: {{hosts: ["ollama.test"]}}
  provider: local-ollama
  client_api: ollama
  auth: {{required: true, key_sources: ["body:key"]}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden-word"]}}
- name: chat
  match: {{hosts: ["api.test"]}}
  provider: qwen
  processors:
  - llm_guard:
      host: 127.0.0.1
      port: @FAKE_PORT@
      api_key: {GUARD_KEY}
consumers:
- name: team-a
  keys: [{KEY}]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("metrics"),
        CONFIG,
        fake_keys={"openai": [PROVIDER_KEY, GUARD_KEY]},
    ) as s:
        yield s


def scrape(stack: Stack) -> str:
    return httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5).text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` whose labels include `labels`."""
    total = 0.0
    found = False
    for m in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.M):
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
            found = True
    assert found, (name, labels)
    return total


def test_metrics_after_a_mix(stack: Stack) -> None:
    c = httpx.Client(base_url=stack.url, timeout=15)
    oll = {"host": "ollama.test"}

    def gen(body: dict[str, object]) -> httpx.Response:
        return c.post("/api/generate", headers=oll, content=json.dumps(body))

    good = {"model": "llama3", "prompt": "Why is the sky blue?", "key": KEY, "stream": False}
    assert gen(good).status_code == 200
    assert gen({**good, "stream": True}).status_code == 200  # streamed: TTFT too
    assert gen({**good, "key": "bad"}).status_code == 401
    assert gen({**good, "prompt": "a forbidden-word here"}).status_code == 403
    stack.fake.script("/api/generate", Scripted(500, b'{"error":"model crashed"}'))
    assert gen(good).status_code == 500
    chat = {"messages": [{"role": "user", "content": "hello"}], "stream": False}
    assert (
        c.post("/v1/chat/completions", headers={"host": "api.test"}, json=chat).status_code == 200
    )
    denied = {"messages": [{"role": "user", "content": "CONFIDENTIAL plans"}]}
    r = c.post("/v1/chat/completions", headers={"host": "api.test"}, json=denied)
    assert r.status_code == 403, r.text
    c.close()

    time.sleep(0.2)
    text = scrape(stack)
    tok = "gen_ai_client_token_usage_sum"
    common = {
        "gen_ai_provider_name": "local-ollama",
        "consumer": "team-a",
        "gen_ai_request_model": "llama3",
    }
    # Two successful Ollama answers, 8 prompt + 5 completion tokens each.
    assert sample(text, tok, **common, gen_ai_token_type="input") == 16
    assert sample(text, tok, **common, gen_ai_token_type="output") == 10
    assert sample(text, tok, gen_ai_provider_name="qwen", gen_ai_token_type="input") > 0
    req = "llm_extproc_requests_total"
    assert sample(text, req, route="ollama", status_class="2xx") == 2
    assert sample(text, req, route="ollama", status_class="4xx") == 2
    assert sample(text, req, route="ollama", status_class="5xx") == 1
    assert sample(text, req, route="chat", status_class="2xx") == 1
    assert sample(text, req, route="chat", status_class="4xx") == 1
    blocked = "llm_extproc_blocked_requests_total"
    assert sample(text, blocked, reason="invalid_api_key") == 1
    assert sample(text, blocked, reason="content_denied") == 1
    assert sample(text, blocked, reason="guard_denied") == 1
    guard = "llm_extproc_guard_decisions_total"
    assert sample(text, guard, result="allow") == 1
    assert sample(text, guard, result="deny") == 1
    up = "llm_extproc_upstream_errors_total"
    assert sample(text, up, gen_ai_provider_name="local-ollama", status="500") == 1
    assert sample(text, "gen_ai_server_request_duration_seconds_count", error_type="") >= 3
    assert sample(text, "gen_ai_server_time_to_first_token_seconds_count") == 1
    # Nothing secret, no prompt and no request id in the exposition.
    for s in (KEY, PROVIDER_KEY, GUARD_KEY, "sky blue", "CONFIDENTIAL", "x-request-id"):
        assert s not in text


def test_metrics_with_workers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """--workers 2: the parent serves one /metrics summing both workers."""
    with Stack(
        tmp_path_factory.mktemp("workers"),
        CONFIG,
        fake_keys={"openai": [PROVIDER_KEY, GUARD_KEY]},
        extra_args=("--workers", "2"),
    ) as s:
        body = json.dumps({"model": "llama3", "prompt": "hi", "key": KEY, "stream": False})
        with httpx.Client(base_url=s.url, timeout=15) as c:
            for _ in range(6):
                # New connections, so Envoy's streams spread over both workers.
                r = c.post(
                    "/api/generate",
                    headers={"host": "ollama.test", "connection": "close"},
                    content=body,
                )
                assert r.status_code == 200, r.text
        text = ""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = scrape(s)
            if "llm_extproc_requests_total" in text:
                got = sample(text, "llm_extproc_requests_total", route="ollama")
                if got == 6:
                    break
            time.sleep(0.1)
        assert sample(text, "llm_extproc_requests_total", route="ollama", status_class="2xx") == 6
        tok = "gen_ai_client_token_usage_sum"
        assert sample(text, tok, consumer="team-a", gen_ai_token_type="input") == 48
