"""Suite-level: distinctive secrets configured everywhere (provider keys,
consumer keys, guard key), a mix of requests (good, blocked, bad key, guard
deny, upstream error, budget exhausted, streaming), then no secret appears in
any log line (ext_proc, Envoy's log and access log), any response body or
header, or the metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from harness import Stack

pytestmark = pytest.mark.e2e

# Distinctive values: a hit can only come from a leak.
PROVIDER_KEY = "sk-LEAKCHECK-prov-3f9a1c"
OLLAMA_CONSUMER = "ck-LEAKCHECK-olla-8d2e4b"
CHAT_CONSUMER = "ck-LEAKCHECK-chat-6a7b0e"
GUARD_KEY = "sk-LEAKCHECK-guard-1e5d9f"
WRONG_KEY = "ck-LEAKCHECK-wrong-000000"
SECRETS = (PROVIDER_KEY, OLLAMA_CONSUMER, CHAT_CONSUMER, GUARD_KEY, WRONG_KEY)

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
  auth: {{required: true, key_sources: ["body:key"], forward_consumer_header: x-consumer}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden-word"]}}
- name: chat
  match: {{hosts: ["api.test"]}}
  provider: qwen
  auth: {{required: true, key_sources: [authorization, x-api-key, "header:x-team-key"]}}
  processors:
  - llm_guard: {{host: 127.0.0.1, port: @FAKE_PORT@, api_key: {GUARD_KEY}}}
consumers:
- name: ollama-user
  keys: [{OLLAMA_CONSUMER}]
  token_budget: 100
- name: chat-user
  keys: [{CHAT_CONSUMER}]
  allowed_models: [qwen-turbo]
observability: {{debug_log_prompts: true}}
"""


NP = {"options": {"num_predict": 1}}


def test_no_secret_anywhere(tmp_path: Path) -> None:
    seen: list[str] = []
    with Stack(
        tmp_path, CONFIG, fake_keys={"openai": [PROVIDER_KEY, GUARD_KEY]}, extra_args=()
    ) as s:
        c = httpx.Client(base_url=s.url, timeout=15)

        def keep(r: httpx.Response) -> httpx.Response:
            seen.append(r.text)
            seen.append(json.dumps(dict(r.headers)))
            return r

        def oll(body: dict[str, object], path: str = "/api/generate") -> httpx.Response:
            return keep(c.post(path, headers={"host": "ollama.test"}, content=json.dumps(body)))

        def chat(headers: dict[str, str], body: dict[str, object]) -> httpx.Response:
            return keep(
                c.post("/v1/chat/completions", headers={"host": "api.test", **headers}, json=body)
            )

        msg = {"messages": [{"role": "user", "content": "hello"}]}
        statuses = [
            # num_predict 1: each reserves its size / 4 + 1 tokens of the budget.
            oll(
                {"model": "llama3", "prompt": "sky?", "key": OLLAMA_CONSUMER, "stream": False, **NP}
            ),
            oll({"model": "llama3", "prompt": "sky?", "key": OLLAMA_CONSUMER, **NP}),  # streamed
            # The user pastes their key into the prompt: the fake model echoes it
            # (so this answer is not kept), the debug prompt log must mask it.
            c.post(
                "/api/chat",
                headers={"host": "ollama.test"},
                content=json.dumps(
                    {
                        "model": "llama3",
                        "messages": [{"role": "user", "content": f"my key {OLLAMA_CONSUMER}"}],
                        "key": OLLAMA_CONSUMER,
                        "stream": False,
                        **NP,
                    }
                ),
            ),
            # No num_predict: it reserves the default output, capped at the whole
            # budget, which an earlier request's usage leaves no room for.
            oll({"model": "llama3", "prompt": "sky?", "key": OLLAMA_CONSUMER}),  # over budget
            oll({"model": "llama3", "prompt": "sky?", "key": WRONG_KEY}),
            oll({"model": "llama3", "prompt": "sky?"}),
            oll({"model": "llama3", "prompt": "a forbidden-word", "key": OLLAMA_CONSUMER}),
            chat({"authorization": f"Bearer {CHAT_CONSUMER}"}, msg),
            chat({"x-team-key": CHAT_CONSUMER}, {**msg, "stream": True}),
            chat({"x-api-key": CHAT_CONSUMER}, {**msg, "model": "gpt-4o"}),
            chat({"authorization": f"Bearer {WRONG_KEY}"}, msg),
            chat(
                {"authorization": f"Bearer {CHAT_CONSUMER}"},
                {"messages": [{"role": "user", "content": "CONFIDENTIAL data"}]},
            ),
        ]
        s.fake.script("/chat/completions", _error_script())
        statuses.append(chat({"authorization": f"Bearer {CHAT_CONSUMER}"}, msg))
        statuses.append(
            keep(c.get("/v1/models", headers={"host": "api.test", "x-api-key": CHAT_CONSUMER}))
        )
        c.close()
        codes = [r.status_code for r in statuses]
        assert codes[:3] == [200, 200, 200]
        assert 429 in codes and 401 in codes and 403 in codes and 500 in codes
        seen.append(httpx.get(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=5).text)
        # Upstream, only the provider's key is seen (never a consumer key).
        for rec in s.fake.take():
            blob = json.dumps(rec.headers) + rec.body.decode(errors="replace")
            assert OLLAMA_CONSUMER not in blob or "my key" in blob  # the user typed it
            assert CHAT_CONSUMER not in blob and WRONG_KEY not in blob
        time.sleep(0.3)
    logs = s.logs()
    assert '"msg":"request"' in logs  # the request log lines are there to check
    assert '"prompts"' in logs and "[redacted]" in logs
    texts = {
        "ext_proc log": logs,
        "envoy log": Path(s.envoy_log).read_text(errors="replace"),
        "access log": "\n".join(s.access_lines()),
        "responses and metrics": "\n".join(seen),
    }
    for where, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into the {where}"


def _error_script():  # type: ignore[no-untyped-def]
    from fake_provider import Scripted

    return Scripted(500, b'{"error":{"message":"upstream exploded","type":"server_error"}}')
