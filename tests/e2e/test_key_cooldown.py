"""One client cannot take a provider key out for everyone: a content-policy
403 does not cool the key, so the next request (any client's) still goes;
a 403 whose body is the provider's auth error type, or a 401, does.
Through the real Envoy; before, every 403 cooled the key for 60 s."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from fake_provider import Scripted
from harness import Stack

pytestmark = pytest.mark.e2e

KEY = "sk-cool-provider-5d1e"
CONFIG = f"""
providers:
- {{name: qwen, type: qwen, api_tokens: [{KEY}], default_model: qwen-turbo}}
- {{name: claude, type: claude, api_tokens: [{KEY}-claude]}}
routes:
- name: messages
  match: {{hosts: [api.test], path_prefix: /v1/messages}}
  provider: claude
  client_api: anthropic
- name: chat
  match: {{hosts: [api.test]}}
  provider: qwen
"""
CONTENT_403 = {
    "error": {
        "message": "Your request was rejected as a result of our safety system.",
        "type": "content_policy_violation",
    }
}
KEY_403 = {"type": "error", "error": {"type": "permission_error", "message": "key not allowed"}}


@pytest.fixture
def stack(tmp_path: object) -> Iterator[Stack]:
    with Stack(tmp_path, CONFIG) as s:  # type: ignore[arg-type]
        yield s


def _chat(s: Stack) -> httpx.Response:
    return httpx.post(
        f"{s.url}/v1/chat/completions",
        headers={"host": "api.test"},
        json={"messages": [{"role": "user", "content": "hi"}]},
        timeout=15,
    )


def _messages(s: Stack) -> httpx.Response:
    return httpx.post(
        f"{s.url}/v1/messages",
        headers={"host": "api.test", "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-x",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=15,
    )


def test_content_policy_403_does_not_cool_the_key(stack: Stack) -> None:
    stack.fake.script("/chat/completions", Scripted(403, json.dumps(CONTENT_403).encode()))
    assert _chat(stack).status_code == 403
    r = _chat(stack)  # the next request: the key is still there
    assert r.status_code == 200, r.text
    # Pass-through paths too: a content 403 on GET does not cool it either.
    stack.fake.script("/models", Scripted(403, json.dumps(CONTENT_403).encode()))
    r = httpx.get(f"{stack.url}/v1/models", headers={"host": "api.test"}, timeout=15)
    assert r.status_code == 403
    assert _chat(stack).status_code == 200


def test_a_403_about_the_key_cools_it(stack: Stack) -> None:
    stack.fake.script("/v1/messages", Scripted(403, json.dumps(KEY_403).encode()))
    assert _messages(stack).status_code == 403
    r = _messages(stack)
    assert r.status_code == 503, r.text  # the only key cools down
    assert r.json()["error"]["type"] in ("overloaded_error", "api_error")
    assert "cooling down" in r.json()["error"]["message"]
    assert KEY not in r.text


def test_a_401_cools_the_key(stack: Stack) -> None:
    body = {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}
    stack.fake.script("/chat/completions", Scripted(401, json.dumps(body).encode()))
    assert _chat(stack).status_code == 401
    assert _chat(stack).status_code == 503
