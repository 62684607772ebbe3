"""The exchange with a Gemini provider: generateContent paths, the x-goog-api-key
header, answers and embeddings translated.
"""

from __future__ import annotations

import orjson
import pytest

from extproc.config.runtime import Runtime
from extproc.core.exchange import Exchange
from support import (
    CHAT,
    CLIENT_KEY,
    ORIGINAL,
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


async def test_gemini_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "gemini.test", {**CHAT, "model": "gemini-1.5-pro", "max_tokens": 10})
    h = hdrs(d)
    assert h[":authority"] == "generativelanguage.googleapis.com"
    assert h[":path"] == "/v1beta/models/gemini-1.5-pro:generateContent"
    assert h["x-goog-api-key"] == "g-key"
    assert "authorization" in d.remove_headers
    body = orjson.loads(d.body or b"")
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "Hello?"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 10},
    }


async def test_gemini_stream_path(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "gemini.test", {**CHAT, "stream": True})
    assert hdrs(d)[":path"] == "/v1beta/models/m-client:streamGenerateContent?alt=sse"


async def test_gemini_client_key_header_overwritten(rt: Runtime) -> None:
    d = await send(Exchange(rt), "gemini.test", CHAT, headers={"x-goog-api-key": CLIENT_KEY})
    assert hdrs(d)["x-goog-api-key"] == "g-key"
    assert "x-goog-api-key" not in d.remove_headers  # type: ignore[union-attr]


async def test_gemini_response_translated(rt: Runtime) -> None:
    ex = Exchange(rt)
    await send(ex, "gemini.test", CHAT)
    up = orjson.dumps(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Hallo"}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 4,
                "candidatesTokenCount": 1,
                "totalTokenCount": 5,
            },
            "modelVersion": "gemini-2.0-flash-001",
        }
    )
    _, d = await answer(ex, 200, up, parts=4)
    out = client_body(d, up)
    assert out["choices"][0]["message"]["content"] == "Hallo"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"]["total_tokens"] == 5
    assert ex.record.model_served == "gemini-2.0-flash-001"


async def test_protocol_original_gemini() -> None:
    ex = Exchange(runtime(ORIGINAL))
    d = await send(ex, "g.test", {"contents": []}, path="/v1beta/models/x:generateContent")
    h = hdrs(d)
    assert h["x-goog-api-key"] == "g-key" and "authorization" in d.remove_headers  # type: ignore[union-attr]


async def test_embeddings_gemini_translated(rt: Runtime) -> None:
    ex = Exchange(rt)
    sent = {"model": "text-embedding-004", "input": "hello"}
    d = await send(ex, "gemini.test", sent, path="/v1/embeddings")
    assert hdrs(d)[":path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    up = orjson.dumps({"embeddings": [{"values": [0.5, 0.25]}]})
    _, d2 = await answer(ex, 200, up)
    out = client_body(d2, up)
    assert out["object"] == "list" and out["data"][0]["embedding"] == [0.5, 0.25]
