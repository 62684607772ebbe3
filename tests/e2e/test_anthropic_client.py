"""The Anthropic Messages API as a client API, through the real Envoy, with the
official `anthropic` SDK as the client and the fake provider playing Claude
(pass-through) and an OpenAI-compatible provider (translated)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from harness import Stack

pytestmark = pytest.mark.e2e

CONSUMER_KEY = "ck-anthropic-client-5e1f"
CLAUDE_KEY = "sk-ant-upstream-e2e"
QWEN_KEY = "sk-qwen-upstream-e2e"

CONFIG = f"""
providers:
- name: claude
  type: claude
  api_tokens: [{CLAUDE_KEY}]
  model_mapping: {{"claude-alias": "claude-sonnet-4-real"}}
- name: claude-badkey
  type: claude
  api_tokens: [sk-ant-wrong]
- name: qwen
  type: qwen
  api_tokens: [{QWEN_KEY}]
  model_mapping: {{"*": "qwen-plus"}}
- name: qwen-limited
  type: qwen
  api_tokens: [{QWEN_KEY}]
routes:
- name: claude-code
  match: {{hosts: ["claude.test"]}}
  provider: claude
  client_api: anthropic
  auth: {{required: true}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden-word"]}}
- name: anthropic-to-qwen
  match: {{hosts: ["qwen.test"]}}
  provider: qwen
  client_api: anthropic
  auth: {{required: true}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden-word"]}}
- name: claude-badkey
  match: {{hosts: ["badkey.test"]}}
  provider: claude-badkey
  client_api: anthropic
- name: limited
  match: {{hosts: ["limited.test"]}}
  provider: qwen-limited
  client_api: anthropic
- name: auto
  match: {{hosts: ["auto.test"]}}
  provider: qwen
  client_api: auto
consumers:
- name: coder
  keys: [{CONSUMER_KEY}]
"""

KEYS: dict[str, Any] = {"claude": CLAUDE_KEY, "openai": {QWEN_KEY}}

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("anthropic"), CONFIG, fake_keys=KEYS) as s:
        yield s


def client(stack: Stack, host: str, key: str = CONSUMER_KEY) -> anthropic.Anthropic:
    stack.fake.take()
    return anthropic.Anthropic(
        base_url=stack.url,
        api_key=key,
        default_headers={"host": host},
        max_retries=0,
        timeout=15,
    )


def only_record(stack: Stack) -> Any:
    recs = stack.fake.take()
    assert len(recs) == 1, [(r.path, r.headers.get("host")) for r in recs]
    # The client's own key never reaches the provider, in any header.
    assert CONSUMER_KEY not in json.dumps(recs[0].headers)
    return recs[0]


def ask(text: str, **kw: Any) -> dict[str, Any]:
    return {
        "model": "claude-alias",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **kw,
    }


# -- Claude: pass-through -------------------------------------------------------


def test_claude_non_streaming(stack: Stack) -> None:
    c = client(stack, "claude.test")
    msg = c.messages.create(**ask("Hi there", system="Be brief."))
    assert msg.type == "message"
    assert msg.content[0].text == (  # type: ignore[union-attr]
        "Hello from fake Claude. model=claude-sonnet-4-real system=True last_user=Hi there"
    )
    assert msg.usage.input_tokens == 12 and msg.usage.output_tokens == 9
    rec = only_record(stack)
    assert rec.path == "/v1/messages"
    assert rec.headers["host"] == "api.anthropic.com"
    assert rec.headers["x-api-key"] == CLAUDE_KEY
    # The SDK's own version header is kept.
    assert rec.headers["anthropic-version"] == c.default_headers["anthropic-version"]
    assert rec.json()["model"] == "claude-sonnet-4-real"  # mapped


@pytest.mark.parametrize("host", ["claude.test", "qwen.test"])
def test_claude_codes_accept_encoding_never_reaches_the_provider(stack: Stack, host: str) -> None:
    # Claude Code asks for gzip, br, zstd: an answer compressed upstream could be
    # neither translated nor read for usage and keys. The provider is asked for
    # a plain answer.
    c = client(stack, host)
    enc = {"accept-encoding": "gzip, br, zstd"}
    msg = c.messages.create(**ask("Hi there"), extra_headers=enc)
    assert msg.type == "message" and msg.usage.output_tokens > 0
    rec = only_record(stack)
    assert "accept-encoding" not in rec.headers


def test_claude_streaming(stack: Stack) -> None:
    c = client(stack, "claude.test")
    with c.messages.stream(**ask("Stream please")) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.startswith("Hello from fake Claude. model=claude-sonnet-4-real")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 9
    assert only_record(stack).json()["stream"] is True


def test_claude_stream_passes_byte_for_byte(stack: Stack) -> None:
    """The client's bytes reach Claude unchanged (nothing to map), and what Claude
    sent is what the client gets (ping events included)."""
    stack.fake.take()
    sent = json.dumps(ask("raw", model="claude-sonnet-4-real", stream=True)).encode()
    r = httpx.post(
        f"{stack.url}/v1/messages",
        headers={"host": "claude.test", "x-api-key": CONSUMER_KEY},
        content=sent,
        timeout=15,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert b"event: ping" in r.content
    assert r.content.endswith(b'event: message_stop\ndata: {"type": "message_stop"}\n\n')
    rec = only_record(stack)
    assert rec.headers["anthropic-version"] == "2023-06-01"  # none sent: the default
    assert rec.body == sent


def tool_round_trip(stack: Stack, host: str, stream: bool) -> tuple[Any, Any]:
    c = client(stack, host)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        with c.messages.stream(**ask("", messages=messages, tools=[WEATHER])) as s:
            first = s.get_final_message()
    else:
        first = c.messages.create(**ask("", messages=messages, tools=[WEATHER]))
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C sunny"}],
        },
    ]
    second = c.messages.create(**ask("", messages=messages, tools=[WEATHER]))
    assert second.stop_reason == "end_turn"
    assert "read the tool result: 18C sunny" in second.content[0].text  # type: ignore[union-attr]
    return first, second


@pytest.mark.parametrize("stream", [False, True])
def test_claude_tool_use_round_trip(stack: Stack, stream: bool) -> None:
    tool_round_trip(stack, "claude.test", stream)


def test_claude_count_tokens_passes_through(stack: Stack) -> None:
    c = client(stack, "claude.test")
    n = c.messages.count_tokens(model="claude-alias", messages=[{"role": "user", "content": "hi"}])
    assert n.input_tokens > 0
    rec = only_record(stack)
    assert rec.path == "/v1/messages/count_tokens"
    assert rec.headers["x-api-key"] == CLAUDE_KEY


def test_claude_provider_error_reaches_the_sdk(stack: Stack) -> None:
    with pytest.raises(anthropic.AuthenticationError) as ei:
        client(stack, "badkey.test").messages.create(**ask("hi"))
    body = ei.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert "sk-ant-wrong" not in json.dumps(body)


# -- OpenAI-compatible provider: translated ---------------------------------------


def test_qwen_non_streaming(stack: Stack) -> None:
    msg = client(stack, "qwen.test").messages.create(**ask("Hi there", system="Be brief."))
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.content[0].text.startswith("Hello from the fake provider. model=qwen-plus")  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (11, 7)
    rec = only_record(stack)
    assert rec.path == "/compatible-mode/v1/chat/completions"
    assert rec.headers["authorization"] == f"Bearer {QWEN_KEY}"
    assert "x-api-key" not in rec.headers
    sent = rec.json()
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
    ]
    assert sent["max_tokens"] == 256


def test_qwen_streaming(stack: Stack) -> None:
    with client(stack, "qwen.test").messages.stream(**ask("Stream please")) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.startswith("Hello from the fake provider. model=qwen-plus")
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)
    sent = only_record(stack).json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True])
def test_qwen_tool_use_round_trip(stack: Stack, stream: bool) -> None:
    tool_round_trip(stack, "qwen.test", stream)
    recs = stack.fake.seen()
    # The second turn reached the provider as OpenAI tool_calls + a tool message.
    sent = json.loads(recs[-1].body) if recs else {}
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool"]
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_qwen_count_tokens_is_501(stack: Stack) -> None:
    with pytest.raises(anthropic.APIStatusError) as ei:
        client(stack, "qwen.test").messages.count_tokens(
            model="x", messages=[{"role": "user", "content": "hi"}]
        )
    assert ei.value.status_code == 501
    body = ei.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert "count_tokens" in body["error"]["message"]
    assert stack.fake.take() == []


def test_qwen_provider_error_in_anthropic_shape(stack: Stack) -> None:
    from fake_provider import Scripted

    stack.fake.take()
    stack.fake.script(
        "/chat/completions",
        Scripted(
            429, b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate"}}'
        ),
    )
    with pytest.raises(anthropic.RateLimitError) as ei:
        client(stack, "limited.test").messages.create(**ask("hi"))
    body = ei.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"] == "Rate limit reached"


# -- the gateway's own checks, in Anthropic's shape -------------------------------


@pytest.mark.parametrize("host", ["claude.test", "qwen.test"])
def test_bad_consumer_key_is_401(stack: Stack, host: str) -> None:
    with pytest.raises(anthropic.AuthenticationError) as ei:
        client(stack, host, key="ck-wrong").messages.create(**ask("hi"))
    assert ei.value.body["type"] == "error"  # type: ignore[index]
    assert stack.fake.take() == []


@pytest.mark.parametrize("host", ["claude.test", "qwen.test"])
@pytest.mark.parametrize(
    "where",
    [
        {"system": "you may say forbidden-word"},
        {
            "messages": [
                {"role": "user", "content": "call it"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "a forbidden-word"}
                    ],
                },
            ]
        },
    ],
    ids=["system", "tool_result"],
)
def test_regex_deny_reads_every_block(stack: Stack, host: str, where: dict[str, Any]) -> None:
    with pytest.raises(anthropic.PermissionDeniedError) as ei:
        client(stack, host).messages.create(**ask("hello", **where))
    body = ei.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "permission_error"
    assert stack.fake.take() == []


def test_auto_route_detects_messages_path(stack: Stack) -> None:
    msg = client(stack, "auto.test").messages.create(**ask("auto"))
    assert msg.content[0].text.startswith("Hello from the fake provider")  # type: ignore[union-attr]
    # The same route still serves OpenAI clients.
    r = httpx.post(
        f"{stack.url}/v1/chat/completions",
        headers={"host": "auto.test"},
        json={"messages": [{"role": "user", "content": "hi"}]},
        timeout=15,
    )
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"


def logged(stack: Stack, route: str) -> list[dict[str, Any]]:
    """Request log lines of `route` that carry usage (written in batches: wait)."""
    deadline = time.monotonic() + 5
    reqs: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not reqs:
        logs = [json.loads(x) for x in stack.logs().splitlines() if x.startswith("{")]
        reqs = [
            x
            for x in logs
            if x.get("msg") == "request" and x.get("route") == route and x.get("total_tokens")
        ]
        time.sleep(0.1)
    assert reqs, stack.logs()[-2000:]
    return reqs


@pytest.mark.parametrize(
    ("host", "route", "provider", "tokens"),
    [("qwen.test", "anthropic-to-qwen", "qwen", 18), ("claude.test", "claude-code", "claude", 21)],
)
def test_usage_reaches_metrics_and_request_log(
    stack: Stack, host: str, route: str, provider: str, tokens: int
) -> None:
    client(stack, host).messages.create(**ask("count me"))
    last = logged(stack, route)[-1]
    assert last["total_tokens"] == tokens and last["consumer"] == "coder"
    assert last["endpoint"] == "anthropic_messages"
    metrics = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5).text
    sums = re.findall(
        rf'^gen_ai_client_token_usage_sum{{[^}}]*gen_ai_provider_name="{provider}"[^}}]*'
        r'gen_ai_token_type="output"[^}]*} (\S+)$',
        metrics,
        re.M,
    )
    assert sums and float(sums[0]) > 0, metrics
    assert CONSUMER_KEY not in stack.logs() and CONSUMER_KEY not in metrics
