"""The ASM wasm llm-proxy plugin's behaviour, through the real Envoy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness import Stack

KEY = "sk-e2e-plugin-SECRET"
CONFIG = f"""
hosts: ["dashscope.aliyuncs.com", "plugin.test:8080"]
api_key: "{KEY}"
allow_patterns: []
deny_patterns: [".*账号.*"]
default_model: qwen-turbo
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("plugin"), CONFIG, fake_keys={"openai": KEY}) as s:
        yield s


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    stack.fake.take()
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


def post(
    c: httpx.Client,
    host: str,
    body: bytes,
    path: str = "/compatible-mode/v1/chat/completions",
    **headers: str,
) -> httpx.Response:
    return c.post(
        path, content=body, headers={"host": host, "content-type": "application/json", **headers}
    )


def test_key_injected_model_filled_and_usage_logged(stack: Stack, client: httpx.Client) -> None:
    body = b'{"messages":[{"role":"user","content":"Please introduce yourself"}]}'
    r = post(client, "dashscope.aliyuncs.com", body, authorization="Bearer the-clients-own-key")
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion"
    (seen,) = stack.fake.take()
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.headers["host"] == "dashscope.aliyuncs.com"
    assert seen.path == "/compatible-mode/v1/chat/completions"
    assert seen.json() == {
        "messages": [{"role": "user", "content": "Please introduce yourself"}],
        "model": "qwen-turbo",
    }
    assert int(seen.headers["content-length"]) == len(seen.body)


def test_host_with_port_in_the_list(stack: Stack, client: httpx.Client) -> None:
    r = post(
        client, "plugin.test:8080", b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    )
    assert r.status_code == 200, r.text
    (seen,) = stack.fake.take()
    assert seen.headers["authorization"] == f"Bearer {KEY}"


def test_unchanged_body_reaches_the_provider_byte_identical(
    stack: Stack, client: httpx.Client
) -> None:
    body = b'{ "model" : "qwen-max",\n  "messages": [ {"role":"user","content":"hi"} ] }'
    r = post(client, "dashscope.aliyuncs.com", body)
    assert r.status_code == 200
    (seen,) = stack.fake.take()
    assert seen.body == body


def test_denied_prompt_gets_403_and_never_reaches_the_provider(
    stack: Stack, client: httpx.Client
) -> None:
    body = json.dumps(
        {"messages": [{"role": "user", "content": "我的账号是什么"}]}, ensure_ascii=False
    ).encode()
    r = post(client, "dashscope.aliyuncs.com", body)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "content_denied"
    assert r.headers["content-type"] == "application/json"
    assert stack.fake.take() == []
    assert KEY not in r.text


def test_unlisted_host_passes_through_untouched(stack: Stack, client: httpx.Client) -> None:
    body = b"anything at all, not even JSON"
    r = client.post(
        "/some/path?q=1",
        content=body,
        headers={"host": "other.example", "authorization": "Bearer mine"},
    )
    assert r.status_code == 200
    (seen,) = stack.fake.take()
    assert seen.path == "/some/path?q=1"
    assert seen.headers["host"] == "other.example"
    assert seen.headers["authorization"] == "Bearer mine"
    assert seen.body == body


@pytest.mark.parametrize(
    ("body", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "empty_body"),
        (b'{"model":"m"}', "application/json", 400, "missing_messages"),
        (b'{"messages":{"role":"user"}}', "application/json", 400, "invalid_messages"),
        (b"hello", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_bad_input_gets_a_clear_error_and_nothing_goes_upstream(
    stack: Stack, client: httpx.Client, body: bytes, ctype: str, status: int, code: str
) -> None:
    r = client.post(
        "/v1/chat/completions",
        content=body,
        headers={"host": "dashscope.aliyuncs.com", "content-type": ctype},
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert stack.fake.take() == []


def test_body_over_envoys_buffer_limit_is_413(stack: Stack, client: httpx.Client) -> None:
    big = json.dumps({"messages": [{"role": "user", "content": "x" * (2 << 20)}]}).encode()
    r = post(client, "dashscope.aliyuncs.com", big)
    assert r.status_code == 413
    assert stack.fake.take() == []


def test_streaming_request_streams_back(stack: Stack, client: httpx.Client) -> None:
    body = b'{"stream":true,"messages":[{"role":"user","content":"Tell me a story"}]}'
    with client.stream(
        "POST", "/v1/chat/completions", content=body, headers={"host": "dashscope.aliyuncs.com"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c.get("usage") is None for c in chunks)  # the client did not ask for usage
    (seen,) = stack.fake.take()
    assert seen.json()["stream_options"] == {"include_usage": True}  # we asked, for metering


def test_access_log_carries_token_counts(stack: Stack, client: httpx.Client) -> None:
    post(client, "dashscope.aliyuncs.com", b'{"messages":[{"role":"user","content":"count me"}]}')
    import time

    for _ in range(50):
        lines = [ln for ln in stack.access_lines() if "count" not in ln and "total_tokens=18" in ln]
        if lines:
            break
        time.sleep(0.1)
    assert lines, stack.access_lines()[-3:]
    assert "provider=plugin-0" in lines[-1] and "input_tokens=11" in lines[-1]


def test_secrets_absent_from_logs(stack: Stack) -> None:
    text = (
        stack.logs()
        + Path(stack.envoy_log).read_text(errors="replace")
        + "\n".join(stack.access_lines())
    )
    assert KEY not in text
