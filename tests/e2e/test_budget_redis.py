"""A consumer's token budget holds across TWO ext_proc processes sharing one
real Redis (each behind its own Envoy); Redis down means 503 (fail closed)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import redis

from harness import Stack, free_port

pytestmark = pytest.mark.e2e

KEY = "ck-budget-5e6f"
WINDOW_S = 3600
BODY = json.dumps(
    {
        "model": "llama3",
        "prompt": "Why is the sky blue?",
        "key": KEY,
        "stream": False,
        "options": {"num_predict": 5},
    }
)
# Each request reserves its estimate (body bytes / 4 + num_predict) at
# admission; each fake Ollama answer then costs 8 + 5 = 13. The budget
# admits a request while used + estimate fits: at 0, 13 and 26, not at 39.
ESTIMATE = -(-len(BODY) // 4) + 5
BUDGET = 26 + ESTIMATE


def config(redis_port: int) -> str:
    return f"""
providers:
- name: local-ollama
  type: ollama
  base_url: http://127.0.0.1:@FAKE_PORT@
routes:
- name: ollama
  match: {{hosts: ["ollama.test"]}}
  provider: local-ollama
  client_api: ollama
  auth: {{required: true, key_sources: ["body:key"]}}
consumers:
- name: team-b
  keys: [{KEY}]
  token_budget: {BUDGET}
budgets:
  window: {WINDOW_S}s
  backend: redis
  redis_url: redis://127.0.0.1:{redis_port}/0
"""


def _window_key() -> str:
    start = int(time.time() // WINDOW_S * WINDOW_S)
    return f"llm_extproc:budget:team-b:{start}"


def test_budget_across_two_processes(
    redis_port: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Not across a window boundary: wait for the next window if this one ends soon.
    left = WINDOW_S - time.time() % WINDOW_S
    if left < 30:
        time.sleep(left + 0.5)
    r = redis.Redis(port=redis_port)
    cfg = config(redis_port)
    with (
        Stack(tmp_path_factory.mktemp("a"), cfg) as a,
        Stack(tmp_path_factory.mktemp("b"), cfg) as b,
    ):
        clients = [
            httpx.Client(base_url=s.url, timeout=15, headers={"host": "ollama.test"})
            for s in (a, b)
        ]

        def send(i: int) -> httpx.Response:
            return clients[i % 2].post("/api/generate", content=BODY)

        def wait_charged(total: int) -> None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if int(r.get(_window_key()) or 0) == total:
                    return
                time.sleep(0.05)
            raise AssertionError(f"budget key is {r.get(_window_key())!r}, expected {total}")

        # 0 -> 13 (A) -> 26 (B) -> 39 (A: 26 + estimate fits the budget).
        for i, total in enumerate((13, 26, 39)):
            resp = send(i)
            assert resp.status_code == 200, resp.text
            wait_charged(total)
        assert 0 < r.ttl(_window_key()) <= 2 * WINDOW_S
        # Both processes now refuse: the limit holds across them.
        for i in (3, 4):
            resp = send(i)
            assert resp.status_code == 429, resp.text
            assert set(resp.json()) == {"error"}  # Ollama's error shape
            assert "team-b" in resp.json()["error"]
            ra = int(resp.headers["retry-after"])
            assert 1 <= ra <= WINDOW_S
        assert len(a.fake.take()) == 2 and len(b.fake.take()) == 1
        assert int(r.get(_window_key()) or 0) == 39
        for s in (a, b):
            assert KEY not in s.logs()

        # Redis gone: fail closed with a clear 503.
        r.shutdown(nosave=True)
        resp = send(5)
        assert resp.status_code == 503
        assert "budget store is unreachable" in resp.json()["error"]
        assert a.fake.take() == [] and b.fake.take() == []
        for c in clients:
            c.close()


def test_redis_unreachable_from_start(tmp_path_factory: pytest.TempPathFactory) -> None:
    port = free_port()  # nothing listens here
    with Stack(tmp_path_factory.mktemp("c"), config(port)) as s:
        resp = httpx.post(
            f"{s.url}/api/generate",
            headers={"host": "ollama.test"},
            content=json.dumps({"model": "llama3", "prompt": "p", "key": KEY}),
            timeout=15,
        )
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "1"
        assert s.fake.take() == []
        # A wrong key is still a 401 (identity is checked before the budget).
        resp = httpx.post(
            f"{s.url}/api/generate",
            headers={"host": "ollama.test"},
            content=json.dumps({"model": "llama3", "prompt": "p", "key": "nope"}),
            timeout=15,
        )
        assert resp.status_code == 401
        assert resp.json() == {"error": "Invalid or missing API key"}
