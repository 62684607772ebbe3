"""Each provider type through the real Envoy: the fake upstream sees exactly
the path, host, key and body that provider expects; the client gets OpenAI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from extproc.streaming.sse import SSEDecoder
from harness import Stack
from support import provider_routes

pytestmark = pytest.mark.e2e

CLIENT_KEY = "sk-client-own-key-NOT-FOR-UPSTREAM"

CONFIG = (
    """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen-e2e]}
- {name: deepseek, type: deepseek, host: deepseek.fake, api_tokens: [sk-qwen-e2e],
   default_model: deepseek-chat, model_mapping: {"gpt-4o": "deepseek-reasoner"}}
- name: azure
  type: azure
  host: myres.openai.azure.com
  api_tokens: [az-key-e2e]
  options: {deployment: gpt4o-prod, api_version: "2024-06-01"}
- {name: claude, type: claude, api_tokens: [sk-ant-e2e], default_model: claude-sonnet-4}
- {name: gemini, type: gemini, api_tokens: [g-key-e2e], default_model: gemini-2.0-flash}
- {name: ollama, type: ollama, base_url: "http://ollama.fake:11434", default_model: llama3.2}
routes:
"""
    + provider_routes("qwen", "deepseek", "azure", "claude", "gemini", "ollama")
    + """
---
apiVersion: istio.alibabacloud.com/v1beta1
kind: LLMProvider
metadata: {name: dashscope-qwen}
spec:
  host: dashscope.aliyuncs.com
  path: /compatible-mode/v1/chat/completions
  configs:
    defaultConfig:
      openAIConfig: {model: qwen-turbo, stream: false, apiKey: sk-asm-default}
    routeSpecificConfigs:
      vip:
        openAIConfig: {model: qwen-max, stream: false, apiKey: sk-asm-vip}
---
apiVersion: istio.alibabacloud.com/v1beta1
kind: LLMRoute
metadata: {name: test-llm-route}
spec:
  host: test.com
  rules:
  - name: vip
    matches:
    - headers:
        user-type: {exact: subscriber}
    backendRefs:
    - providerHost: dashscope.aliyuncs.com
  - backendRefs:
    - providerHost: dashscope.aliyuncs.com
"""
)

KEYS: dict[str, Any] = {
    "openai": {"sk-qwen-e2e", "sk-asm-default", "sk-asm-vip"},
    "claude": "sk-ant-e2e",
    "gemini": "g-key-e2e",
    "azure": "az-key-e2e",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("providers"), CONFIG, fake_keys=KEYS) as s:
        yield s


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    stack.fake.take()
    with httpx.Client(base_url=stack.url, timeout=15) as c:
        yield c


MSGS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Please introduce yourself"},
]


def post(
    c: httpx.Client, host: str, body: Any, path: str = "/v1/chat/completions", **headers: str
) -> httpx.Response:
    return c.post(
        path,
        content=json.dumps(body).encode(),
        headers={
            "host": host,
            "content-type": "application/json",
            "authorization": f"Bearer {CLIENT_KEY}",
            **headers,
        },
    )


def sse(c: httpx.Client, host: str, body: Any) -> list[Any]:
    r = post(c, host, body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/event-stream"
    return [
        "[DONE]" if e.data == "[DONE]" else json.loads(e.data) for e in SSEDecoder().feed(r.content)
    ]


def text(events: list[Any]) -> str:
    return "".join(
        c["delta"].get("content") or "" for e in events if isinstance(e, dict) for c in e["choices"]
    )


def only_record(stack: Stack) -> Any:
    recs = stack.fake.take()
    assert len(recs) == 1, [(r.path, r.headers.get("host")) for r in recs]
    rec = recs[0]
    # The client's own key never reaches a provider, in any header.
    assert CLIENT_KEY not in json.dumps(rec.headers)
    return rec


def assert_chat_completion(r: httpx.Response, content: str) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["role"] == "assistant"
    assert out["choices"][0]["message"]["content"] == content
    assert out["choices"][0]["finish_reason"] == "stop"
    return out


def access_line(stack: Stack, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [ln for ln in stack.access_lines() if needle in ln]
        if lines:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError(f"no access log line with {needle!r}")


# ---------------------------------------------------------------- OpenAI-compatible


def test_qwen(stack: Stack, client: httpx.Client) -> None:
    body = {"model": "qwen-plus", "messages": MSGS}
    r = post(client, "qwen.test", body)
    out = assert_chat_completion(
        r, "Hello from the fake provider. model=qwen-plus last_user=Please introduce yourself"
    )
    assert out["usage"]["total_tokens"] == 18
    assert r.headers["x-llm-provider"] == "qwen"
    rec = only_record(stack)
    assert rec.path == "/compatible-mode/v1/chat/completions"
    assert rec.headers["host"] == "dashscope.aliyuncs.com"
    assert rec.headers["authorization"] == "Bearer sk-qwen-e2e"
    assert rec.json() == body  # untouched


def test_deepseek_model_mapping_and_stream(stack: Stack, client: httpx.Client) -> None:
    r = post(client, "deepseek.test", {"model": "gpt-4o", "messages": MSGS})
    assert_chat_completion(
        r,
        "Hello from the fake provider. model=deepseek-reasoner last_user=Please introduce yourself",
    )
    rec = only_record(stack)
    assert rec.path == "/chat/completions" and rec.headers["host"] == "deepseek.fake"
    assert rec.json()["model"] == "deepseek-reasoner"
    evs = sse(client, "deepseek.test", {"messages": MSGS, "stream": True})
    assert evs[-1] == "[DONE]"
    assert text(evs).startswith("Hello from the fake provider. model=deepseek-chat")
    assert only_record(stack).json()["stream"] is True


# ---------------------------------------------------------------- Azure


def test_azure(stack: Stack, client: httpx.Client) -> None:
    r = post(client, "azure.test", {"messages": MSGS})
    assert_chat_completion(
        r, "Hello from the fake provider. model=None last_user=Please introduce yourself"
    )
    rec = only_record(stack)
    assert rec.path == "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01"
    assert rec.headers["host"] == "myres.openai.azure.com"
    assert rec.headers["api-key"] == "az-key-e2e"
    assert "authorization" not in rec.headers
    assert rec.json() == {"messages": MSGS}
    evs = sse(client, "azure.test", {"messages": MSGS, "stream": True})
    assert evs[-1] == "[DONE]" and text(evs).startswith("Hello from the fake provider.")
    assert not [e for e in evs if isinstance(e, dict) and e.get("usage")]
    assert only_record(stack).json()["stream_options"] == {"include_usage": True}


# ---------------------------------------------------------------- Claude


def test_claude(stack: Stack, client: httpx.Client) -> None:
    r = post(client, "claude.test", {"messages": MSGS, "max_tokens": 64})
    out = assert_chat_completion(
        r,
        "Hello from fake Claude. model=claude-sonnet-4 system=True "
        "last_user=Please introduce yourself",
    )
    assert out["usage"]["prompt_tokens"] == 12 and out["usage"]["completion_tokens"] == 9
    assert r.headers["x-llm-provider"] == "claude"
    rec = only_record(stack)
    assert rec.path == "/v1/messages" and rec.headers["host"] == "api.anthropic.com"
    assert rec.headers["x-api-key"] == "sk-ant-e2e"
    assert rec.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in rec.headers
    assert rec.json() == {
        "model": "claude-sonnet-4",
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Please introduce yourself"}]}
        ],
        "max_tokens": 64,
    }
    line = access_line(stack, "route=r-claude")
    assert "total_tokens=21" in line and "provider=claude" in line


def test_claude_stream(stack: Stack, client: httpx.Client) -> None:
    evs = sse(client, "claude.test", {"messages": MSGS, "stream": True})
    assert evs[-1] == "[DONE]"
    assert text(evs).startswith("Hello from fake Claude. model=claude-sonnet-4")
    assert all(e["object"] == "chat.completion.chunk" for e in evs[:-1])
    assert only_record(stack).json()["stream"] is True


# ---------------------------------------------------------------- Gemini


def test_gemini(stack: Stack, client: httpx.Client) -> None:
    r = post(client, "gemini.test", {"model": "gemini-1.5-pro", "messages": MSGS})
    out = assert_chat_completion(r, "Hello from fake Gemini. model=gemini-1.5-pro")
    assert out["usage"]["total_tokens"] == 16
    rec = only_record(stack)
    assert rec.path == "/v1beta/models/gemini-1.5-pro:generateContent"
    assert rec.headers["host"] == "generativelanguage.googleapis.com"
    assert rec.headers["x-goog-api-key"] == "g-key-e2e"
    assert "authorization" not in rec.headers
    assert rec.json() == {
        "contents": [{"role": "user", "parts": [{"text": "Please introduce yourself"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }


def test_gemini_stream(stack: Stack, client: httpx.Client) -> None:
    evs = sse(client, "gemini.test", {"messages": MSGS, "stream": True})
    assert evs[-1] == "[DONE]"
    assert text(evs) == "Hello from fake Gemini. model=gemini-2.0-flash"
    rec = only_record(stack)
    assert rec.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"


# ---------------------------------------------------------------- Ollama


def test_ollama(stack: Stack, client: httpx.Client) -> None:
    r = post(client, "ollama.test", {"messages": MSGS, "temperature": 0.5})
    out = assert_chat_completion(
        r, "Hello from fake Ollama. model=llama3.2 last_user=Please introduce yourself"
    )
    assert out["usage"]["prompt_tokens"] == 8 and out["usage"]["completion_tokens"] == 5
    rec = only_record(stack)
    assert rec.path == "/api/chat" and rec.headers["host"] == "ollama.fake:11434"
    assert "authorization" not in rec.headers  # no token configured, the client's removed
    assert rec.json() == {
        "model": "llama3.2",
        "messages": MSGS,
        "stream": False,
        "options": {"temperature": 0.5},
    }


def test_ollama_stream(stack: Stack, client: httpx.Client) -> None:
    evs = sse(client, "ollama.test", {"messages": MSGS, "stream": True})
    assert evs[-1] == "[DONE]"
    assert text(evs) == "Hello from fake Ollama. model=llama3.2 last_user=Please introduce yourself"
    assert only_record(stack).json()["stream"] is True


# ---------------------------------------------------------------- ASM resources


def test_asm_seed_walkthrough(stack: Stack, client: httpx.Client) -> None:
    """README's walkthrough: the client sends only messages to test.com."""
    r = client.post(
        "/",
        headers={"host": "test.com"},
        content=b'{"messages":[{"role":"user","content":"Please introduce yourself"}]}',
    )
    assert_chat_completion(
        r, "Hello from the fake provider. model=qwen-turbo last_user=Please introduce yourself"
    )
    rec = only_record(stack)
    assert rec.headers["host"] == "dashscope.aliyuncs.com"
    assert rec.path == "/compatible-mode/v1/chat/completions"
    assert rec.headers["authorization"] == "Bearer sk-asm-default"
    assert rec.json() == {
        "messages": [{"role": "user", "content": "Please introduce yourself"}],
        "model": "qwen-turbo",
    }


def test_asm_header_match_picks_route_specific_config(stack: Stack, client: httpx.Client) -> None:
    r = client.post(
        "/",
        headers={"host": "test.com", "user-type": "subscriber"},
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert_chat_completion(r, "Hello from the fake provider. model=qwen-max last_user=hi")
    rec = only_record(stack)
    assert rec.headers["authorization"] == "Bearer sk-asm-vip"
    assert rec.json()["model"] == "qwen-max"
    # Another header value falls through to the default rule.
    r = client.post(
        "/",
        headers={"host": "test.com", "user-type": "guest"},
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200
    assert only_record(stack).headers["authorization"] == "Bearer sk-asm-default"


# ---------------------------------------------------------------- embeddings


def test_embeddings_openai_compatible(stack: Stack, client: httpx.Client) -> None:
    body = {"model": "text-embedding-v3", "input": ["a", "b"]}
    r = post(client, "qwen.test", body, path="/v1/embeddings")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "list" and len(out["data"]) == 2
    rec = only_record(stack)
    assert rec.path == "/compatible-mode/v1/embeddings"
    assert rec.headers["authorization"] == "Bearer sk-qwen-e2e"
    assert rec.json() == body
    assert "total_tokens=4" in access_line(stack, "/v1/embeddings")


def test_embeddings_ollama_translated(stack: Stack, client: httpx.Client) -> None:
    r = post(client, "ollama.test", {"model": "nomic", "input": "hello"}, path="/v1/embeddings")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "list" and out["data"][0]["embedding"] == [0.1, 0.2, 0.3]
    assert out["usage"]["prompt_tokens"] == 4
    rec = only_record(stack)
    assert rec.path == "/api/embed" and rec.json() == {"model": "nomic", "input": ["hello"]}


def test_embeddings_gemini_translated(stack: Stack, client: httpx.Client) -> None:
    r = post(
        client,
        "gemini.test",
        {"model": "text-embedding-004", "input": ["x", "y"]},
        "/v1/embeddings",
    )
    assert r.status_code == 200, r.text
    assert [d["embedding"] for d in r.json()["data"]] == [[0.1, 0.2, 0.3]] * 2
    rec = only_record(stack)
    assert rec.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert rec.headers["x-goog-api-key"] == "g-key-e2e"
    assert [q["content"]["parts"][0]["text"] for q in rec.json()["requests"]] == ["x", "y"]


# ---------------------------------------------------------------- errors


def test_provider_rejects_key_error_is_openai_shape(stack: Stack, client: httpx.Client) -> None:
    """Gemini refuses the key: its error comes back in OpenAI's shape, message kept."""
    stack.fake.keys["gemini"] = "another-key"
    try:
        r = post(client, "gemini.test", {"messages": MSGS})
    finally:
        stack.fake.keys["gemini"] = "g-key-e2e"
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["message"] == "API key not valid." and err["code"] == "INVALID_ARGUMENT"
    assert err["type"] == "invalid_request_error"
