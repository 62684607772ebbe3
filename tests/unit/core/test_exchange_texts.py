"""Issue #11 on the sans-IO exchange: the checks read every text the model
reads, and content they cannot read is a 400 naming the field, never forwarded."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.config.runtime import Runtime
from extproc.core.events import Continue, Reject
from extproc.core.exchange import Exchange
from support import request_headers, runtime, send_request

CONFIG = """
providers:
- {name: q, type: qwen, api_tokens: [k]}
- {name: o, type: ollama, base_url: "http://127.0.0.1:11434"}
routes:
- name: checked
  match: {hosts: [checked.test]}
  provider: q
  processors: [{regex_guard: {deny_patterns: ["账号"]}}]
- name: ollama
  match: {hosts: [ollama.test]}
  provider: o
  client_api: ollama
  processors: [{regex_guard: {deny_patterns: ["账号"]}}]
- name: plain
  match: {hosts: [plain.test]}
  provider: q
- name: anthropic
  match: {hosts: [anthropic.test]}
  provider: q
  client_api: anthropic
  processors: [{regex_guard: {deny_patterns: ["账号"]}}]
"""


@pytest.fixture(scope="module")
def rt() -> Runtime:
    return runtime(CONFIG)


async def send(rt: Runtime, host: str, path: str, body: Any) -> Continue | Reject:
    d = await send_request(Exchange(rt), request_headers(host, path), body)
    assert isinstance(d, Continue | Reject)
    return d


DENIED = "我的账号"
CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CHAT, {"messages": [{"role": "system", "content": DENIED}]}),
        (CHAT, {"messages": [{"role": "assistant", "content": DENIED}]}),
        (CHAT, {"messages": [{"role": "tool", "tool_call_id": "1", "content": DENIED}]}),
        (CHAT, {"messages": [{"role": "developer", "content": DENIED}]}),
        (
            CHAT,
            {"messages": [{"role": "user", "content": [{"type": "text", "text": DENIED}]}]},
        ),
        (
            CHAT,
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "1",
                                "type": "function",
                                "function": {"name": "f", "arguments": DENIED},
                            }
                        ],
                    }
                ]
            },
        ),
        ("/v1/embeddings", {"model": "e", "input": ["ok", DENIED]}),
        ("/v1/completions", {"model": "m", "prompt": DENIED}),
        ("/v1/responses", {"model": "m", "instructions": DENIED, "input": "hi"}),
    ],
)
async def test_denied_text_anywhere_the_model_reads_is_blocked(
    rt: Runtime, path: str, body: dict[str, Any]
) -> None:
    d = await send(rt, "checked.test", path, body)
    assert isinstance(d, Reject) and d.status == 403, d
    assert orjson.loads(d.body)["error"]["code"] == "content_denied"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate", {"model": "m", "prompt": DENIED}),
        ("/api/generate", {"model": "m", "prompt": "hi", "system": DENIED}),
        ("/api/chat", {"model": "m", "messages": [{"role": "system", "content": DENIED}]}),
        (
            "/api/chat",
            {
                "model": "m",
                "messages": [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": {"q": DENIED}}}],
                    }
                ],
            },
        ),
        ("/api/embed", {"model": "m", "input": DENIED}),
    ],
)
async def test_ollama_texts_are_checked(rt: Runtime, path: str, body: dict[str, Any]) -> None:
    d = await send(rt, "ollama.test", path, body)
    assert isinstance(d, Reject) and d.status == 403
    assert set(orjson.loads(d.body)) == {"error"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": {"text": DENIED}}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "secret_part", "data": DENIED}]}]},
            "messages[0].content[0].type",
        ),
        ({"messages": [{"role": "user", "content": "x"}, {"content": DENIED}]}, "messages[1].role"),
    ],
)
async def test_unreadable_content_is_a_400_naming_the_field(
    rt: Runtime, body: dict[str, Any], field: str
) -> None:
    d = await send(rt, "checked.test", CHAT, body)
    assert isinstance(d, Reject) and d.status == 400
    err = orjson.loads(d.body)["error"]
    assert err["code"] == "invalid_content" and err["type"] == "invalid_request_error"
    assert err["message"].startswith(field + ": ")
    assert DENIED not in err["message"]


async def test_unreadable_on_an_ollama_route_is_ollamas_error_shape(rt: Runtime) -> None:
    d = await send(
        rt, "ollama.test", "/api/generate", {"model": "m", "prompt": "p", "context": [1, 2]}
    )
    assert isinstance(d, Reject) and d.status == 400
    (msg,) = orjson.loads(d.body).values()
    assert msg.startswith("context[0]: ")


async def test_embeddings_token_ids_are_unreadable_where_checked(rt: Runtime) -> None:
    d = await send(rt, "checked.test", "/v1/embeddings", {"model": "e", "input": [[1, 2, 3]]})
    assert isinstance(d, Reject) and d.status == 400
    assert orjson.loads(d.body)["error"]["message"].startswith("input[0]: token ids")


async def test_a_route_without_checks_reads_nothing(rt: Runtime) -> None:
    # No processor reads texts there: nothing is checked, so nothing is refused
    # for being unreadable (the provider judges its own input).
    d = await send(rt, "plain.test", "/v1/embeddings", {"model": "e", "input": [[1, 2, 3]]})
    assert isinstance(d, Continue)
    assert not rt.routes.match("plain.test", "/", {}).reads_texts  # type: ignore[union-attr]
    assert rt.routes.match("checked.test", "/", {}).reads_texts  # type: ignore[union-attr]


async def test_readable_requests_pass_unchanged(rt: Runtime) -> None:
    raw = orjson.dumps(
        {
            "model": "qwen-turbo",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                },
            ],
        }
    )
    d = await send(rt, "checked.test", CHAT, raw)
    assert isinstance(d, Continue) and d.body is None


@pytest.mark.parametrize(
    "body",
    [
        {"system": DENIED, "messages": [{"role": "user", "content": "hi"}]},
        {
            "system": [{"type": "text", "text": DENIED}],
            "messages": [{"role": "user", "content": "hi"}],
        },
        {"messages": [{"role": "assistant", "content": DENIED}, {"role": "user", "content": "hi"}]},
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t", "name": "f", "input": {"q": DENIED}}
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}],
                },
            ]
        },
    ],
)
async def test_anthropic_messages_texts_are_checked(rt: Runtime, body: dict[str, Any]) -> None:
    d = await send(rt, "anthropic.test", "/v1/messages", {"model": "m", "max_tokens": 5, **body})
    assert isinstance(d, Reject) and d.status == 403
    assert orjson.loads(d.body)["type"] == "error"


async def test_anthropic_unreadable_block_is_a_400_in_anthropics_shape(rt: Runtime) -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [{"type": "secret"}]}],
    }
    d = await send(rt, "anthropic.test", "/v1/messages", body)
    assert isinstance(d, Reject) and d.status == 400
    err = orjson.loads(d.body)["error"]
    assert err["type"] == "invalid_request_error"
    assert err["message"].startswith("messages[0].content[0].type: ")
