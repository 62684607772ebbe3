from __future__ import annotations

import orjson
import pytest

from extproc.translators.base import TranslationError
from extproc.translators.registry import spec_of
from extproc.usage import Usage

GEMINI = spec_of("gemini").translator


def test_request_from_fixture(load, make_target) -> None:
    fx = load("gemini", "chat_request.json")
    req = GEMINI.chat_request(fx["openai_request"], make_target(fx["target"]))
    assert req.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert ("x-goog-api-key", "AIza-test") in req.headers
    assert "authorization" in req.remove_headers
    assert orjson.loads(req.body) == fx["expected_upstream"]


def test_stream_path(load, make_target) -> None:
    fx = load("gemini", "chat_request.json")
    req = GEMINI.chat_request(fx["openai_request"], make_target(fx["target"], stream=True))
    assert req.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"


def test_tools_roundtrip_request(load, make_target) -> None:
    t = make_target(load("gemini", "chat_request.json")["target"])
    body = {
        "messages": [
            {"role": "user", "content": "weather?"},
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
        ],
        "tools": [{"type": "function", "function": {"name": "wx", "parameters": {}}}],
        "tool_choice": "required",
    }
    out = orjson.loads(GEMINI.chat_request(body, t).body)
    assert out["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "wx", "args": {"city": "Oslo"}}}],
    }
    assert out["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "wx",
        "response": {"temp": 3},
    }
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_remote_image_url_rejected(load, make_target) -> None:
    t = make_target(load("gemini", "chat_request.json")["target"])
    part = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    with pytest.raises(TranslationError, match="data: URL"):
        GEMINI.chat_request({"messages": [{"role": "user", "content": [part]}]}, t)


def test_response_from_fixture(load, make_target) -> None:
    fx = load("gemini", "chat_response.json")
    t = make_target(load("gemini", "chat_request.json")["target"])
    res = GEMINI.chat_response(200, orjson.dumps(fx["body"]), t)
    out = orjson.loads(res.body)
    exp = fx["expected"]
    msg = out["choices"][0]["message"]
    assert msg["content"] == exp["content"]
    assert msg["reasoning_content"] == exp["reasoning_content"]
    assert out["choices"][0]["finish_reason"] == exp["finish_reason"]
    assert res.usage == Usage(*exp["usage"])
    assert res.model == out["model"] == exp["model"]
    assert out["id"] == "Il0taoSYJ5Cez7"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter")],
)
def test_finish_reason_mapping(reason: str, expected: str, load, make_target) -> None:
    t = make_target(load("gemini", "chat_request.json")["target"])
    body = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    out = orjson.loads(GEMINI.chat_response(200, orjson.dumps(body), t).body)
    assert out["choices"][0]["finish_reason"] == expected


def test_function_call_response(load, make_target) -> None:
    t = make_target(load("gemini", "chat_request.json")["target"])
    body = {
        "candidates": [
            {
                "content": {"parts": [{"functionCall": {"name": "wx", "args": {"c": 1}}}]},
                "finishReason": "STOP",
            }
        ]
    }
    out = orjson.loads(GEMINI.chat_response(200, orjson.dumps(body), t).body)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["function"] == {"name": "wx", "arguments": '{"c":1}'}
    assert "index" not in call


@pytest.mark.parametrize("seed", [None, 21, 22, 23, 24, 25])
def test_stream_translation(load, make_target, feed_split, events, seed) -> None:
    t = make_target(load("gemini", "chat_request.json")["target"], stream=True)
    st = GEMINI.chat_stream(t, include_usage=True)
    evs = events(feed_split(st, load("gemini", "stream.sse"), seed))
    assert evs[-1] == "[DONE]"
    chunks = [e for e in evs[:-1] if e["choices"]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Héllo 世界!"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert evs[-2]["usage"]["total_tokens"] == 7
    assert st.usage == Usage(4, 3, 7)
    assert st.model == "gemini-2.0-flash-001"


def test_stream_without_finish_reason_is_error(load, make_target, events) -> None:
    raw = load("gemini", "stream.sse")
    cut = raw[: raw.index(b'"finishReason"')].rsplit(b"data:", 1)[0]
    st = GEMINI.chat_stream(make_target(load("gemini", "chat_request.json")["target"]), True)
    evs = events(st.feed(cut) + st.finish())
    assert "[DONE]" not in evs
    assert "finishReason" in evs[-1]["error"]["message"]


def test_embeddings(load, make_target) -> None:
    fx = load("gemini", "embeddings.json")
    t = make_target(fx["target"])
    req = GEMINI.embeddings_request(fx["openai_request"], t)
    assert req.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert orjson.loads(req.body) == fx["expected_upstream"]
    res = GEMINI.embeddings_response(200, orjson.dumps(fx["response"]), t)
    out = orjson.loads(res.body)
    assert [d["embedding"] for d in out["data"]] == [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["object"] == "list"


def test_error_response(load) -> None:
    fx = load("gemini", "error.json")
    out = orjson.loads(GEMINI.error_response(fx["status"], orjson.dumps(fx["body"])))
    assert out["error"]["message"] == "API key not valid. Please pass a valid API key."
    assert out["error"]["type"] == "invalid_request_error"
    assert out["error"]["code"] == "INVALID_ARGUMENT"
