"""(Anthropic, X) = (Anthropic, OpenAI) + (OpenAI, X): requests reach each provider in
its own shape, answers come back as Anthropic messages and events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from extproc.streaming.sse import SSEDecoder
from extproc.translators.anthropic.compose import AnthropicVia
from extproc.translators.base import ProviderTarget, TranslationError
from extproc.translators.registry import spec_of
from extproc.usage import Usage

EVENT = TypeAdapter(RawMessageStreamEvent)

BODY: dict[str, Any] = {
    "model": "claude-sonnet-4",
    "max_tokens": 256,
    "system": "Be brief.",
    "top_k": 5,
    "stop_sequences": ["END"],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
}


def target(type_: str, stream: bool = False, **settings_: Any) -> ProviderTarget:
    return ProviderTarget(type_, "h", "/v1", "sk-up", "up-model", stream, settings_)


def via(type_: str) -> AnthropicVia:
    return AnthropicVia(spec_of(type_).translator)


def names(body: bytes) -> list[str]:
    out = []
    for ev in SSEDecoder().feed(body):
        obj = orjson.loads(ev.data)
        if ev.event == "error":
            ErrorResponse.model_validate(obj)
        else:
            EVENT.validate_python(obj)
        out.append(ev.event)
    return out


def text_of(body: bytes) -> str:
    parts = []
    for ev in SSEDecoder().feed(body):
        obj = orjson.loads(ev.data)
        if obj["type"] == "content_block_delta" and obj["delta"]["type"] == "text_delta":
            parts.append(obj["delta"]["text"])
    return "".join(parts)


def test_openai_request_keeps_fields_and_drops_top_k() -> None:
    up = via("openai").chat_request(BODY, target("openai", stream=True))
    assert up.path == "/v1/chat/completions"
    assert ("authorization", "Bearer sk-up") in up.headers
    body = orjson.loads(up.body)
    assert body["model"] == "up-model"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["max_tokens"] == 256
    assert body["stop"] == ["END"]
    assert "top_k" not in body  # OpenAI answers 400 to unknown fields
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_qwen_keeps_top_k() -> None:
    up = via("qwen").chat_request(BODY, target("qwen"))
    assert orjson.loads(up.body)["top_k"] == 5


def test_gemini_request_goes_through_the_gemini_translator() -> None:
    up = via("gemini").chat_request(BODY, target("gemini", stream=True))
    assert up.path == "/v1/models/up-model:streamGenerateContent?alt=sse"
    body = orjson.loads(up.body)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    assert body["generationConfig"] == {"maxOutputTokens": 256, "topK": 5, "stopSequences": ["END"]}


def test_ollama_request_goes_through_the_ollama_translator() -> None:
    up = via("ollama").chat_request(BODY, target("ollama"))
    assert up.path == "/v1/api/chat"
    body = orjson.loads(up.body)
    assert body["options"] == {"top_k": 5, "num_predict": 256, "stop": ["END"]}
    assert body["stream"] is False


def test_untranslatable_request_raises() -> None:
    with pytest.raises(TranslationError):
        via("openai").chat_request({"messages": []}, target("openai"))


def test_openai_response(load: Any) -> None:
    fx = load("openai", "chat_response.json")
    res = via("openai").chat_response(200, orjson.dumps(fx["body"]), target("openai"))
    msg = Message.model_validate(orjson.loads(res.body))
    assert msg.type == "message"
    assert res.usage is not None and res.usage.input_tokens > 0


def test_gemini_response(load: Any) -> None:
    fx = load("gemini", "chat_response.json")
    res = via("gemini").chat_response(200, orjson.dumps(fx["body"]), target("gemini"))
    msg = Message.model_validate(orjson.loads(res.body))
    assert msg.content
    assert res.model == fx["body"].get("modelVersion")


def test_ollama_response(load: Any) -> None:
    fx = load("ollama", "chat_response.json")
    res = via("ollama").chat_response(200, orjson.dumps(fx["body"]), target("ollama"))
    msg = Message.model_validate(orjson.loads(res.body))
    assert msg.usage.output_tokens == res.usage.output_tokens  # type: ignore[union-attr]


@pytest.mark.parametrize("provider", ["openai", "gemini", "ollama", "azure"])
def test_errors_in_anthropic_shape(provider: str, load: Any) -> None:
    fixture = "openai" if provider == "azure" else provider
    fx = load(fixture, "error.json")
    raw = orjson.dumps(fx["body"])
    out = orjson.loads(via(provider).error_response(fx["status"], raw))
    assert out["type"] == "error"
    assert isinstance(out["error"]["message"], str) and out["error"]["message"]


def test_non_json_success_answer_raises() -> None:
    with pytest.raises(TranslationError):
        via("gemini").chat_response(200, b"<html>", target("gemini"))


def feed(s: Any, data: bytes, cuts: list[int] | None = None) -> bytes:
    out = bytearray()
    pos = 0
    for cut in sorted(cuts or []):
        out += s.feed(data[pos:cut])
        pos = cut
    out += s.feed(data[pos:])
    out += s.finish()
    return bytes(out)


@pytest.mark.parametrize(
    ("provider", "fixture", "text"),
    [
        ("openai", "stream.sse", "Héllo 世界"),
        ("gemini", "stream.sse", "Héllo 世界!"),
        ("ollama", "stream.ndjson", "Héllo 世界"),
    ],
)
def test_streams_become_anthropic_events(provider: str, fixture: str, text: str, load: Any) -> None:
    s = via(provider).chat_stream(target(provider, stream=True))
    body = feed(s, load(provider, fixture))
    assert names(body)[0] == "message_start"
    assert names(body)[-2:] == ["message_delta", "message_stop"]
    assert text_of(body) == text
    assert s.usage is not None and s.usage.total_tokens > 0
    assert s.content_type == "text/event-stream"


def test_gemini_usage_comes_from_the_provider(load: Any) -> None:
    s = via("gemini").chat_stream(target("gemini", stream=True))
    feed(s, load("gemini", "stream.sse"))
    assert s.usage == Usage.of(4, 3, 7)
    assert s.model == "gemini-2.0-flash-001"


def test_truncated_provider_stream_ends_with_error(load: Any) -> None:
    data = load("gemini", "stream.sse")
    s = via("gemini").chat_stream(target("gemini", stream=True))
    body = feed(s, data[: data.index(b"finishReason")])
    assert names(body)[-1] == "error"
    assert "message_stop" not in names(body)


GEMINI_STREAM = (
    b'data: {"candidates":[{"content":{"parts":[{"text":"Let me look."}],"role":"model"},"index":0}],'
    b'"modelVersion":"g","responseId":"r1"}\r\n\r\n'
    b'data: {"candidates":[{"content":{"parts":[{"functionCall":{"id":"c1","name":"get_weather",'
    b'"args":{"city":"Paris"}}}],"role":"model"},"finishReason":"STOP","index":0}],'
    b'"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4,"totalTokenCount":13},'
    b'"modelVersion":"g","responseId":"r1"}\r\n\r\n'
)


def test_gemini_tool_call_stream() -> None:
    s = via("gemini").chat_stream(target("gemini", stream=True))
    body = feed(s, GEMINI_STREAM)
    events = [orjson.loads(ev.data) for ev in SSEDecoder().feed(body)]
    tool_start = next(e for e in events if e["type"] == "content_block_start" and e["index"] == 1)
    assert tool_start["content_block"]["name"] == "get_weather"
    assert tool_start["content_block"]["id"] == "c1"
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(GEMINI_STREAM)), max_size=20))
def test_composed_stream_splits_anywhere(cuts: list[int]) -> None:
    def run(c: list[int] | None) -> list[Any]:
        s = via("gemini").chat_stream(target("gemini", stream=True))
        return [orjson.loads(ev.data) for ev in SSEDecoder().feed(feed(s, GEMINI_STREAM, c))]

    assert run(cuts) == run(None)
