from __future__ import annotations

import orjson
import pytest

from extproc.api_errors import ollama_error_body
from extproc.translators.registry import spec_of
from extproc.usage import Usage

OLLAMA = spec_of("ollama").translator


def test_request_from_fixture(load, make_target) -> None:
    fx = load("ollama", "chat_request.json")
    req = OLLAMA.chat_request(fx["openai_request"], make_target(fx["target"]))
    assert req.path == "/api/chat"
    assert not any(k == "authorization" for k, _ in req.headers)
    assert orjson.loads(req.body) == fx["expected_upstream"]


def test_stream_flag_explicit_and_bearer_when_key(load, make_target) -> None:
    fx = load("ollama", "chat_request.json")
    t = make_target(fx["target"], stream=True, api_key="tok")
    req = OLLAMA.chat_request(fx["openai_request"], t)
    assert orjson.loads(req.body)["stream"] is True
    assert ("authorization", "Bearer tok") in req.headers


def test_response_from_fixture(load, make_target) -> None:
    fx = load("ollama", "chat_response.json")
    t = make_target(load("ollama", "chat_request.json")["target"])
    res = OLLAMA.chat_response(200, orjson.dumps(fx["body"]), t)
    out = orjson.loads(res.body)
    exp = fx["expected"]
    assert out["choices"][0]["message"]["content"] == exp["content"]
    assert out["choices"][0]["finish_reason"] == exp["finish_reason"]
    assert res.usage == Usage(*exp["usage"])
    assert res.model == exp["model"]


@pytest.mark.parametrize("seed", [None, 31, 32, 33, 34])
def test_stream_translation(load, make_target, feed_split, events, seed) -> None:
    t = make_target(load("ollama", "chat_request.json")["target"], stream=True)
    st = OLLAMA.chat_stream(t, include_usage=True)
    evs = events(feed_split(st, load("ollama", "stream.ndjson"), seed))
    assert st.content_type == "text/event-stream"
    assert evs[-1] == "[DONE]"
    chunks = [e for e in evs[:-1] if e["choices"]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Héllo 世界"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert evs[-2]["usage"]["prompt_tokens"] == 26
    assert st.usage == Usage(26, 282, 308)
    assert st.model == "llama3.2"


def test_stream_error_line_and_truncation(load, make_target, events) -> None:
    t = make_target(load("ollama", "chat_request.json")["target"], stream=True)
    st = OLLAMA.chat_stream(t, include_usage=False)
    evs = events(
        st.feed(b'{"model":"m","message":{"content":"a"},"done":false}\n{"error":"boom"}\n')
    )
    assert evs[-1]["error"]["message"] == "boom"
    assert st.finish() == b""
    st2 = OLLAMA.chat_stream(t, include_usage=False)
    evs2 = events(
        st2.feed(b'{"model":"m","message":{"content":"a"},"done":false}\n') + st2.finish()
    )
    assert "[DONE]" not in evs2
    assert "done" in evs2[-1]["error"]["message"]


def test_embeddings(load, make_target) -> None:
    fx = load("ollama", "embed.json")
    t = make_target(fx["target"])
    req = OLLAMA.embeddings_request(fx["openai_request"], t)
    assert req.path == "/api/embed"
    assert orjson.loads(req.body) == fx["expected_upstream"]
    res = OLLAMA.embeddings_response(200, orjson.dumps(fx["response"]), t)
    out = orjson.loads(res.body)
    assert out["data"][1]["embedding"] == fx["response"]["embeddings"][1]
    assert out["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    assert res.usage == Usage(8, 0, 8)


def test_error_response(load) -> None:
    fx = load("ollama", "error.json")
    out = orjson.loads(OLLAMA.error_response(fx["status"], orjson.dumps(fx["body"])))
    assert out["error"]["message"] == fx["body"]["error"]
    assert out["error"]["type"] == "not_found_error"


def test_ollama_error_body() -> None:
    assert orjson.loads(ollama_error_body('no "model"')) == {"error": 'no "model"'}
