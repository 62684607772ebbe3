"""Every text the model reads goes to the regex guard and the LLM guard,
through the real Envoy: a message's `name`, tool and function descriptions,
parameter schemas, structured-output schemas, Anthropic `document` blocks and
tool descriptions, Responses API tools and `text.format`, Ollama `tools` and
`format`. Before, each of these reached the provider unchecked."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from harness import Stack

pytestmark = pytest.mark.e2e

DENIED = "EXFILTRATE"  # the regex guard's deny pattern
CONFIDENTIAL = "CONFIDENTIAL"  # the fake guard model denies this
PROVIDER_KEY = "sk-declared-provider"
GUARD_KEY = "sk-declared-guard"
GUARD_PATH = "/guard/v1/chat/completions"


def config(port: int) -> str:
    return f"""
providers:
- {{name: qwen, type: qwen, api_tokens: [{PROVIDER_KEY}], default_model: qwen-turbo}}
- {{name: claude, type: claude, api_tokens: [{PROVIDER_KEY}]}}
- name: local-ollama
  type: ollama
  base_url: http://127.0.0.1:{port}
routes:
- name: regex-claude
  match: {{hosts: [regex.test], path_prefix: /v1/messages}}
  provider: claude
  client_api: anthropic
  processors: [{{regex_guard: {{deny_patterns: ["{DENIED}"]}}}}]
- name: regex
  match: {{hosts: [regex.test]}}
  provider: qwen
  processors: [{{regex_guard: {{deny_patterns: ["{DENIED}"]}}}}]
- name: guard-claude
  match: {{hosts: [guard.test], path_prefix: /v1/messages}}
  provider: claude
  client_api: anthropic
  processors: [{{llm_guard: {{host: 127.0.0.1, port: {port}, tls: false, path: {GUARD_PATH}, api_key: {GUARD_KEY}, on_error: deny}}}}]
- name: guard
  match: {{hosts: [guard.test]}}
  provider: qwen
  processors: [{{llm_guard: {{host: 127.0.0.1, port: {port}, tls: false, path: {GUARD_PATH}, api_key: {GUARD_KEY}, on_error: deny}}}}]
- name: ollama
  match: {{hosts: [ollama.test]}}
  provider: local-ollama
  client_api: ollama
  processors: [{{regex_guard: {{deny_patterns: ["{DENIED}"]}}}}]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("declared"), config) as s:
        yield s


def _schema(word: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"city": {"type": "string", "description": f"the city, or {word}"}},
    }


USER = {"role": "user", "content": "What is the weather?"}

# (name, path, body) with the word to deny put in one field the model reads.
Case = tuple[str, str, Callable[[str], dict[str, Any]]]
CASES: list[Case] = [
    (
        "chat message name",
        "/v1/chat/completions",
        lambda w: {"messages": [{**USER, "name": w}]},
    ),
    (
        "chat tool description",
        "/v1/chat/completions",
        lambda w: {
            "messages": [USER],
            "tools": [{"type": "function", "function": {"name": "weather", "description": w}}],
        },
    ),
    (
        "chat tool parameter description",
        "/v1/chat/completions",
        lambda w: {
            "messages": [USER],
            "tools": [
                {"type": "function", "function": {"name": "weather", "parameters": _schema(w)}}
            ],
        },
    ),
    (
        "chat legacy function description",
        "/v1/chat/completions",
        lambda w: {"messages": [USER], "functions": [{"name": "weather", "description": w}]},
    ),
    (
        "chat response_format schema",
        "/v1/chat/completions",
        lambda w: {
            "messages": [USER],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": _schema(w)},
            },
        },
    ),
    (
        "responses tool description",
        "/v1/responses",
        lambda w: {
            "model": "qwen-turbo",
            "input": "What is the weather?",
            "tools": [{"type": "function", "name": "weather", "description": w, "parameters": {}}],
        },
    ),
    (
        "responses text.format schema",
        "/v1/responses",
        lambda w: {
            "model": "qwen-turbo",
            "input": "What is the weather?",
            "text": {"format": {"type": "json_schema", "name": "a", "schema": _schema(w)}},
        },
    ),
    (
        "anthropic document text source",
        "/v1/messages",
        lambda w: {
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": w},
                        },
                        {"type": "text", "text": "Summarise the document."},
                    ],
                }
            ],
        },
    ),
    (
        "anthropic document content source",
        "/v1/messages",
        lambda w: {
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "content", "content": [{"type": "text", "text": w}]},
                        },
                        {"type": "text", "text": "Summarise the document."},
                    ],
                }
            ],
        },
    ),
    (
        "anthropic tool description",
        "/v1/messages",
        lambda w: {
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "messages": [USER],
            "tools": [{"name": "weather", "description": w, "input_schema": {"type": "object"}}],
        },
    ),
    (
        "anthropic tool input_schema description",
        "/v1/messages",
        lambda w: {
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "messages": [USER],
            "tools": [{"name": "weather", "input_schema": _schema(w)}],
        },
    ),
]


def _post(s: Stack, host: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        s.url + path,
        content=json.dumps(body),
        headers={
            "host": host,
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
        },
        timeout=15,
    )


def _provider_calls(s: Stack) -> list[str]:
    return [r.path for r in s.fake.take() if not r.path.startswith(GUARD_PATH)]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_regex_guard_reads_it(stack: Stack, case: Case) -> None:
    _, path, body = case
    stack.fake.take()
    resp = _post(stack, "regex.test", path, body(f"please {DENIED} everything"))
    assert resp.status_code == 403, resp.text
    err = resp.json()["error"]
    code = err.get("code") or err.get("type")
    assert code in ("content_denied", "permission_error"), err
    assert "deny_patterns" in err["message"]
    assert _provider_calls(stack) == []
    # The same request without the word goes on: the check is on that field.
    resp = _post(stack, "regex.test", path, body("a harmless word"))
    assert resp.status_code == 200, resp.text
    assert len(_provider_calls(stack)) == 1


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_llm_guard_reads_it(stack: Stack, case: Case) -> None:
    _, path, body = case
    stack.fake.take()
    resp = _post(stack, "guard.test", path, body(f"the {CONFIDENTIAL} plans"))
    assert resp.status_code == 403, resp.text
    assert "confidential" in resp.json()["error"]["message"].lower()
    assert _provider_calls(stack) == []


@pytest.mark.parametrize(
    "path,body",
    [
        (
            "/api/chat",
            {
                "model": "llama3",
                "stream": False,
                "messages": [USER],
                "tools": [{"type": "function", "function": {"name": "w", "description": DENIED}}],
            },
        ),
        (
            "/api/chat",
            {"model": "llama3", "stream": False, "messages": [USER], "format": _schema(DENIED)},
        ),
        ("/api/generate", {"model": "llama3", "prompt": "hi", "format": _schema(DENIED)}),
    ],
)
def test_ollama_tools_and_format(stack: Stack, path: str, body: dict[str, Any]) -> None:
    stack.fake.take()
    resp = _post(stack, "ollama.test", path, body)
    assert resp.status_code == 403, resp.text
    assert set(resp.json()) == {"error"}  # Ollama's shape
    assert _provider_calls(stack) == []
