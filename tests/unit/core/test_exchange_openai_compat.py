"""The exchange with OpenAI-compatible providers (qwen, deepseek): the client's
bytes go on when nothing changed; answers pass through, read for usage.
"""

from __future__ import annotations

import orjson
import pytest

from extproc.config.runtime import Runtime
from extproc.core.events import (
    BodyMode,
    Continue,
    RequestHeaders,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, ExchangeRecord, Phase
from support import (
    CHAT,
    CLIENT_KEY,
    ORIGINAL,
    PROVIDERS,
    answer,
    hdrs,
    req_headers,
    runtime,
    send,
    upstream_body,
)


@pytest.fixture
def rt() -> Runtime:
    # Per test: token pools remember 401/429 answers.
    return runtime(PROVIDERS)


async def test_openai_compatible_qwen_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "qwen.test", CHAT)
    h = hdrs(d)
    assert h[":authority"] == "dashscope.aliyuncs.com"
    assert h[":path"] == "/compatible-mode/v1/chat/completions"
    assert h["authorization"] == "Bearer sk-qwen"  # the client's key is overwritten
    assert CLIENT_KEY not in repr(d)
    assert d.clear_route_cache is True
    # Nothing to change: the client's exact bytes go on.
    assert d.body is None
    assert upstream_body(d, CHAT) == CHAT


async def test_openai_compatible_default_model_filled(rt: Runtime) -> None:
    ex = Exchange(rt)
    sent = {"messages": [{"role": "user", "content": "hi"}]}
    d = await send(ex, "deepseek.test", sent)
    h = hdrs(d)
    assert h[":authority"] == "api.deepseek.com"
    assert h[":path"] == "/chat/completions"
    assert h["authorization"] == "Bearer sk-deepseek"
    assert h["content-length"] == str(len(d.body or b""))
    assert upstream_body(d, sent) == {**sent, "model": "deepseek-chat"}
    assert ex.record.model_served == "deepseek-chat"
    assert ex.record.model_requested == ""


async def test_openai_compatible_response_passes_through_with_usage(rt: Runtime) -> None:
    records: list[ExchangeRecord] = []
    ex = Exchange(rt, on_done=records.append)
    await send(ex, "qwen.test", CHAT)
    up = orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "model": "qwen-plus-2025",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )
    hd, d = await answer(ex, 200, up)
    assert hdrs(hd)["x-llm-provider"] == "qwen"
    assert isinstance(d, Continue) and d.body is None  # unchanged bytes
    meta = d.metadata["llm_extproc"]  # type: ignore[index]
    assert (meta["input_tokens"], meta["output_tokens"], meta["total_tokens"]) == (3, 2, 5)
    assert meta["provider"] == "qwen" and meta["route"] == "r-qwen"
    assert meta["model_served"] == "qwen-plus-2025"
    assert ex.phase is Phase.DONE
    assert len(records) == 1 and records[0].usage is not None
    assert records[0].usage.total_tokens == 5 and records[0].status == 200


async def test_protocol_original_openai_compatible_keeps_body() -> None:
    ex = Exchange(runtime(ORIGINAL))
    sent = {"messages": [{"role": "user", "content": "x"}], "extra": [1, 2]}
    d = await send(ex, "q.test", sent)
    assert isinstance(d, Continue) and d.body is None  # untouched: no default model either
    h = hdrs(d)
    assert h["authorization"] == "Bearer sk-q"
    assert h[":authority"] == "dashscope.aliyuncs.com"
    assert h[":path"] == "/compatible-mode/v1/chat/completions"
    hd = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "application/json"}, False)
    )
    assert hd.mode is not None and hd.mode.response_body is BodyMode.NONE  # type: ignore[union-attr]
    assert hdrs(hd)["x-llm-provider"] == "q"


async def test_bodyless_models_request_maps_base_path() -> None:
    ex = Exchange(runtime(PROVIDERS))
    d = await ex.handle(
        RequestHeaders(req_headers("qwen.test", "/v1/models", {":method": "GET"}), True)
    )
    h = hdrs(d)
    assert h[":path"] == "/compatible-mode/v1/models" and h["authorization"] == "Bearer sk-qwen"


async def test_embeddings_openai_compatible(rt: Runtime) -> None:
    ex = Exchange(rt)
    sent = {"model": "text-embedding-v3", "input": ["a", "b"]}
    d = await send(ex, "qwen.test", sent, path="/v1/embeddings")
    h = hdrs(d)
    assert h[":path"] == "/compatible-mode/v1/embeddings" and h["authorization"] == "Bearer sk-qwen"
    up = orjson.dumps(
        {"object": "list", "data": [], "usage": {"prompt_tokens": 4, "total_tokens": 4}}
    )
    _, d2 = await answer(ex, 200, up)
    assert d2.metadata["llm_extproc"]["input_tokens"] == 4  # type: ignore[union-attr,index]
