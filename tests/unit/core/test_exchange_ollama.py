"""The exchange with an Ollama provider, for OpenAI clients: /api/chat both ways."""

from __future__ import annotations

import orjson
import pytest

from extproc.config.runtime import Runtime
from extproc.core.exchange import Exchange
from support import (
    CHAT,
    PROVIDERS,
    answer,
    client_body,
    hdrs,
    runtime,
    send,
)


@pytest.fixture
def rt() -> Runtime:
    # Per test: token pools remember 401/429 answers.
    return runtime(PROVIDERS)


async def test_ollama_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "ollama.test", {**CHAT, "model": ""})
    h = hdrs(d)
    assert h[":authority"] == "ollama.internal:11434"
    assert h[":path"] == "/api/chat"
    assert "authorization" not in h  # no token configured: none sent ...
    assert "authorization" in d.remove_headers  # ... and the client's is not forwarded
    body = orjson.loads(d.body or b"")
    assert body == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello?"},
        ],
        "stream": False,  # Ollama streams unless told not to
    }


async def test_ollama_response_translated(rt: Runtime) -> None:
    ex = Exchange(rt)
    await send(ex, "ollama.test", CHAT)
    up = orjson.dumps(
        {
            "model": "llama3.2",
            "message": {"role": "assistant", "content": "Hey"},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 8,
            "eval_count": 5,
        }
    )
    _, d = await answer(ex, 200, up)
    out = client_body(d, up)
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hey"}
    assert out["usage"]["prompt_tokens"] == 8 and out["usage"]["total_tokens"] == 13
