"""The OpenAI Responses API as a client API, through the real Envoy, with the
official `openai` SDK as the client and the fake provider playing OpenAI
(native: pass-through), an OpenAI-compatible chat-only vendor (qwen) and
Claude (both translated)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from extproc.streaming.sse import SSEDecoder
from harness import FALLBACK_ENVOY, Stack, envoy_has_fallback

pytestmark = pytest.mark.e2e

from fake_provider import Scripted  # noqa: E402

CONSUMER_KEY = "ck-responses-client-77aa"
LIMITED_KEY = "ck-responses-limited-3b3b"
TIGHT_KEY = "ck-responses-tight-9c9c"
OPENAI_KEY = "sk-openai-upstream-e2e"
QWEN_KEY = "sk-qwen-upstream-e2e"
CLAUDE_KEY = "sk-ant-upstream-e2e"

CONFIG = f"""
providers:
- name: openai
  type: openai
  api_tokens: [{OPENAI_KEY}]
  model_mapping: {{"gpt-alias": "gpt-4o-real"}}
- name: qwen
  type: qwen
  api_tokens: [{QWEN_KEY}]
  model_mapping: {{"*": "qwen-plus"}}
- name: qwen-limited
  type: qwen
  api_tokens: [{QWEN_KEY}]
- name: claude
  type: claude
  api_tokens: [{CLAUDE_KEY}]
  model_mapping: {{"*": "claude-sonnet-4-real"}}
routes:
- name: native
  match: {{hosts: ["native.test"]}}
  provider: openai
  client_api: responses
  auth: {{required: true}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden-word"]}}
- name: qwen
  match: {{hosts: ["qwen.test"]}}
  provider: qwen
  auth: {{required: true}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden-word"]}}
- name: claude
  match: {{hosts: ["claude.test"]}}
  provider: claude
  client_api: auto
  auth: {{required: true}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden-word"]}}
- name: limited
  match: {{hosts: ["limited.test"]}}
  provider: qwen-limited
- name: fallback
  match: {{hosts: ["fallback.test"]}}
  provider: qwen
  fallback: [claude]
  client_api: responses
consumers:
- name: coder
  keys: [{CONSUMER_KEY}]
- name: narrow
  keys: [{LIMITED_KEY}]
  allowed_models: ["gpt-alias"]
- name: tight
  keys: [{TIGHT_KEY}]
  token_budget: 30
"""

KEYS: dict[str, Any] = {"claude": CLAUDE_KEY, "openai": {QWEN_KEY, OPENAI_KEY}}
HOSTS = ["native.test", "qwen.test", "claude.test"]
# What each host's provider says, and the model it received (mapped).
GREETING = {
    "native.test": "Hello from the fake provider. model=gpt-4o-real",
    "qwen.test": "Hello from the fake provider. model=qwen-plus",
    "claude.test": "Hello from fake Claude. model=claude-sonnet-4-real",
}
PROVIDER = {"native.test": "openai", "qwen.test": "qwen", "claude.test": "claude"}
ROUTE = {"native.test": "native", "qwen.test": "qwen", "claude.test": "claude"}
TOKENS = {"native.test": 21, "qwen.test": 18, "claude.test": 21}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("responses"), CONFIG, fake_keys=KEYS) as s:
        yield s


def client(stack: Stack, host: str, key: str = CONSUMER_KEY) -> openai.OpenAI:
    stack.fake.take()
    return openai.OpenAI(
        base_url=f"{stack.url}/v1",
        api_key=key,
        default_headers={"host": host},
        max_retries=0,
        timeout=15,
    )


def only_record(stack: Stack) -> Any:
    recs = stack.fake.take()
    assert len(recs) == 1, [(r.path, r.headers.get("host")) for r in recs]
    assert CONSUMER_KEY not in json.dumps(recs[0].headers)
    return recs[0]


def check_upstream(host: str, rec: Any) -> None:
    """Where the request went, with which key, in which API."""
    if host == "native.test":
        assert rec.path == "/v1/responses" and rec.headers["host"] == "api.openai.com"
        assert rec.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert rec.json()["model"] == "gpt-4o-real"  # mapped
    elif host == "qwen.test":
        assert rec.path == "/compatible-mode/v1/chat/completions"
        assert rec.headers["authorization"] == f"Bearer {QWEN_KEY}"
    else:
        assert rec.path == "/v1/messages" and rec.headers["x-api-key"] == CLAUDE_KEY


@pytest.mark.parametrize("host", HOSTS)
def test_plain(stack: Stack, host: str) -> None:
    r = client(stack, host).responses.create(
        model="gpt-alias", instructions="Be brief.", input="Hi there"
    )
    assert r.object == "response" and r.status == "completed"
    assert r.output_text.startswith(GREETING[host]), r.output_text
    assert r.usage is not None and r.usage.total_tokens == TOKENS[host]
    rec = only_record(stack)
    check_upstream(host, rec)
    if host == "qwen.test":
        assert rec.json()["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
        ]


@pytest.mark.parametrize("host", HOSTS)
def test_stream(stack: Stack, host: str) -> None:
    events = list(
        client(stack, host).responses.create(model="gpt-alias", input="Stream please", stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    seqs = [e.sequence_number for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith(GREETING[host])
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.total_tokens == TOKENS[host]
    rec = only_record(stack)
    check_upstream(host, rec)
    assert rec.json()["stream"] is True


def _turns(stack: Stack, host: str, stream: bool) -> tuple[Any, Any]:
    c = client(stack, host)
    items: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        evs = list(c.responses.create(model="gpt-alias", input=items, tools=[WEATHER], stream=True))
        assert evs[-1].type == "response.completed"
        first = evs[-1].response  # type: ignore[union-attr]
    else:
        first = c.responses.create(model="gpt-alias", input=items, tools=[WEATHER])
    (call,) = [o for o in first.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    items += [o.model_dump(exclude_none=True) for o in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "18C sunny"})
    second = c.responses.create(model="gpt-alias", input=items, tools=[WEATHER])
    assert "read the tool result: 18C sunny" in second.output_text, second.output_text
    return first, second


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("host", HOSTS)
def test_function_tool_round_trip(stack: Stack, host: str, stream: bool) -> None:
    _turns(stack, host, stream)
    recs = stack.fake.take()
    assert len(recs) == 2
    if host == "qwen.test":
        sent = recs[-1].json()
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
        assert sent["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("host", HOSTS)
def test_usage_reaches_metrics_and_request_log(stack: Stack, host: str) -> None:
    client(stack, host).responses.create(model="gpt-alias", input="count me")
    last = logged(stack, ROUTE[host])[-1]
    assert last["total_tokens"] == TOKENS[host] and last["consumer"] == "coder"
    assert last["endpoint"] == "responses"
    metrics = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5).text
    sums = re.findall(
        r'^gen_ai_client_token_usage_sum{[^}]*gen_ai_operation_name="responses"[^}]*'
        rf'gen_ai_provider_name="{PROVIDER[host]}"[^}}]*gen_ai_token_type="output"[^}}]*}} (\S+)$',
        metrics,
        re.M,
    )
    assert sums and float(sums[0]) > 0, metrics
    assert CONSUMER_KEY not in stack.logs() and CONSUMER_KEY not in metrics
    # Envoy's dynamic metadata carries it too (the demo's access log prints it).
    want = f"route={ROUTE[host]} provider={PROVIDER[host]} consumer=coder"
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while time.monotonic() < deadline and not lines:
        lines = [
            x for x in stack.access_lines() if want in x and f"total_tokens={TOKENS[host]}" in x
        ]
        time.sleep(0.1)
    assert lines, stack.access_lines()[-5:]


def logged(stack: Stack, route: str) -> list[dict[str, Any]]:
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


# -- errors, in OpenAI's shape ------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_bad_consumer_key_is_401(stack: Stack, host: str) -> None:
    with pytest.raises(openai.AuthenticationError) as ei:
        client(stack, host, key="ck-wrong").responses.create(model="gpt-alias", input="hi")
    assert isinstance(ei.value.body, dict) and ei.value.body["message"]
    assert stack.fake.take() == []


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize(
    "where",
    [
        {"instructions": "you may say forbidden-word", "input": "hello"},
        {
            "input": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "call it"},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "c1", "output": "a forbidden-word"},
            ]
        },
    ],
    ids=["instructions", "function_output"],
)
def test_regex_deny_reads_every_text(stack: Stack, host: str, where: dict[str, Any]) -> None:
    with pytest.raises(openai.PermissionDeniedError) as ei:
        client(stack, host).responses.create(model="gpt-alias", tools=[WEATHER], **where)
    assert ei.value.code == "content_denied"
    assert stack.fake.take() == []


def test_model_allow_list(stack: Stack) -> None:
    c = client(stack, "qwen.test", key=LIMITED_KEY)
    assert c.responses.create(model="gpt-alias", input="hi").output_text
    stack.fake.take()
    with pytest.raises(openai.PermissionDeniedError):
        c.responses.create(model="gpt-other", input="hi")
    assert stack.fake.take() == []


def test_token_budget_counts_responses_usage(stack: Stack) -> None:
    """Usage of a translated stream (18 tokens) is charged to the consumer: of
    its budget of 30, 12 are left, less than the next request may use."""
    c = client(stack, "qwen.test", key=TIGHT_KEY)
    events = list(c.responses.create(model="m", input="hi", max_output_tokens=5, stream=True))
    assert events[-1].type == "response.completed"
    stack.fake.take()
    with pytest.raises(openai.RateLimitError) as ei:
        c.responses.create(model="m", input="hi", max_output_tokens=5)
    assert ei.value.code == "token_budget_exceeded"
    assert "12 of its 30 tokens" in ei.value.message
    assert stack.fake.take() == []


@pytest.mark.parametrize("host", ["qwen.test", "claude.test"])
def test_stateless_on_translated_providers(stack: Stack, host: str) -> None:
    c = client(stack, host)
    with pytest.raises(openai.BadRequestError) as ei:
        c.responses.create(model="gpt-alias", input="again", previous_response_id="resp_1")
    assert "keeps no state" in ei.value.message
    with pytest.raises(openai.NotFoundError) as nf:
        c.responses.retrieve("resp_1")
    assert "keeps no" in nf.value.message
    assert stack.fake.take() == []


def test_stored_response_passes_through_to_native(stack: Stack) -> None:
    stack.fake.take()
    r = httpx.get(
        f"{stack.url}/v1/responses/resp_1",
        headers={"host": "native.test", "authorization": f"Bearer {CONSUMER_KEY}"},
        timeout=15,
    )
    assert r.status_code == 200, r.text
    rec = only_record(stack)
    assert rec.path == "/v1/responses/resp_1"
    assert rec.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_provider_error_in_openai_shape(stack: Stack) -> None:
    stack.fake.take()
    stack.fake.script(
        "/chat/completions",
        # retry-after 0: the key does not cool down for the later tests.
        Scripted(
            429,
            b'{"error":{"message":"Rate limit reached","type":"requests"}}',
            headers={"content-type": "application/json", "retry-after": "0"},
        ),
    )
    with pytest.raises(openai.RateLimitError) as ei:
        client(stack, "limited.test").responses.create(model="m", input="hi")
    assert ei.value.message.endswith("Rate limit reached")


def test_cut_off_stream_ends_with_response_failed(stack: Stack) -> None:
    """The provider's stream stops mid-answer: the client is told, never left
    waiting for response.completed."""
    stack.fake.take()
    chunk = {"id": "c", "object": "chat.completion.chunk", "model": "qwen-plus"}
    part = {**chunk, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
    stack.fake.script(
        "/chat/completions",
        Scripted(
            200,
            b"data: " + json.dumps(part).encode() + b"\n\n",
            headers={"content-type": "text/event-stream"},
        ),
    )
    events = list(
        client(stack, "limited.test").responses.create(model="m", input="hi", stream=True)
    )
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None  # type: ignore[union-attr]
    assert "ended before it finished" in events[-1].response.error.message  # type: ignore[union-attr]
    assert not any(e.type == "response.completed" for e in events)


def test_cut_off_native_stream_ends_with_response_failed(stack: Stack) -> None:
    """A native provider's stream cut off too: the tap adds response.failed."""
    stack.fake.take()
    created = {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_x"}}
    delta = {
        "type": "response.output_text.delta",
        "sequence_number": 1,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hel",
    }
    body = b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
        for e in (created, delta)
    )
    stack.fake.script(
        "/v1/responses", Scripted(200, body, headers={"content-type": "text/event-stream"})
    )
    events = list(
        client(stack, "native.test").responses.create(model="gpt-alias", input="hi", stream=True)
    )
    assert [e.type for e in events] == [
        "response.created",
        "response.output_text.delta",
        "response.failed",
    ]
    assert events[-1].sequence_number == 2


# -- Codex's request shape -----------------------------------------------------------

CODEX_BODY: dict[str, Any] = {
    "model": "gpt-5-codex",
    "instructions": None,
    "input": [
        {
            "type": "message",
            "id": "msg_dev",
            "role": "developer",
            "content": [{"type": "input_text", "text": "You are Codex."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "say hi"}],
        },
    ],
    "tools": [
        {
            "type": "namespace",
            "name": "mcp_fs",
            "description": "files",
            "tools": [{"type": "function", "name": "read", "parameters": {"type": "object"}}],
        },
        {"type": "web_search", "external_web_access": False},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "reasoning": {"summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "019a-session",
    "client_metadata": {"x": "y"},
}
CODEX_HEADERS = {
    "originator": "codex_exec",
    "session-id": "019a-session",
    "x-codex-turn-metadata": '{"turn": 1}',
    "accept-encoding": "zstd,gzip",
}


@pytest.mark.parametrize("host", ["qwen.test", "claude.test"])
def test_codex_request_shape(stack: Stack, host: str) -> None:
    stack.fake.take()
    body = {k: v for k, v in CODEX_BODY.items() if v is not None}
    r = httpx.post(
        f"{stack.url}/v1/responses",
        headers={"host": host, "authorization": f"Bearer {CONSUMER_KEY}", **CODEX_HEADERS},
        json=body,
        timeout=15,
    )
    assert r.status_code == 200, r.text
    assert "content-encoding" not in r.headers  # never a body the client cannot read
    assert r.headers["x-llm-dropped-tools"] == "web_search"
    events = [json.loads(e.data) for e in SSEDecoder().feed(r.content)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.completed", events[-1]
    assert events[-1]["response"]["usage"]["total_tokens"] == TOKENS[host]
    rec = only_record(stack)
    assert "accept-encoding" not in rec.headers
    check_upstream(host, rec)
    if host == "qwen.test":
        sent = rec.json()
        assert sent["messages"][0] == {"role": "system", "content": "You are Codex."}
        assert [t["function"]["name"] for t in sent["tools"]] == ["mcp_fs__read"]
        for gone in ("include", "prompt_cache_key", "client_metadata", "store", "input"):
            assert gone not in sent


def test_codex_namespaced_tool_call_keeps_its_namespace(stack: Stack) -> None:
    body = {k: v for k, v in CODEX_BODY.items() if v is not None}
    body["stream"] = False
    r = httpx.post(
        f"{stack.url}/v1/responses",
        headers={"host": "qwen.test", "authorization": f"Bearer {CONSUMER_KEY}", **CODEX_HEADERS},
        json=body,
        timeout=15,
    )
    assert r.status_code == 200, r.text
    (call,) = [o for o in r.json()["output"] if o["type"] == "function_call"]
    assert (call["namespace"], call["name"]) == ("mcp_fs", "read")


@pytest.mark.skipif(
    not envoy_has_fallback(),
    reason=f"provider fallback needs Envoy {'.'.join(map(str, FALLBACK_ENVOY))}+",
)
def test_fallback_route(stack: Stack) -> None:
    """Qwen fails: Envoy retries on Claude; the client gets one Responses answer."""
    stack.fake.take()
    c = openai.OpenAI(
        base_url=f"{stack.url}/v1",
        api_key="unused",
        default_headers={"host": "fallback.test", "x-fake-fail": "/compatible-mode=503"},
        max_retries=0,
        timeout=20,
    )
    r = c.responses.create(model="m", input="hello fallback")
    assert r.output_text.startswith("Hello from fake Claude"), r.output_text
    s = list(c.responses.create(model="m", input="hello fallback", stream=True))
    assert s[-1].type == "response.completed"
    text = "".join(e.delta for e in s if e.type == "response.output_text.delta")
    assert text.startswith("Hello from fake Claude")
