"""The exchange with a Claude provider, for OpenAI clients: requests and answers
translated, `protocol: original` passing the Messages API through, no embeddings.
"""

from __future__ import annotations

import orjson
import pytest

from extproc.config.runtime import Runtime
from extproc.core.events import (
    Continue,
    Reject,
    RequestHeaders,
)
from extproc.core.exchange import Exchange
from support import (
    CHAT,
    ORIGINAL,
    PROVIDERS,
    answer,
    client_body,
    hdrs,
    req_headers,
    runtime,
    send,
)


@pytest.fixture
def rt() -> Runtime:
    # Per test: token pools remember 401/429 answers.
    return runtime(PROVIDERS)


async def test_claude_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "claude.test", {**CHAT, "max_tokens": 50, "temperature": 0.2})
    h = hdrs(d)
    assert h[":authority"] == "api.anthropic.com"
    assert h[":path"] == "/v1/messages"
    assert h["x-api-key"] == "sk-ant"
    assert h["anthropic-version"] == "2023-06-01"
    assert h["content-type"] == "application/json"
    assert "authorization" in d.remove_headers
    body = orjson.loads(d.body or b"")
    assert h["content-length"] == str(len(d.body or b""))
    assert body == {
        "model": "m-client",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello?"}]}],
        "max_tokens": 50,
        "temperature": 0.2,
    }


async def test_claude_default_model_and_max_tokens(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "claude.test", {"messages": [{"role": "user", "content": "x"}]})
    body = orjson.loads(d.body or b"")  # type: ignore[union-attr]
    assert body["model"] == "claude-sonnet-4"
    assert body["max_tokens"] == 4096  # Anthropic requires it


@pytest.mark.parametrize("parts", [1, 3, 17])
async def test_claude_response_translated(rt: Runtime, parts: int) -> None:
    ex = Exchange(rt)
    await send(ex, "claude.test", CHAT)
    up = orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-20250514",
            "content": [{"type": "text", "text": "Bonjour"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 12, "output_tokens": 9},
        }
    )
    hd, d = await answer(ex, 200, up, parts=parts)
    assert hdrs(hd)["x-llm-provider"] == "claude"
    out = client_body(d, up)
    assert out["object"] == "chat.completion"
    assert out["model"] == "claude-sonnet-4-20250514"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Bonjour"}
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"]["prompt_tokens"] == 12 and out["usage"]["completion_tokens"] == 9
    assert hdrs(d)["content-length"] == str(len(d.body or b""))  # type: ignore[union-attr]
    assert d.metadata["llm_extproc"]["total_tokens"] == 21  # type: ignore[union-attr,index]


async def test_protocol_original_claude_native_body() -> None:
    """Regression: pass-through built a chat request from {} and raised TranslationError."""
    ex = Exchange(runtime(ORIGINAL))
    native = {"model": "claude-3", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    d = await send(
        ex, "c.test", native, path="/v1/messages", headers={"anthropic-version": "2024-01-01"}
    )
    assert isinstance(d, Continue) and d.body is None
    h = hdrs(d)
    assert h["x-api-key"] == "sk-ant"
    assert "anthropic-version" not in h  # the client's own version is kept
    assert "authorization" in d.remove_headers
    assert h[":authority"] == "api.anthropic.com"
    assert ":path" not in h  # the client's native path is kept


async def test_protocol_original_claude_sets_version_when_missing() -> None:
    ex = Exchange(runtime(ORIGINAL))
    d = await send(ex, "c.test", {"messages": []}, path="/v1/messages")
    assert hdrs(d)["anthropic-version"] == "2023-06-01"


async def test_bodyless_request_to_claude_route() -> None:
    """Regression: a GET (no body) to a claude provider raised TranslationError."""
    rt = runtime(PROVIDERS)
    ex = Exchange(rt)
    d = await ex.handle(
        RequestHeaders(req_headers("claude.test", "/v1/models", {":method": "GET"}), True)
    )
    h = hdrs(d)
    assert h["x-api-key"] == "sk-ant" and h[":authority"] == "api.anthropic.com"
    assert "authorization" in d.remove_headers  # type: ignore[union-attr]


async def test_embeddings_claude_is_400(rt: Runtime) -> None:
    d = await send(Exchange(rt), "claude.test", {"input": "x"}, path="/v1/embeddings")
    assert isinstance(d, Reject) and d.status == 400
    assert b"embeddings" in d.body
