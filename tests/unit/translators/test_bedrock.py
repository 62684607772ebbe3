"""Bedrock Converse (OpenAI chat) and Titan/Cohere embeddings, request and answer."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from extproc.streaming.eventstream import encode_event, encode_exception, encode_message
from extproc.streaming.sse import SSEDecoder
from extproc.translators.base import ProviderTarget, TranslationError
from extproc.translators.bedrock import BEDROCK, ConverseStream

PROFILE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"


def target(model: str = PROFILE, stream: bool = False, **settings: Any) -> ProviderTarget:
    return ProviderTarget(
        "bedrock", "bedrock-runtime.us-east-1.amazonaws.com", "", "", model, stream, settings
    )


def test_chat_request_maps_system_messages_inference_and_tools() -> None:
    body = {
        "model": "ignored-client-name",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "wx", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 3}'},
            {"role": "tool", "tool_call_id": "c2", "content": "plain"},
        ],
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": "END",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "wx",
                    "description": "weather",
                    "parameters": {"type": "object"},
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "wx"}},
    }
    req = BEDROCK.chat_request(body, target())
    assert req.path == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    # The signature replaces the client's authorization; compression never goes upstream.
    assert req.remove_headers == ("accept-encoding",)
    assert orjson.loads(req.body) == {
        "system": [{"text": "Be brief."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "weather?"},
                    {"image": {"format": "png", "source": {"bytes": "AAAA"}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": "c1", "name": "wx", "input": {"city": "Oslo"}}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "c1", "content": [{"json": {"temp": 3}}]}},
                    {"toolResult": {"toolUseId": "c2", "content": [{"text": "plain"}]}},
                ],
            },
        ],
        "inferenceConfig": {
            "maxTokens": 100,
            "temperature": 0.5,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "wx",
                        "description": "weather",
                        "inputSchema": {"json": {"type": "object"}},
                    }
                }
            ],
            "toolChoice": {"tool": {"name": "wx"}},
        },
    }


def test_arn_model_id_is_one_encoded_segment_and_stream_path() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-1-8b/x"
    req = BEDROCK.chat_request({"messages": [{"role": "user", "content": "hi"}]}, target(arn, True))
    assert req.path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
        "%2Fus.meta.llama3-1-8b%2Fx/converse-stream"
    )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"messages": []}, "non-empty"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ]
            },
            "data: URLs",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}
                        ],
                    }
                ]
            },
            "image/bmp",
        ),
        ({"messages": [{"role": "system", "content": "only system"}]}, "at least one"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {}}],
            },
            "name",
        ),
    ],
)
def test_untranslatable_requests_are_translation_errors(body: dict[str, Any], match: str) -> None:
    with pytest.raises(TranslationError, match=match):
        BEDROCK.chat_request(body, target())


def test_no_model_is_a_translation_error() -> None:
    with pytest.raises(TranslationError, match="model ID"):
        BEDROCK.chat_request({"messages": [{"role": "user", "content": "x"}]}, target(""))


def test_converse_response_to_openai() -> None:
    body = orjson.dumps(
        {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [
                        {"reasoningContent": {"reasoningText": {"text": "hmm"}}},
                        {"text": "Calling."},
                        {"toolUse": {"toolUseId": "t1", "name": "wx", "input": {"city": "Oslo"}}},
                    ],
                }
            },
            "stopReason": "tool_use",
            "usage": {
                "inputTokens": 11,
                "outputTokens": 7,
                "totalTokens": 18,
                "cacheReadInputTokens": 2,
            },
            "metrics": {"latencyMs": 5},
        }
    )
    out = BEDROCK.chat_response(200, body, target())
    obj = orjson.loads(out.body)
    choice = obj["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Calling."
    assert choice["message"]["reasoning_content"] == "hmm"
    assert choice["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "wx", "arguments": '{"city":"Oslo"}'}}
    ]
    assert obj["usage"]["prompt_tokens"] == 11 and obj["usage"]["total_tokens"] == 18
    assert out.usage is not None and out.usage.cached_tokens == 2
    assert out.model == PROFILE and obj["model"] == PROFILE


def test_converse_response_not_json_is_translation_error() -> None:
    with pytest.raises(TranslationError):
        BEDROCK.chat_response(200, b"<html>", target())


def _converse_frames(text: str = "Hello there") -> bytes:
    ev = [
        encode_event("messageStart", b'{"role":"assistant","p":"abc"}'),
        *(
            encode_event(
                "contentBlockDelta", orjson.dumps({"contentBlockIndex": 0, "delta": {"text": t}})
            )
            for t in (text[:3], text[3:])
        ),
        encode_event("contentBlockStop", b'{"contentBlockIndex":0}'),
        encode_event(
            "contentBlockStart",
            orjson.dumps(
                {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t9", "name": "wx"}}}
            ),
        ),
        encode_event(
            "contentBlockDelta",
            orjson.dumps({"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city":'}}}),
        ),
        encode_event(
            "contentBlockDelta",
            orjson.dumps({"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Oslo"}'}}}),
        ),
        encode_event("contentBlockStop", b'{"contentBlockIndex":1}'),
        encode_event("messageStop", b'{"stopReason":"tool_use"}'),
        encode_event(
            "metadata",
            b'{"usage":{"inputTokens":5,"outputTokens":4,"totalTokens":9},"metrics":{"latencyMs":1}}',
        ),
    ]
    return b"".join(ev)


def _chunks(data: bytes) -> list[Any]:
    return [
        "[DONE]" if e.data == "[DONE]" else orjson.loads(e.data) for e in SSEDecoder().feed(data)
    ]


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_converse_stream_to_openai_chunks_split_anywhere(seed: int | None) -> None:
    st = ConverseStream(PROFILE, include_usage=True)
    data = _converse_frames()
    out = b""
    if seed is None:
        out += st.feed(data)
    else:
        rng, pos = random.Random(seed), 0
        while pos < len(data):
            step = rng.randint(1, 30)
            out += st.feed(data[pos : pos + step])
            pos += step
    out += st.finish()
    chunks = _chunks(out)
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "Hello there"
    calls = [tc for d in deltas for tc in d.get("tool_calls", ())]
    assert calls[0]["id"] == "t9" and calls[0]["function"]["name"] == "wx"
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"city":"Oslo"}'
    assert {tc["index"] for tc in calls} == {0}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"]]
    assert finishes[-1] == "tool_calls"
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] == 9
    assert st.usage is not None and st.usage.output_tokens == 4
    assert st.model == PROFILE


def test_converse_stream_throttling_exception_ends_with_error_event() -> None:
    st = ConverseStream(PROFILE, include_usage=False)
    data = encode_event("messageStart", b'{"role":"assistant"}') + encode_exception(
        "throttlingException", b'{"message":"Too many tokens, please wait."}'
    )
    out = st.feed(data) + st.finish()
    last = _chunks(out)[-1]
    assert last["error"]["type"] == "rate_limit_error"
    assert last["error"]["code"] == "throttlingException"
    assert "Too many tokens" in last["error"]["message"]


def test_converse_stream_cut_before_message_stop_is_an_error() -> None:
    st = ConverseStream(PROFILE, include_usage=False)
    out = st.feed(
        encode_event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"x"}}')
    )
    out += st.finish()
    assert "error" in _chunks(out)[-1]


def test_converse_stream_bad_crc_is_an_error_event_not_an_exception() -> None:
    frame = bytearray(encode_event("messageStart", b'{"role":"assistant"}'))
    frame[-1] ^= 0xFF
    st = ConverseStream(PROFILE, include_usage=False)
    out = st.feed(bytes(frame)) + st.feed(b"more") + st.finish()
    (only,) = _chunks(out)
    assert only["error"]["code"] == "bad_event_stream"


def test_converse_stream_error_message_frame() -> None:
    frame = encode_message(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b""
    )
    out = ConverseStream(PROFILE, False).feed(frame)
    assert _chunks(out)[-1]["error"]["message"] == "boom"


def test_titan_embeddings_one_input() -> None:
    t = target("amazon.titan-embed-text-v2:0")
    req = BEDROCK.embeddings_request({"input": "hello", "dimensions": 256}, t)
    assert req.path == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert orjson.loads(req.body) == {"inputText": "hello", "dimensions": 256}
    out = BEDROCK.embeddings_response(200, b'{"embedding":[0.1,0.2],"inputTextTokenCount":3}', t)
    obj = orjson.loads(out.body)
    assert obj["data"] == [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]
    assert obj["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    with pytest.raises(TranslationError, match="one input"):
        BEDROCK.embeddings_request({"input": ["a", "b"]}, t)


def test_cohere_embeddings_list() -> None:
    t = target("cohere.embed-english-v3")
    req = BEDROCK.embeddings_request({"input": ["a", "b"]}, t)
    assert orjson.loads(req.body) == {"texts": ["a", "b"], "input_type": "search_document"}
    out = BEDROCK.embeddings_response(200, b'{"embeddings":[[1.0],[2.0]],"id":"x"}', t)
    assert [d["embedding"] for d in orjson.loads(out.body)["data"]] == [[1.0], [2.0]]


def test_error_body_maps_to_openai_shape() -> None:
    body = BEDROCK.error_response(429, b'{"message":"Too many requests, please wait."}')
    err = orjson.loads(body)["error"]
    assert err["message"] == "Too many requests, please wait."
    assert err["type"] == "rate_limit_error"


def test_tool_choice_none_declares_no_tools_unless_the_history_has_tool_blocks() -> None:
    tools = [{"type": "function", "function": {"name": "wx", "parameters": {"type": "object"}}}]
    plain = {"messages": [{"role": "user", "content": "hi"}], "tools": tools, "tool_choice": "none"}
    assert "toolConfig" not in orjson.loads(BEDROCK.chat_request(plain, target()).body)
    history = {
        **plain,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "wx", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "3"},
        ],
    }
    cfg = orjson.loads(BEDROCK.chat_request(history, target()).body)["toolConfig"]
    assert "toolChoice" not in cfg and cfg["tools"][0]["toolSpec"]["name"] == "wx"
