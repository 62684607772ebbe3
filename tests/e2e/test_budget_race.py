"""50 concurrent requests on a tiny token budget, through the real Envoy:
admission reserves each request's estimate atomically, so at most the budget
plus one request's estimate passes, with the memory store and with a real
Redis. (Checked before and charged after, all 50 passed.)"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from fake_provider import Scripted
from harness import Stack

pytestmark = pytest.mark.e2e

KEY = "ck-race-7a1b"
BUDGET = 30
WINDOW_S = 3600
N = 50
USAGE = {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13}
BODY = json.dumps(
    {
        "model": "qwen-turbo",
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "max_tokens": 5,
    }
)
ESTIMATE = -(-len(BODY) // 4) + 5  # body bytes / 4 + max_tokens


def config(budgets: str) -> str:
    return f"""
providers:
- name: qwen
  type: qwen
  api_tokens: [sk-race-provider]
routes:
- name: chat
  match: {{hosts: ["api.test"]}}
  provider: qwen
  auth: {{required: true}}
consumers:
- name: racer
  keys: [{KEY}]
  token_budget: {BUDGET}
budgets:
{budgets}
"""


def _answer() -> Scripted:
    body = {
        "id": "chatcmpl-race",
        "object": "chat.completion",
        "created": 1,
        "model": "qwen-turbo",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": USAGE,
    }
    # Slow enough that all 50 are in flight before the first answer settles.
    return Scripted(200, json.dumps(body).encode(), delay_s=1.0)


def _race(s: Stack) -> list[int]:
    s.fake.script("/chat/completions", *(_answer() for _ in range(N)))
    with httpx.Client(base_url=s.url, timeout=30) as client:

        def send(_: int) -> int:
            r = client.post(
                "/v1/chat/completions",
                content=BODY,
                headers={
                    "host": "api.test",
                    "authorization": f"Bearer {KEY}",
                    "content-type": "application/json",
                },
            )
            assert r.status_code in (200, 429), r.text
            if r.status_code == 429:
                assert r.json()["error"]["type"] == "rate_limit_error"
                assert "racer" in r.json()["error"]["message"]
            return r.status_code

        with ThreadPoolExecutor(N) as pool:
            statuses = list(pool.map(send, range(N)))
    s.fake.unscript()
    return statuses


def _check(statuses: list[int], s: Stack) -> None:
    passed = statuses.count(200)
    assert passed >= 1
    # What reached the provider is what passed, and its tokens stay within
    # the budget plus one request's estimate.
    assert len(s.fake.take()) == passed
    assert passed * USAGE["total_tokens"] <= BUDGET + ESTIMATE, statuses
    assert statuses.count(429) == N - passed


def _wait_window() -> None:
    left = WINDOW_S - time.time() % WINDOW_S
    if left < 30:
        time.sleep(left + 0.5)


def test_concurrent_requests_memory_budget(tmp_path_factory: pytest.TempPathFactory) -> None:
    _wait_window()
    with Stack(tmp_path_factory.mktemp("mem"), config(f"  window: {WINDOW_S}s")) as s:
        _check(_race(s), s)


def test_concurrent_requests_redis_budget(
    redis_port: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _wait_window()
    budgets = (
        f"  window: {WINDOW_S}s\n  backend: redis\n  redis_url: redis://127.0.0.1:{redis_port}/0"
    )
    with Stack(tmp_path_factory.mktemp("redis"), config(budgets)) as s:
        statuses = _race(s)
        _check(statuses, s)
        # Every reservation settled to the real usage: 13 per answered request.
        r = redis.Redis(port=redis_port)
        key = f"llm_extproc:budget:racer:{int(time.time() // WINDOW_S * WINDOW_S)}"
        deadline = time.monotonic() + 5
        want = statuses.count(200) * USAGE["total_tokens"]
        while int(r.get(key) or 0) != want and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(r.get(key) or 0) == want
        # A request the provider fails gives its reservation back.
        r.delete(key)
        resp = httpx.post(
            f"{s.url}/v1/chat/completions",
            content=BODY,
            headers={
                "host": "api.test",
                "authorization": f"Bearer {KEY}",
                "x-fake-fail": "/compatible-mode=500",
            },
            timeout=15,
        )
        assert resp.status_code == 500
        deadline = time.monotonic() + 5
        while int(r.get(key) or 0) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(r.get(key) or 0) == 0
