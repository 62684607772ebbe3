"""Ollama-native clients to Ollama: bytes kept, usage read (errors: tests/unit/core/test_legs.py)."""

from __future__ import annotations

import orjson

from extproc.translators.ollama_native import NativeStreamTap, native_request, native_response
from extproc.usage import Usage


def test_native_passthrough_untouched(load, make_target) -> None:
    t = make_target(load("ollama", "chat_request.json")["target"])
    raw = b'{"model": "llama3.2", "prompt": "hi"}'
    req = native_request("/api/generate", raw, orjson.loads(raw), t)
    assert req.body is raw
    assert req.path == "/api/generate"
    mapped = native_request(
        "/api/chat", b'{"model":"alias","messages":[]}', {"model": "alias", "messages": []}, t
    )
    assert orjson.loads(mapped.body) == {"model": "llama3.2", "messages": []}


def test_native_response_and_stream_tap(load) -> None:
    body = orjson.dumps(load("ollama", "chat_response.json")["body"])
    res = native_response(200, body)
    assert res.body is body
    assert res.usage == Usage(26, 298, 324)
    raw = load("ollama", "stream.ndjson")
    tap = NativeStreamTap()
    out = b"".join(tap.feed(raw[i : i + 7]) for i in range(0, len(raw), 7)) + tap.finish()
    assert out == raw
    assert tap.usage == Usage(26, 282, 308)
    assert tap.content_type == "application/x-ndjson"
