"""Issue #11 through the real Envoy, with the official openai and ollama clients:
every text the model reads is checked, unreadable content is a 400, a Host
with a port is matched, and the ollama client authenticates with Bearer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ollama
import openai
import pytest

from harness import Stack

KEY = "sk-e2e-harden-PROVIDER-SECRET"
PROXY_KEY = "e2e-harden-consumer-SECRET"
DENIED = "我的账号是多少"
CONFIG = f"""
hosts: ["test.com"]
api_key: "{KEY}"
deny_patterns: [".*账号.*"]
default_model: qwen-turbo
---
providers:
- {{name: local-ollama, type: ollama, base_url: "http://127.0.0.1:@FAKE_PORT@"}}
routes:
- name: ollama
  match: {{hosts: ["127.0.0.1"]}}      # any port: the Ollama listener's
  provider: local-ollama
  client_api: ollama
  processors: [{{regex_guard: {{deny_patterns: [".*账号.*"]}}}}]
  auth: {{required: true, key_sources: ["body:key", "authorization"]}}
consumers:
- {{name: ollama-user, keys: ["{PROXY_KEY}"]}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("harden"), CONFIG, fake_keys={"openai": KEY}) as s:
        yield s


def oai(stack: Stack, host: str = "test.com") -> openai.OpenAI:
    # The client's own key is not the provider's: the gateway replaces it.
    return openai.OpenAI(
        api_key="client-side-key",
        base_url=f"{stack.url}/v1",
        default_headers={"Host": host},
        max_retries=0,
        timeout=15,
    )


def ol(stack: Stack, key: str | None = PROXY_KEY) -> ollama.Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return ollama.Client(
        host=f"http://127.0.0.1:{stack.ollama_listener}", headers=headers, timeout=15
    )


@pytest.mark.parametrize("role", ["system", "assistant", "developer"])
def test_openai_client_denied_text_in_any_role_is_403(stack: Stack, role: str) -> None:
    stack.fake.take()
    msgs: Any = [{"role": role, "content": DENIED}, {"role": "user", "content": "hi"}]
    with pytest.raises(openai.PermissionDeniedError) as e:
        oai(stack).chat.completions.create(model="qwen-turbo", messages=msgs)
    assert e.value.status_code == 403 and e.value.code == "content_denied"
    assert stack.fake.take() == []


def test_openai_client_denied_tool_call_arguments_and_text_parts(stack: Stack) -> None:
    stack.fake.take()
    bodies: list[Any] = [
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": f'{{"q": "{DENIED}"}}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "look"}, {"type": "text", "text": DENIED}],
            }
        ],
    ]
    for msgs in bodies:
        with pytest.raises(openai.PermissionDeniedError):
            oai(stack).chat.completions.create(model="qwen-turbo", messages=msgs)
    with pytest.raises(openai.PermissionDeniedError):
        oai(stack).embeddings.create(model="text-embedding-v3", input=["fine", DENIED])
    with pytest.raises(openai.PermissionDeniedError):
        oai(stack).completions.create(model="qwen-turbo", prompt=DENIED)
    assert stack.fake.take() == []


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (5, "messages[0].content"),
        ([{"type": "hologram", "data": DENIED}], "messages[0].content[0].type"),
    ],
)
def test_openai_client_unreadable_content_is_400_never_forwarded(
    stack: Stack, content: Any, field: str
) -> None:
    stack.fake.take()
    with pytest.raises(openai.BadRequestError) as e:
        oai(stack).chat.completions.create(
            model="qwen-turbo", messages=[{"role": "user", "content": content}]
        )
    assert e.value.status_code == 400 and e.value.code == "invalid_content"
    assert isinstance(e.value.body, dict)
    assert e.value.body["message"].startswith(field + ": ")
    assert stack.fake.take() == []


def test_host_with_a_port_is_matched(stack: Stack) -> None:
    stack.fake.take()
    host = f"TEST.com:{stack.listener}"
    r = oai(stack, host).chat.completions.create(
        model="qwen-turbo", messages=[{"role": "user", "content": "hello"}]
    )
    assert r.object == "chat.completion"
    (seen,) = stack.fake.take()
    assert seen.headers["authorization"] == f"Bearer {KEY}"  # processed: key injected
    with pytest.raises(openai.PermissionDeniedError):
        oai(stack, host).chat.completions.create(
            model="qwen-turbo", messages=[{"role": "user", "content": DENIED}]
        )
    assert stack.fake.take() == []


def test_ollama_client_authenticates_with_bearer(stack: Stack) -> None:
    stack.fake.take()
    r = ol(stack).chat(
        model="llama3", messages=[{"role": "user", "content": "Hello!"}], stream=False
    )
    assert r.message.content and "Hello from fake Ollama" in r.message.content
    g = ol(stack).generate(model="llama3", prompt="Why is the sky blue?", stream=False)
    assert "Why is the sky blue" in g.response
    chunks = list(
        ol(stack).chat(model="llama3", messages=[{"role": "user", "content": "Hi"}], stream=True)
    )
    assert chunks[-1].done
    seen = stack.fake.take()
    assert [s.path for s in seen] == ["/api/chat", "/api/generate", "/api/chat"]
    for s in seen:
        assert "authorization" not in s.headers and PROXY_KEY.encode() not in s.body
        assert "key" not in s.json()


@pytest.mark.parametrize("key", [None, "wrong"])
def test_ollama_client_bad_key_gets_the_seeds_401(stack: Stack, key: str | None) -> None:
    stack.fake.take()
    with pytest.raises(ollama.ResponseError) as e:
        ol(stack, key).chat(
            model="llama3", messages=[{"role": "user", "content": "Hi"}], stream=False
        )
    assert e.value.status_code == 401
    assert e.value.error == "Invalid or missing API key"
    assert stack.fake.take() == []


def test_ollama_client_denied_system_text_and_unreadable_content(stack: Stack) -> None:
    stack.fake.take()
    with pytest.raises(ollama.ResponseError) as e:
        ol(stack).generate(model="llama3", prompt="hi", system=DENIED, stream=False)
    assert e.value.status_code == 403
    with pytest.raises(ollama.ResponseError) as e:
        ol(stack).generate(model="llama3", prompt="hi", context=[1, 2, 3], stream=False)
    assert e.value.status_code == 400 and e.value.error.startswith("context[0]: ")
    assert stack.fake.take() == []


def test_no_secret_in_logs(stack: Stack) -> None:
    text = stack.logs() + "\n".join(stack.access_lines())
    assert KEY not in text and PROXY_KEY not in text
