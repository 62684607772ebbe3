"""Consumer keys end to end: real Envoy, our server, the fake provider.

Includes the seed parity checks of the Python Ollama key proxy: `key` in
the JSON body, 401 with exactly {"error": "Invalid or missing API key"}.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import Stack

pytestmark = pytest.mark.e2e

ALICE = "ck-alice-7f3a9c"
BOB = "ck-bob-51d2e8"
PROVIDER_KEY = "sk-provider-0c4e2b"

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
  auth: {{required: true, key_sources: ["body:key"], forward_consumer_header: x-llm-consumer}}
- name: chat
  match: {{hosts: ["api.test"]}}
  provider: qwen
  auth:
    required: true
    key_sources: [authorization, x-api-key, "header:x-team-key"]
- name: open
  match: {{hosts: ["open.test"]}}
  provider: qwen
consumers:
- name: alice
  keys: [{ALICE}]
- name: bob
  keys: [{BOB}]
  allowed_models: [qwen-turbo, llama3]
  allowed_routes: [chat, ollama]
"""

OLLAMA_401 = {"error": "Invalid or missing API key"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("consumers"), CONFIG, fake_keys={"openai": PROVIDER_KEY}
    ) as s:
        yield s


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    stack.fake.take()
    with httpx.Client(base_url=stack.url, timeout=15) as c:
        yield c


def _ollama(client: httpx.Client, path: str, body: dict[str, object]) -> httpx.Response:
    return client.post(path, headers={"host": "ollama.test"}, content=json.dumps(body))


def test_seed_generate_with_right_key(stack: Stack, client: httpx.Client) -> None:
    r = _ollama(
        client,
        "/api/generate",
        {"model": "llama3", "prompt": "Why is the sky blue?", "key": ALICE, "stream": False},
    )
    assert r.status_code == 200, r.text
    assert "Hello from fake Ollama" in r.json()["response"]
    (rec,) = stack.fake.take()
    assert rec.path == "/api/generate"
    sent = rec.json()
    assert "key" not in sent
    assert sent["prompt"] == "Why is the sky blue?" and sent["model"] == "llama3"
    assert rec.headers.get("x-llm-consumer") == "alice"
    assert ALICE not in rec.body.decode() and ALICE not in json.dumps(rec.headers)


def test_seed_generate_streaming_default(stack: Stack, client: httpx.Client) -> None:
    # Ollama streams unless told not to; the seed's curl sends no "stream".
    r = _ollama(
        client, "/api/generate", {"model": "llama3", "prompt": "Why is the sky blue?", "key": BOB}
    )
    assert r.status_code == 200, r.text
    lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    assert lines and lines[-1]["done"] is True
    (rec,) = stack.fake.take()
    assert "key" not in rec.json()


def test_seed_chat_with_right_key(stack: Stack, client: httpx.Client) -> None:
    r = _ollama(
        client,
        "/api/chat",
        {
            "model": "llama3",
            "messages": [{"role": "user", "content": "Why is the sky blue?"}],
            "key": ALICE,
            "stream": False,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["message"]["role"] == "assistant"
    (rec,) = stack.fake.take()
    assert rec.path == "/api/chat"
    assert "key" not in rec.json()


@pytest.mark.parametrize("key", ["wrong-key", None, "", 42])
@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_seed_bad_or_missing_key(
    stack: Stack, client: httpx.Client, key: object, path: str
) -> None:
    body: dict[str, object] = {
        "model": "llama3",
        "prompt": "Why is the sky blue?",
        "messages": [{"role": "user", "content": "hi"}],
    }
    if key is not None:
        body["key"] = key
    r = _ollama(client, path, body)
    assert r.status_code == 401
    assert r.json() == OLLAMA_401
    assert r.headers["content-type"].startswith("application/json")
    assert stack.fake.take() == []


def test_openai_route_sources(stack: Stack, client: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    for headers in (
        {"authorization": f"Bearer {ALICE}"},
        {"x-api-key": ALICE},
        {"x-team-key": ALICE},
    ):
        r = client.post("/v1/chat/completions", headers={"host": "api.test", **headers}, json=body)
        assert r.status_code == 200, (headers, r.text)
        (rec,) = stack.fake.take()
        # The provider's key replaced the client's; no client key header is left.
        assert rec.headers.get("authorization") == f"Bearer {PROVIDER_KEY}"
        assert "x-api-key" not in rec.headers and "x-team-key" not in rec.headers
        assert ALICE not in json.dumps(rec.headers) + rec.body.decode()


def test_openai_route_errors(stack: Stack, client: httpx.Client) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    r = client.post("/v1/chat/completions", headers={"host": "api.test"}, json=body)
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "missing_api_key" and err["type"] == "authentication_error"
    r = client.post(
        "/v1/chat/completions",
        headers={"host": "api.test", "authorization": "Bearer nope"},
        json=body,
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert "nope" not in r.text
    r = client.post(
        "/v1/chat/completions",
        headers={"host": "api.test", "authorization": f"Bearer {BOB}"},
        json={**body, "model": "gpt-4o"},
    )
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["code"] == "model_not_allowed" and err["type"] == "permission_error"
    assert "gpt-4o" in err["message"]
    assert stack.fake.take() == []


def test_open_route_needs_no_key(stack: Stack, client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat/completions",
        headers={"host": "open.test"},
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text


def test_access_log_has_consumer_and_tokens(stack: Stack, client: httpx.Client) -> None:
    r = _ollama(
        client,
        "/api/generate",
        {"model": "llama3", "prompt": "count me", "key": BOB, "stream": False},
    )
    assert r.status_code == 200
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [x for x in stack.access_lines() if "consumer=bob" in x and "/api/generate" in x]
        if lines:
            break
        time.sleep(0.1)
    assert lines, stack.access_lines()
    line = lines[-1]
    assert "route=ollama" in line and "input_tokens=8" in line
    assert "output_tokens=5" in line and "total_tokens=13" in line
    # The structured request log line carries the same, and no key. Request
    # lines are written in batches (every 100 ms): wait for it.
    deadline = time.monotonic() + 5
    while True:
        logs = [json.loads(x) for x in stack.logs().splitlines() if x.startswith("{")]
        reqs = [x for x in logs if x.get("msg") == "request" and x.get("consumer") == "bob"]
        if reqs or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert reqs and reqs[-1]["total_tokens"] == 13 and reqs[-1]["route"] == "ollama"
    assert all(k not in stack.logs() for k in (ALICE, BOB, PROVIDER_KEY))
