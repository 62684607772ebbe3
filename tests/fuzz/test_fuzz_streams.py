"""Fuzz: every stream decoder and translator, and every response translator,
on any upstream bytes split anywhere.

Stream translators may raise only StreamLimitError (the exchange turns it into
a cut-off stream); the raw decoders also StreamDecodeError; buffered response
translators may raise only TranslationError (the exchange answers 502).
"""

from __future__ import annotations

from typing import Any

import orjson
from fuzzing import FUZZ, json_objects, split
from hypothesis import given
from hypothesis import strategies as st

from extproc.streaming.errors import StreamDecodeError, StreamLimitError
from extproc.streaming.ndjson import NDJSONDecoder
from extproc.streaming.sse import SSEDecoder
from extproc.translators.base import ProviderTarget, TranslationError
from extproc.translators.ollama import NativeStreamTap, native_response
from extproc.translators.registry import get_translator

TYPES = ["openai", "azure", "claude", "gemini", "ollama"]
LINE = 2048  # small limits, so that the limit paths run too


def frames(objs: list[Any], style: str, done: bool) -> bytes:
    out = b""
    for o in objs:
        data = orjson.dumps(o)
        if style == "ndjson":
            out += data + b"\n"
        elif style == "event" and isinstance(o, dict) and isinstance(o.get("type"), str):
            out += b"event: " + o["type"].encode() + b"\r\ndata: " + data + b"\r\n\r\n"
        else:
            out += b"data: " + data + b"\n\n"
    return out + (b"data: [DONE]\n\n" if done else b"")


streams = st.one_of(
    st.builds(
        frames,
        st.lists(json_objects(15), max_size=6),
        st.sampled_from(["sse", "event", "ndjson"]),
        st.booleans(),
    ),
    st.binary(max_size=400),
    st.builds(lambda n: b"data: " + b"x" * n, st.integers(LINE - 2, LINE + 2)),
)
bodies = st.one_of(
    json_objects(25).map(orjson.dumps),
    st.builds(orjson.dumps, st.lists(json_objects(5), max_size=3)),
    st.binary(max_size=200),
)
targets = st.builds(
    ProviderTarget,
    type=st.sampled_from(TYPES),
    host=st.just("up.test"),
    base_path=st.just(""),
    api_key=st.just("k"),
    model=st.sampled_from(["m", ""]),
    stream=st.just(True),
    settings=st.just({"include_usage": True}),
)


@FUZZ
@given(targets, st.booleans(), streams, st.data())
def test_stream_translators(
    target: ProviderTarget, include_usage: bool, raw: bytes, data: st.DataObject
) -> None:
    chunks = data.draw(split(raw))
    tx = get_translator(target.type).chat_stream(target, include_usage, LINE)
    try:
        for c in chunks:
            assert isinstance(tx.feed(c), bytes)
        assert isinstance(tx.finish(), bytes)
    except StreamLimitError:
        pass
    assert tx.usage is None or tx.usage.total_tokens >= 0
    assert tx.model is None or isinstance(tx.model, str)


@FUZZ
@given(streams, st.data())
def test_native_ollama_tap(raw: bytes, data: st.DataObject) -> None:
    tap = NativeStreamTap(LINE)
    try:
        for c in data.draw(split(raw)):
            assert tap.feed(c) == c  # the client gets Ollama's bytes untouched
        tap.finish()
    except StreamLimitError:
        pass


@FUZZ
@given(streams, st.data())
def test_decoders(raw: bytes, data: st.DataObject) -> None:
    chunks = data.draw(split(raw))
    for dec in (SSEDecoder(LINE, 4 * LINE), NDJSONDecoder(LINE)):
        try:
            for c in chunks:
                dec.feed(c)
            dec.finish()
        except (StreamLimitError, StreamDecodeError):
            pass


@FUZZ
@given(targets, st.sampled_from([200, 201, 400, 401, 404, 429, 500, 503]), bodies)
def test_response_translators(target: ProviderTarget, status: int, body: bytes) -> None:
    tx = get_translator(target.type)
    for fn in (tx.chat_response, tx.embeddings_response):
        try:
            out = fn(status, body, target)
        except TranslationError:
            continue
        assert isinstance(out.body, bytes)
    assert isinstance(tx.error_response(status, body), bytes)
    assert isinstance(native_response(status, body).body, bytes)
