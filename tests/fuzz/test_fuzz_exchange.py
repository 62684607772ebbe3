"""Fuzz: any request (and then any response) through the sans-IO Exchange:
only a Decision comes out (Continue or Reject), never an exception.

The runtime has a route per provider API and client API, with the processors
that do no I/O, consumer keys and budgets; bodies are request-shaped JSON,
any JSON, or any bytes; responses are stream frames or JSON built from the
keys the translators read, or any bytes, split anywhere.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fuzzing import FUZZ, WORDS, json_objects, json_values, openai_objects, split
from hypothesis import given
from hypothesis import strategies as st

from extproc.budget.memory import MemoryBudget
from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.consumers.auth import Authenticator
from extproc.core.events import (
    Continue,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, Phase

KEY = "consumer-key"
CONFIG = f"""
hosts: [plugin.test]
api_key: k
allow_patterns: ["."]
deny_patterns: ["账号"]
default_model: qwen-turbo
---
providers:
- name: q
  type: qwen
  api_tokens: [k1, k2]
  default_model: qwen-turbo
  model_mapping: {{"gpt-*": qwen-max, "~^m-(.*)$": "qwen-$1"}}
  custom_settings: [{{name: max_tokens, value: 100, mode: auto, overwrite: false}}]
- {{name: c, type: claude, api_tokens: [k], options: {{max_tokens: 64}}}}
- {{name: g, type: gemini, api_tokens: [k], default_stream: true}}
- {{name: a, type: azure, api_tokens: [k], host: az.test, options: {{deployment: d, api_version: "2024-06-01"}}}}
- {{name: o, type: ollama, base_url: "http://127.0.0.1:11434"}}
- {{name: raw, type: openai, api_tokens: [k], protocol: original}}
routes:
- name: qwen
  match: {{hosts: [qwen.test]}}
  provider: q
  processors:
  - regex_guard: {{deny_patterns: ["账号"], roles: [user, system]}}
  - prompt_decorator: {{prepend: [{{role: system, content: be brief}}]}}
  - custom: {{name: max_tokens_cap, config: {{max_tokens: 50, fill: true}}}}
- {{name: claude, match: {{hosts: [claude.test]}}, provider: c}}
- {{name: gemini, match: {{hosts: [gemini.test]}}, provider: g, allow_non_streaming: false}}
- {{name: azure, match: {{hosts: [azure.test]}}, provider: a}}
- {{name: ollama-openai, match: {{hosts: [oo.test]}}, provider: o, allow_streaming: false}}
- name: ollama
  match: {{hosts: [ollama.test]}}
  provider: o
  client_api: ollama
  processors: [{{regex_guard: {{deny_patterns: ["账号"]}}}}]
  auth: {{required: true, key_sources: ["body:key", "authorization"]}}
- name: raw
  match: {{hosts: [raw.test]}}
  provider: raw
  auth: {{required: false, key_sources: [x-api-key]}}
- name: anthropic-native
  match: {{hosts: [anthropic.test]}}
  provider: c
  client_api: anthropic
  processors: [{{regex_guard: {{deny_patterns: ["账号"]}}}}]
- {{name: anthropic-via, match: {{hosts: [via.test]}}, provider: q, client_api: auto}}
- {{name: anthropic-gemini, match: {{hosts: [viag.test]}}, provider: g, client_api: anthropic}}
- {{name: responses-native, match: {{hosts: [resp.test]}}, provider: a, client_api: responses}}
- name: responses-claude
  match: {{hosts: [respc.test]}}
  provider: c
  client_api: responses
  processors: [{{regex_guard: {{deny_patterns: ["账号"]}}}}]
consumers:
- {{name: alice, keys: ["{KEY}"], allowed_models: [qwen-turbo, llama3], token_budget: 1000}}
"""
LOADED = load_text(CONFIG)


def exchange() -> Exchange:
    """A fresh runtime per example: token pools and budgets keep state."""
    rt = compile_config(LOADED, {})
    return Exchange(rt, authenticate=Authenticator(rt, MemoryBudget(60.0)))


HOSTS = ["plugin.test", "qwen.test", "claude.test", "gemini.test", "azure.test", "oo.test"]
HOSTS += ["ollama.test", "raw.test", "QWEN.test:8080", "unknown.test", "anthropic.test"]
HOSTS += ["via.test", "viag.test", "resp.test", "respc.test"]
PATHS = [
    "/",
    "/v1/chat/completions",
    "/compatible-mode/v1/chat/completions?x=1",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/responses",
    "/v1/responses/resp_1",
    "/v1/models",
    "/api/chat",
    "/api/generate",
    "/api/embed",
    "/v1/messages",
    "/v1/messages/count_tokens",
]
LOOP = asyncio.new_event_loop()

text = st.one_of(st.sampled_from(WORDS), st.text(max_size=30))
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["tool_use", "tool_result", "image", "thinking"])},
        optional={"input": json_objects(3), "content": json_values(3), "id": text},
    ),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": text})}
    ),
    json_objects(6),
)
call = st.fixed_dictionaries(
    {"id": text, "type": st.just("function")},
    optional={
        "function": st.fixed_dictionaries(
            {"name": text}, optional={"arguments": st.one_of(text, json_objects(4))}
        )
    },
)
item = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["function_call", "function_call_output", "reasoning", "x"])},
        optional={
            "call_id": text,
            "name": text,
            "namespace": text,
            "arguments": st.one_of(text, json_values(2)),
            "output": st.one_of(text, st.lists(part, max_size=2), json_values(2)),
        },
    ),
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "developer", "assistant", "system", "tool"])},
        optional={
            "type": st.just("message"),
            "content": st.one_of(text, st.lists(part, max_size=2), json_values(2)),
        },
    ),
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "x"])},
    optional={
        "content": st.one_of(text, st.lists(part, max_size=3), st.none(), json_values(4)),
        "tool_calls": st.lists(call, max_size=2),
        "tool_call_id": text,
        "images": st.lists(text, max_size=1),
    },
)
requests = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "messages": st.lists(message, max_size=4),
            "model": st.sampled_from(["", "qwen-turbo", "gpt-4o", "m-x", "llama3", "claude-3"]),
            "stream": st.one_of(st.booleans(), json_values(2)),
            "stream_options": st.one_of(
                st.fixed_dictionaries({"include_usage": st.booleans()}), json_values(2)
            ),
            "prompt": st.one_of(text, json_values(3)),
            "input": st.one_of(
                text, st.lists(text, max_size=3), st.lists(item, max_size=4), json_values(3)
            ),
            "instructions": st.one_of(text, json_values(1)),
            "previous_response_id": st.one_of(st.none(), text),
            "key": st.sampled_from([KEY, "wrong", 5]),
            "max_tokens": json_values(1),
            "options": json_objects(3),
            "tools": st.lists(json_objects(4), max_size=2),
            "response_format": json_objects(3),
            "system": st.one_of(text, st.lists(part, max_size=2), json_values(2)),
            "tool_choice": json_values(2),
        },
    ),
    json_objects(20),
)
raw_bodies = st.one_of(
    requests.map(orjson.dumps),
    json_values(10).map(orjson.dumps),
    st.binary(max_size=200),
)
request_headers = st.fixed_dictionaries(
    {
        ":authority": st.sampled_from(HOSTS),
        ":path": st.sampled_from(PATHS),
        ":method": st.sampled_from(["POST", "GET"]),
    },
    optional={
        "content-type": st.sampled_from(
            ["application/json", "application/json; charset=utf-8", "text/plain", "", "x+json"]
        ),
        "authorization": st.sampled_from([f"Bearer {KEY}", "Bearer x", "Basic y", ""]),
        "x-api-key": st.just(KEY),
        "x-request-id": st.just("rid"),
        "anthropic-version": st.just("2023-06-01"),
    },
)


def frames(objs: list[Any], style: str) -> bytes:
    out = b""
    for o in objs:
        data = orjson.dumps(o)
        if style == "ndjson":
            out += data + b"\n"
        elif style == "claude" and isinstance(o, dict) and isinstance(o.get("type"), str):
            out += b"event: " + o["type"].encode() + b"\ndata: " + data + b"\n\n"
        else:
            out += b"data: " + data + b"\n\n"
    return out + (b"data: [DONE]\n\n" if style == "sse" else b"")


responses = st.one_of(
    st.builds(
        frames,
        st.lists(st.one_of(json_objects(12), openai_objects()), max_size=5),
        st.sampled_from(["sse", "claude", "ndjson"]),
    ),
    json_objects(20).map(orjson.dumps),
    openai_objects().map(orjson.dumps),
    st.binary(max_size=300),
)
response_headers = st.fixed_dictionaries(
    {
        ":status": st.sampled_from(["200", "200", "400", "401", "429", "500", "x"]),
        "content-type": st.sampled_from(
            ["application/json", "text/event-stream", "application/x-ndjson", ""]
        ),
    },
    optional={"retry-after": st.sampled_from(["3", "x", "-1"])},
)


def run(ex: Exchange, event: Any) -> Continue | Reject:
    d = LOOP.run_until_complete(ex.handle(event))
    assert type(d) in (Continue, Reject), d
    return d


@FUZZ
@given(request_headers, st.booleans(), raw_bodies)
def test_any_request(headers: dict[str, str], bodyless: bool, body: bytes) -> None:
    ex = exchange()
    run(ex, RequestHeaders(headers, bodyless))
    if ex.phase is Phase.REQUEST_HEADERS and not bodyless:
        run(ex, RequestBody(body, True))
    ex.close()


@FUZZ
@given(request_headers, requests, response_headers, st.data())
def test_any_request_then_any_response(
    headers: dict[str, str], body: dict[str, Any], rh: dict[str, str], data: st.DataObject
) -> None:
    # Drawn before running: what is drawn must not depend on the outcome.
    payload = data.draw(responses)
    chunks = data.draw(split(payload))
    ex = exchange()
    run(ex, RequestHeaders(headers, False))
    if ex.phase is not Phase.REQUEST_HEADERS:
        return
    if type(run(ex, RequestBody(orjson.dumps(body), True))) is Reject:
        return
    run(ex, ResponseHeaders(rh, not payload))
    if not payload or ex.phase is Phase.DONE:
        return
    for i, chunk in enumerate(chunks):
        d = run(ex, ResponseBody(chunk, i == len(chunks) - 1))
        if type(d) is Reject:
            break
    ex.close()
