from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.translators.base import TranslationError
from extproc.translators.registry import spec_of
from extproc.usage import Usage

CLAUDE = spec_of("claude").translator


def test_request_from_fixture(load, make_target) -> None:
    fx = load("claude", "chat_request.json")
    req = CLAUDE.chat_request(fx["openai_request"], make_target(fx["target"]))
    assert req.path == "/v1/messages"
    headers = dict(req.headers)
    assert headers["x-api-key"] == "sk-ant-test"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" in req.remove_headers
    assert orjson.loads(req.body) == fx["expected_upstream"]


def test_max_tokens_default_and_settings(make_target, load) -> None:
    t = load("claude", "chat_request.json")["target"]
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    assert orjson.loads(CLAUDE.chat_request(body, make_target(t)).body)["max_tokens"] == 4096
    t2 = make_target(t, settings={"max_tokens": 99, "anthropic_version": "2024-01-01"})
    req = CLAUDE.chat_request(body, t2)
    assert orjson.loads(req.body)["max_tokens"] == 99
    assert ("anthropic-version", "2024-01-01") in req.headers


def test_request_rejects_unknown_role(make_target, load) -> None:
    t = make_target(load("claude", "chat_request.json")["target"])
    with pytest.raises(TranslationError, match="role"):
        CLAUDE.chat_request({"messages": [{"role": "wizard", "content": "x"}]}, t)


def test_response_from_fixture(load, make_target) -> None:
    fx = load("claude", "chat_response.json")
    t = make_target(load("claude", "chat_request.json")["target"])
    res = CLAUDE.chat_response(200, orjson.dumps(fx["body"]), t)
    out = orjson.loads(res.body)
    exp = fx["expected"]
    assert out["object"] == "chat.completion"
    choice = out["choices"][0]
    assert choice["message"]["content"] == exp["content"]
    assert choice["finish_reason"] == exp["finish_reason"]
    assert choice["message"]["tool_calls"] == exp["tool_calls"]
    assert res.usage == Usage(*exp["usage"])
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 2000
    assert res.model == exp["model"]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop")],
)
def test_stop_reason_mapping(reason: str, expected: str, make_target, load) -> None:
    t = make_target(load("claude", "chat_request.json")["target"])
    body = {"content": [{"type": "text", "text": "x"}], "stop_reason": reason, "usage": {}}
    out = orjson.loads(CLAUDE.chat_response(200, orjson.dumps(body), t).body)
    assert out["choices"][0]["finish_reason"] == expected


@pytest.mark.parametrize("seed", [None, 11, 12, 13, 14, 15, 16])
def test_stream_translation(load, make_target, feed_split, events, seed) -> None:
    t = make_target(load("claude", "chat_request.json")["target"])
    st = CLAUDE.chat_stream(t, include_usage=True)
    out = feed_split(st, load("claude", "stream.sse"), seed)
    evs = events(out)
    assert st.content_type == "text/event-stream"
    assert evs[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in evs[:-2]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    text = "".join(d.get("content", "") for d in deltas)
    assert text == "Héllo 世界!"
    calls = [c for d in deltas for c in d.get("tool_calls", [])]
    assert calls[0]["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert calls[0]["function"]["name"] == "get_weather"
    args = "".join(c["function"]["arguments"] for c in calls)
    assert orjson.loads(args) == {"location": "San Francisco, CA"}
    assert evs[-3]["choices"][0]["finish_reason"] == "tool_calls"
    usage_chunk = evs[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 35
    assert usage_chunk["usage"]["completion_tokens"] == 15
    assert st.usage == Usage(35, 15, 50, cached_tokens=10)
    assert st.model == "claude-sonnet-4-20250514"
    assert all(e["model"] == "claude-sonnet-4-20250514" for e in evs[:-1])


def test_stream_without_usage_request_has_no_usage_chunk(load, make_target, events) -> None:
    t = make_target(load("claude", "chat_request.json")["target"])
    st = CLAUDE.chat_stream(t, include_usage=False)
    evs = events(st.feed(load("claude", "stream.sse")) + st.finish())
    assert all(e == "[DONE]" or e["choices"] for e in evs)
    assert st.usage is not None  # still metered


def test_stream_error_event(load, make_target, events) -> None:
    t = make_target(load("claude", "chat_request.json")["target"])
    st = CLAUDE.chat_stream(t, include_usage=True)
    evs = events(st.feed(load("claude", "stream_error.sse")) + st.finish())
    assert evs[-1]["error"] == {
        "message": "Overloaded",
        "type": "server_error",
        "param": None,
        "code": "overloaded_error",
    }
    assert "[DONE]" not in evs


def test_truncated_stream_ends_with_error_not_done(load, make_target, events) -> None:
    t = make_target(load("claude", "chat_request.json")["target"])
    raw = load("claude", "stream.sse")
    st = CLAUDE.chat_stream(t, include_usage=True)
    evs = events(st.feed(raw[: raw.index(b"event: message_delta")]) + st.finish())
    assert "[DONE]" not in evs
    assert "message_stop" in evs[-1]["error"]["message"]


def test_error_response(load) -> None:
    fx = load("claude", "error.json")
    out = orjson.loads(CLAUDE.error_response(fx["status"], orjson.dumps(fx["body"])))
    assert out["error"]["message"] == "Overloaded"
    assert out["error"]["type"] == "server_error"
    assert out["error"]["code"] == "overloaded_error"
    auth = orjson.loads(
        CLAUDE.error_response(
            401,
            b'{"type":"error","error":{"type":"authentication_error",'
            b'"message":"invalid x-api-key"}}',
        )
    )
    assert auth["error"]["type"] == "authentication_error"
    assert auth["error"]["message"] == "invalid x-api-key"


def test_embeddings_unsupported(make_target, load) -> None:
    t = make_target(load("claude", "chat_request.json")["target"])
    with pytest.raises(TranslationError):
        CLAUDE.embeddings_request({"input": "x"}, t)
