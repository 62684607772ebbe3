"""Provider fallback through the real Envoy: Envoy retries across provider
clusters, an upstream ext_proc exchange per attempt translates the request for
its provider and injects that provider's key; the client sees one answer."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from extproc.streaming.sse import SSEDecoder
from harness import FALLBACK_ENVOY, Stack, envoy_has_fallback, free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not envoy_has_fallback(),
        reason=f"provider fallback needs Envoy {'.'.join(map(str, FALLBACK_ENVOY))}+ "
        "(the priority_group cluster specifier)",
    ),
]

from fake_provider import Recorded, Scripted  # noqa: E402

QWEN_KEY = "sk-qwen-fallback-1f2e"
CLAUDE_KEY = "sk-ant-fallback-9c8d"
CLIENT_KEY = "ck-fallback-client-5a5a"
QWEN_PATH = "/compatible-mode/v1/chat/completions"
DEAD = free_port()  # nothing listens here: connection refused
# A 429 that says "retry now": the key does not cool down for the later tests.
NOW = {"content-type": "application/json", "retry-after": "0"}

CONFIG = f"""
providers:
- {{name: qwen, type: qwen, api_tokens: [{QWEN_KEY}], default_model: qwen-turbo}}
- name: claude
  type: claude
  api_tokens: [{CLAUDE_KEY}]
  model_mapping: {{"*": claude-3-5-haiku-latest}}
- {{name: gone, type: qwen, host: "127.0.0.1:{DEAD}", api_tokens: [{QWEN_KEY}]}}
- {{name: cooling, type: qwen, api_tokens: [{QWEN_KEY}]}}
routes:
- name: chat
  match: {{hosts: [fallback.test]}}
  provider: qwen
  fallback: [claude]
  auth: {{required: true}}
  processors:
  - prompt_decorator: {{prepend: [{{role: system, content: "Answer in one line."}}]}}
- name: timed
  match: {{hosts: [timed.test]}}
  provider: qwen
  fallback: [claude]
  retry: {{retry_on: [timeout], per_try_timeout: 1s}}
- {{name: twice, match: {{hosts: [twice.test]}}, provider: qwen, fallback: [qwen, claude]}}
- {{name: messages, match: {{hosts: [messages.test]}}, provider: claude, fallback: [qwen],
   client_api: anthropic}}
- {{name: cool, match: {{hosts: [cool.test]}}, provider: cooling, fallback: [claude]}}
- {{name: dead, match: {{hosts: [dead.test]}}, provider: gone, fallback: [claude]}}
- {{name: all-dead, match: {{hosts: [all-dead.test]}}, provider: gone, fallback: [gone]}}
consumers:
- {{name: team-a, keys: [{CLIENT_KEY}]}}
"""

CHAT = {"messages": [{"role": "user", "content": "hello fallback"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    keys = {"openai": QWEN_KEY, "claude": CLAUDE_KEY}
    with Stack(tmp_path_factory.mktemp("fallback"), CONFIG, fake_keys=keys) as s:
        yield s


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    stack.fake.take()
    with httpx.Client(base_url=stack.url, timeout=20) as c:
        yield c


def post(c: httpx.Client, body: dict[str, Any], host: str = "fallback.test") -> httpx.Response:
    return c.post(
        "/v1/chat/completions",
        headers={"host": host, "authorization": f"Bearer {CLIENT_KEY}"},
        json=body,
    )


def wait_for(get: Callable[[], list[Any]], timeout: float = 5.0) -> list[Any]:
    """Log lines are written in batches: poll until some match."""
    deadline = time.monotonic() + timeout
    while True:
        got = get()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def log_lines(stack: Stack, msg: str, request_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in stack.logs().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("msg") == msg and x.get("request_id") == request_id]


def check_attempts_upstream(seen: list[Recorded]) -> None:
    """Each attempt got its own provider's path and key, never the client's or the other's."""
    qwen, claude = seen
    assert qwen.path == QWEN_PATH
    assert qwen.headers["authorization"] == f"Bearer {QWEN_KEY}"
    assert qwen.json()["model"] == "qwen-turbo"
    # Every attempt gets the request as the route's processors left it.
    assert qwen.json()["messages"][0] == {"role": "system", "content": "Answer in one line."}
    assert "Answer in one line." in json.dumps(claude.json()["system"])
    assert claude.path == "/v1/messages"
    assert claude.headers["x-api-key"] == CLAUDE_KEY
    assert "authorization" not in claude.headers  # qwen's key stayed with qwen
    assert claude.headers["anthropic-version"]
    assert claude.json()["model"] == "claude-3-5-haiku-latest"
    assert int(claude.headers["content-length"]) == len(claude.body)
    for r in seen:
        assert CLIENT_KEY not in json.dumps(r.headers) + r.body.decode()


@pytest.mark.parametrize("status", [429, 500])
def test_an_error_on_the_first_provider_is_answered_by_the_next(
    stack: Stack, client: httpx.Client, status: int
) -> None:
    stack.fake.script(QWEN_PATH, Scripted(status, b'{"error":{"message":"busy","type":"x"}}', NOW))
    r = post(client, CHAT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"  # Claude's answer in OpenAI's shape
    assert body["choices"][0]["message"]["content"].startswith("Hello from fake Claude")
    assert body["usage"]["prompt_tokens"] == 12
    assert r.headers["x-llm-provider"] == "claude"
    assert r.headers["x-envoy-attempt-count"] == "2"
    assert "x-llm-attempts" not in r.headers
    seen = stack.fake.take()
    check_attempts_upstream(seen)
    rid = seen[0].headers["x-request-id"]
    assert seen[1].headers["x-request-id"] == rid  # one request, two attempts
    # The request's log line: two attempts, who answered, each attempt's status.
    (line,) = wait_for(lambda: log_lines(stack, "request", rid))
    assert line["provider"] == "claude" and line["consumer"] == "team-a"
    assert line["attempts"] == 2
    assert line["attempt_statuses"] == [
        {"attempt": 1, "provider": "qwen", "status": status},
        {"attempt": 2, "provider": "claude", "status": 200},
    ]
    assert line["total_tokens"] == 21  # Claude's usage only
    attempts = wait_for(lambda: log_lines(stack, "attempt", rid))
    assert sorted((a["attempt"], a["provider"], a["status"]) for a in attempts) == [
        (1, "qwen", status),
        (2, "claude", 200),
    ]


def test_429_then_500_on_the_first_provider_then_the_next_one_answers(
    stack: Stack, client: httpx.Client
) -> None:
    """A chain that tries qwen twice: 429, then 500, then Claude answers."""
    stack.fake.script(
        QWEN_PATH,
        Scripted(429, b'{"error":{"message":"slow down","type":"x"}}', NOW),
        Scripted(500, b'{"error":{"message":"broken","type":"x"}}'),
    )
    r = post(client, CHAT, host="twice.test")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].startswith("Hello from fake Claude")
    assert r.headers["x-envoy-attempt-count"] == "3"
    seen = stack.fake.take()
    assert [x.path for x in seen] == [QWEN_PATH, QWEN_PATH, "/v1/messages"]
    (line,) = wait_for(lambda: log_lines(stack, "request", seen[0].headers["x-request-id"]))
    assert [(a["provider"], a["status"]) for a in line["attempt_statuses"]] == [
        ("qwen", 429),
        ("qwen", 500),
        ("claude", 200),
    ]


def test_a_request_without_a_body_falls_back_too(stack: Stack, client: httpx.Client) -> None:
    stack.fake.script("/compatible-mode/v1/models", Scripted(503, b'{"error":"down"}'))
    r = client.get(
        "/v1/models", headers={"host": "fallback.test", "authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-llm-provider"] == "claude"
    qwen, claude = stack.fake.take()
    assert qwen.path == "/compatible-mode/v1/models"
    assert qwen.headers["authorization"] == f"Bearer {QWEN_KEY}"
    assert claude.path == "/v1/models" and claude.headers["x-api-key"] == CLAUDE_KEY
    assert "authorization" not in claude.headers


def test_a_provider_whose_key_cools_down_goes_last(stack: Stack, client: httpx.Client) -> None:
    """After its 429 (60 s cool-down, no retry-after) the provider's only key is
    set aside: the next request goes to Claude first, in one attempt."""
    stack.fake.script(QWEN_PATH, Scripted(429, b'{"error":{"message":"quota","type":"x"}}'))
    r = post(client, CHAT, host="cool.test")
    assert r.headers["x-envoy-attempt-count"] == "2"
    assert [x.path for x in stack.fake.take()] == [QWEN_PATH, "/v1/messages"]
    r = post(client, CHAT, host="cool.test")
    assert r.status_code == 200 and r.headers["x-llm-provider"] == "claude"
    assert r.headers["x-envoy-attempt-count"] == "1"
    assert [x.path for x in stack.fake.take()] == ["/v1/messages"]


def test_access_log_and_metrics_show_the_attempts(stack: Stack, client: httpx.Client) -> None:
    def metrics() -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5).text
        assert QWEN_KEY not in text and CLAUDE_KEY not in text
        name = "llm_extproc_upstream_attempts_total"
        return {
            "qwen 503": sample(text, name, route="chat", gen_ai_provider_name="qwen", status="503"),
            "claude 200": sample(
                text, name, route="chat", gen_ai_provider_name="claude", status="200"
            ),
            "requests": sample(text, "llm_extproc_request_attempts_count", route="chat"),
            "attempts": sample(text, "llm_extproc_request_attempts_sum", route="chat"),
        }

    before = metrics()
    stack.fake.script(QWEN_PATH, Scripted(503, b'{"error":{"message":"down","type":"x"}}'))
    body = {**CHAT, "messages": [{"role": "user", "content": "metered-attempts"}]}
    assert post(client, body).status_code == 200
    lines = wait_for(
        lambda: [x for x in stack.access_lines() if "route=chat" in x and "attempts=2" in x]
    )
    assert lines and "provider=claude" in lines[-1], stack.access_lines()[-5:]
    # Envoy's per-attempt lines (the router's upstream_log).
    per_attempt = wait_for(
        lambda: [x for x in stack.access_lines() if "cluster=llm_fallback_qwen status=503" in x]
    )
    assert per_attempt and "] attempt request_id=" in per_attempt[-1]
    after = metrics()
    assert {k: after[k] - before[k] for k in after} == {
        "qwen 503": 1,
        "claude 200": 1,
        "requests": 1,
        "attempts": 2,
    }


def test_when_every_provider_fails_the_client_gets_the_last_error_in_openai_shape(
    stack: Stack, client: httpx.Client
) -> None:
    stack.fake.script(QWEN_PATH, Scripted(500, b'{"error":{"message":"qwen broke","type":"x"}}'))
    claude_err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    stack.fake.script("/v1/messages", Scripted(529, json.dumps(claude_err).encode()))
    r = post(client, CHAT)
    assert r.status_code == 529
    err = r.json()["error"]
    assert err["message"] == "Overloaded" and err["type"] == "server_error"
    assert r.headers["x-llm-provider"] == "claude"
    assert r.headers["x-envoy-attempt-count"] == "2"
    assert [x.path for x in stack.fake.take()] == [QWEN_PATH, "/v1/messages"]


def test_a_stream_falls_back_before_its_first_byte(stack: Stack, client: httpx.Client) -> None:
    stack.fake.script(
        QWEN_PATH, Scripted(429, b'{"error":{"message":"slow down","type":"x"}}', NOW)
    )
    events = stream(client, {**CHAT, "stream": True})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("Hello from fake Claude")
    # The client did not ask for usage: the chunk the gateway metered is not shown.
    assert all("usage" not in c or c["usage"] is None for c in chunks)
    assert [x.path for x in stack.fake.take()] == [QWEN_PATH, "/v1/messages"]


def test_a_stream_with_usage_requested_gets_the_usage_chunk(
    stack: Stack, client: httpx.Client
) -> None:
    stack.fake.script(QWEN_PATH, Scripted(500, b"{}"))
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    chunks = [json.loads(e) for e in stream(client, body)[:-1]]
    (usage,) = [c["usage"] for c in chunks if c.get("usage")]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        12,
        9,
        21,
    )


def test_a_per_try_timeout_moves_on(stack: Stack, client: httpx.Client) -> None:
    stack.fake.script(QWEN_PATH, Scripted(200, b"{}", delay_s=3.0))
    r = post(client, CHAT, host="timed.test")
    assert r.status_code == 200, r.text
    assert r.headers["x-llm-provider"] == "claude"


def test_a_provider_that_cannot_be_reached_is_skipped(stack: Stack, client: httpx.Client) -> None:
    r = post(client, CHAT, host="dead.test")
    assert r.status_code == 200, r.text
    assert r.headers["x-llm-provider"] == "claude"
    assert r.headers["x-envoy-attempt-count"] == "2"
    (seen,) = stack.fake.take()
    rid = seen.headers["x-request-id"]
    (line,) = wait_for(lambda: log_lines(stack, "request", rid))
    # The first attempt never got a response: status 0, its provider from the chain.
    assert line["attempt_statuses"] == [
        {"attempt": 1, "provider": "gone", "status": 0},
        {"attempt": 2, "provider": "claude", "status": 200},
    ]
    attempts = wait_for(lambda: log_lines(stack, "attempt", rid))
    assert sorted((a["attempt"], a["provider"], a["status"]) for a in attempts) == [
        (1, "gone", 0),
        (2, "claude", 200),
    ]


def test_when_no_provider_can_be_reached_the_client_gets_an_openai_error(
    stack: Stack, client: httpx.Client
) -> None:
    r = post(client, CHAT, host="all-dead.test")
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "providers_unavailable" and err["type"] == "server_error"
    assert "'all-dead'" in err["message"]
    assert "x-llm-provider" not in r.headers


ANTHROPIC_CHAT = {"max_tokens": 64, "messages": [{"role": "user", "content": "hello fallback"}]}


def messages(c: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    headers = {"host": "messages.test", "anthropic-version": "2023-06-01"}
    return c.post("/v1/messages", headers=headers, json=body)


def test_an_anthropic_client_falls_back_from_claude_to_a_translated_provider(
    stack: Stack, client: httpx.Client
) -> None:
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    stack.fake.script("/v1/messages", Scripted(529, json.dumps(err).encode()))
    r = messages(client, ANTHROPIC_CHAT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "message"  # qwen's answer in the Messages API's shape
    assert body["content"][0]["text"].startswith("Hello from the fake provider")
    assert body["usage"]["input_tokens"] == 11
    assert r.headers["x-llm-provider"] == "qwen"
    claude, qwen = stack.fake.take()
    assert claude.path == "/v1/messages" and claude.headers["x-api-key"] == CLAUDE_KEY
    assert qwen.path == QWEN_PATH and qwen.headers["authorization"] == f"Bearer {QWEN_KEY}"
    assert "x-api-key" not in qwen.headers  # claude's key stayed with claude
    rid = qwen.headers["x-request-id"]
    (line,) = wait_for(lambda: log_lines(stack, "request", rid))
    assert (line["provider"], line["attempts"], line["total_tokens"]) == ("qwen", 2, 18)


def test_an_anthropic_stream_falls_back_and_ends_as_anthropic(
    stack: Stack, client: httpx.Client
) -> None:
    stack.fake.script("/v1/messages", Scripted(503, b'{"type":"error","error":{}}'))
    headers = {"host": "messages.test", "anthropic-version": "2023-06-01"}
    dec = SSEDecoder()
    events: list[str] = []
    body = {**ANTHROPIC_CHAT, "stream": True}
    with client.stream("POST", "/v1/messages", headers=headers, json=body) as r:
        assert r.status_code == 200
        for part in r.iter_bytes():
            events += [e.event for e in dec.feed(part)]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert [x.path for x in stack.fake.take()] == ["/v1/messages", QWEN_PATH]


def test_without_metadata_the_fallback_routes_are_unreachable(
    stack: Stack, client: httpx.Client
) -> None:
    """A client naming the fallback virtual host gets no provider and no key."""
    r = client.post("/v1/chat/completions", headers={"host": "llm-fallback"}, json=CHAT)
    assert r.status_code == 404
    assert stack.fake.take() == []


def stream(c: httpx.Client, body: dict[str, Any]) -> list[str]:
    headers = {"host": "fallback.test", "authorization": f"Bearer {CLIENT_KEY}"}
    dec = SSEDecoder()
    out: list[str] = []
    with c.stream("POST", "/v1/chat/completions", headers=headers, json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for part in r.iter_bytes():
            out += [e.data for e in dec.feed(part)]
    return out


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 before the first)."""
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.M):
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total
