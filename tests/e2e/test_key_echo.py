"""A provider that echoes its key (or a guard key) in a header or a body:
the client never sees it, on every path the gateway reads, through the real
Envoy. Pass-through answers (GET /v1/models) were relayed unread before."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from fake_provider import Scripted
from harness import Stack

pytestmark = pytest.mark.e2e

PROVIDER_KEY = "sk-echo-provider-4f2a9c"
GUARD_KEY = "sk-echo-guard-81be07"
SECRETS = (PROVIDER_KEY, GUARD_KEY)


def config(port: int) -> str:
    return f"""
providers:
- {{name: qwen, type: qwen, api_tokens: [{PROVIDER_KEY}], default_model: qwen-turbo}}
routes:
- name: chat
  match: {{hosts: [api.test]}}
  provider: qwen
  processors:
  - llm_guard: {{host: 127.0.0.1, port: {port}, tls: false, path: /guard/v1/chat/completions, api_key: {GUARD_KEY}}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("echo"), config) as s:
        yield s


def _echo_headers() -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-echo-authorization": f"Bearer {PROVIDER_KEY}",
        "x-echo-guard": f"key={GUARD_KEY}",
    }


def _assert_clean(r: httpx.Response) -> None:
    blob = r.text + json.dumps(dict(r.headers))
    for secret in SECRETS:
        assert secret not in blob, (r.status_code, blob)
    assert r.headers["x-echo-authorization"] == "Bearer [redacted]"
    assert r.headers["x-echo-guard"] == "key=[redacted]"


def _chat_answer(text: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "created": 1,
            "model": "qwen-turbo",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


def test_pass_through_listing(stack: Stack) -> None:
    body = json.dumps(
        {"object": "list", "data": [{"id": "qwen-turbo", "owned_by": PROVIDER_KEY, "g": GUARD_KEY}]}
    ).encode()
    stack.fake.script("/models", Scripted(200, body, _echo_headers()))
    r = httpx.get(f"{stack.url}/v1/models", headers={"host": "api.test"}, timeout=15)
    assert r.status_code == 200, r.text
    _assert_clean(r)
    assert r.json()["data"][0]["owned_by"] == "[redacted]"
    assert r.json()["data"][0]["id"] == "qwen-turbo"  # the rest is the provider's own


def test_pass_through_error(stack: Stack) -> None:
    body = json.dumps({"error": {"message": f"key {PROVIDER_KEY} not allowed"}}).encode()
    stack.fake.script("/models", Scripted(404, body, _echo_headers()))
    r = httpx.get(f"{stack.url}/v1/models/x", headers={"host": "api.test"}, timeout=15)
    assert r.status_code == 404
    _assert_clean(r)


def test_chat_answer(stack: Stack) -> None:
    text = f"the key is {PROVIDER_KEY} and the guard's is {GUARD_KEY}"
    stack.fake.script(
        "/compatible-mode/v1/chat/completions", Scripted(200, _chat_answer(text), _echo_headers())
    )
    r = httpx.post(
        f"{stack.url}/v1/chat/completions",
        headers={"host": "api.test"},
        json={"messages": [{"role": "user", "content": "hi"}]},
        timeout=15,
    )
    assert r.status_code == 200, r.text
    _assert_clean(r)
    assert "[redacted]" in r.json()["choices"][0]["message"]["content"]


def test_chat_stream(stack: Stack) -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "qwen-turbo",
        "choices": [
            {"index": 0, "delta": {"content": f"key {PROVIDER_KEY}"}, "finish_reason": None}
        ],
    }
    sse = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    headers = {**_echo_headers(), "content-type": "text/event-stream"}
    stack.fake.script("/compatible-mode/v1/chat/completions", Scripted(200, sse, headers))
    r = httpx.post(
        f"{stack.url}/v1/chat/completions",
        headers={"host": "api.test"},
        json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
        timeout=15,
    )
    assert r.status_code == 200, r.text
    _assert_clean(r)
    assert "[redacted]" in r.text


def test_chat_error(stack: Stack) -> None:
    body = json.dumps({"error": {"message": f"bad key {PROVIDER_KEY}", "type": "x"}}).encode()
    stack.fake.script("/compatible-mode/v1/chat/completions", Scripted(500, body, _echo_headers()))
    r = httpx.post(
        f"{stack.url}/v1/chat/completions",
        headers={"host": "api.test"},
        json={"messages": [{"role": "user", "content": "hi"}]},
        timeout=15,
    )
    assert r.status_code == 500
    _assert_clean(r)
