"""Tried as an attacker would, through the real Envoy: request trailers (HTTP/2),
Host spellings on the Ollama listener, path spellings on a provider's host, and
a route that would shadow another. No such request reaches the provider
without its checks: the fake provider records nothing, or only what a checked
request would have sent."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from harness import Stack

pytestmark = pytest.mark.e2e

CONSUMER_KEY = "ck-attacker-test-77aa"
CLAUDE_KEY = "sk-ant-upstream-sec-e2e"
DENIED = "forbidden-word"

CONFIG = f"""
providers:
- name: claude
  type: claude
  api_tokens: [{CLAUDE_KEY}]
- name: ollama
  type: ollama
  base_url: http://127.0.0.1:11434
routes:
- name: claude-code
  match: {{path_prefix: /v1/messages}}
  provider: claude
  client_api: anthropic
  auth: {{required: true}}
  processors:
  - regex_guard: {{deny_patterns: ["{DENIED}"]}}
- name: ollama
  match: {{hosts: ["localhost", "127.0.0.1", "[::1]"]}}
  provider: ollama
  client_api: ollama
  auth:
    required: true
    key_sources: ["body:key", "authorization"]
consumers:
- name: user
  keys: [{CONSUMER_KEY}]
"""

MESSAGES = {
    "model": "claude-x",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": f"please say {DENIED}"}],
}
CLEAN = {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("security"), CONFIG) as s:
        yield s


@pytest.fixture(autouse=True)
def _drain(stack: Stack) -> None:
    stack.fake.take()


def h2_post(
    port: int, authority: str, path: str, body: bytes, headers: dict[str, str], trailers: bool
) -> tuple[int, bytes]:
    """One HTTP/2 (prior knowledge) POST, with request trailers if asked."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(conn.data_to_send())
        sid = conn.get_next_available_stream_id()
        conn.send_headers(
            sid,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", authority),
                (":path", path),
                ("content-type", "application/json"),
                *headers.items(),
            ],
        )
        conn.send_data(sid, body, end_stream=not trailers)
        if trailers:
            conn.send_headers(sid, [("x-checksum", "abc")], end_stream=True)
        sock.sendall(conn.data_to_send())
        status, out, done = 0, b"", False
        while not done:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    out += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset):
                    done = done or ev.stream_id == sid
            sock.sendall(conn.data_to_send())
    return status, out


def provider_saw(stack: Stack) -> list[Any]:
    return stack.fake.take()


# ---------------------------------------------------------------- trailers


@pytest.mark.parametrize("authority", ["api.anthropic.com", "gateway.example.com"])
def test_trailers_do_not_skip_auth(stack: Stack, authority: str) -> None:
    status, body = h2_post(
        stack.listener, authority, "/v1/messages", json.dumps(CLEAN).encode(), {}, trailers=True
    )
    assert status == 401, body
    assert json.loads(body)["type"] == "error"  # Anthropic's error shape
    assert provider_saw(stack) == []


def test_trailers_do_not_skip_the_deny_check_or_forward_the_consumer_key(stack: Stack) -> None:
    status, body = h2_post(
        stack.listener,
        "api.anthropic.com",
        "/v1/messages",
        json.dumps(MESSAGES).encode(),
        {"x-api-key": CONSUMER_KEY, "anthropic-version": "2023-06-01"},
        trailers=True,
    )
    assert status == 403, body
    assert provider_saw(stack) == []


def test_a_checked_request_with_trailers_still_works(stack: Stack) -> None:
    status, body = h2_post(
        stack.listener,
        "api.anthropic.com",
        "/v1/messages",
        json.dumps(CLEAN).encode(),
        {"x-api-key": CONSUMER_KEY, "anthropic-version": "2023-06-01"},
        trailers=True,
    )
    assert status == 200, body
    (seen,) = provider_saw(stack)
    assert seen.headers["x-api-key"] == CLAUDE_KEY
    assert CONSUMER_KEY not in json.dumps(seen.headers) + seen.body.decode()


def test_trailers_on_the_ollama_listener_need_the_key(stack: Stack) -> None:
    chat = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    status, body = h2_post(
        stack.ollama_listener,
        f"localhost:{stack.ollama_listener}",
        "/api/chat",
        json.dumps(chat).encode(),
        {},
        trailers=True,
    )
    assert status == 401, body
    assert json.loads(body) == {"error": "Invalid or missing API key"}
    assert provider_saw(stack) == []


# ---------------------------------------------------------------- Host spellings


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "localhost",
        "127.0.0.1",
        "[::1]:{port}",
        "localhost.:{port}",
        "LOCALHOST:{port}",
        "127.0.0.1:0{port}",
        "localhost:{port}.",
    ],
)
def test_every_host_spelling_on_the_ollama_listener_needs_the_key(stack: Stack, host: str) -> None:
    chat = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    r = httpx.post(
        f"http://127.0.0.1:{stack.ollama_listener}/api/chat",
        json=chat,
        headers={"host": host.format(port=stack.ollama_listener)},
        timeout=10,
    )
    # A spelling of the route's hosts: the key check; any other host: no route.
    assert r.status_code in (401, 404), r.text
    assert "error" in r.json()
    assert provider_saw(stack) == []


def test_ollama_listener_refuses_other_paths(stack: Stack) -> None:
    r = httpx.post(
        f"http://127.0.0.1:{stack.ollama_listener}/v1/messages",
        json=CLEAN,
        headers={"host": "localhost", "x-api-key": CONSUMER_KEY},
        timeout=10,
    )
    assert r.status_code == 404
    assert provider_saw(stack) == []


# ---------------------------------------------------------------- path spellings


@pytest.mark.parametrize(
    "path",
    [
        "//v1/messages",
        "/v1//messages",
        "/v1/%6Dessages",
        "/v1/./messages",
        "/x/../v1/messages",
        "/V1/messages",
        "/v1%2Fmessages",
        "/v1/messages/../messages",
    ],
)
def test_path_spellings_on_a_provider_host_never_pass_unchecked(stack: Stack, path: str) -> None:
    # raw_path: httpx would normalise some of these itself.
    with httpx.Client(timeout=10) as c:
        req = c.build_request(
            "POST",
            f"{stack.url}/",
            content=json.dumps(MESSAGES).encode(),
            headers={
                "host": "api.anthropic.com",
                "x-api-key": CONSUMER_KEY,
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
            },
        )
        req.url = req.url.copy_with(raw_path=path.encode())
        r = c.send(req)
    # Envoy's normalisation makes some of them /v1/messages (then the deny check
    # answers); llm-extproc refuses the rest. None reaches the provider.
    assert r.status_code in (400, 403, 404), (path, r.status_code, r.text)
    assert provider_saw(stack) == []


def test_unmatched_request_on_a_provider_host_is_refused_in_the_apis_shape(stack: Stack) -> None:
    r = httpx.get(
        f"{stack.url}/v1/models",
        headers={"host": "api.anthropic.com", "x-api-key": CONSUMER_KEY},
        timeout=10,
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_route"
    assert provider_saw(stack) == []
