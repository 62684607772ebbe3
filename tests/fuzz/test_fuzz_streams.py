"""Fuzz: every stream decoder and translator, and every response translator,
on any upstream bytes split anywhere.

Stream translators may raise only StreamLimitError (the exchange turns it into
a cut-off stream); the raw decoders also StreamDecodeError; buffered response
translators may raise only TranslationError (the exchange answers 502).
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from fuzzing import FUZZ, json_objects, openai_objects, split
from hypothesis import given
from hypothesis import strategies as st

from extproc.streaming.errors import StreamDecodeError, StreamLimitError
from extproc.streaming.ndjson import NDJSONDecoder
from extproc.streaming.sse import SSEDecoder
from extproc.translators import ollama_native
from extproc.translators.anthropic import native as anthropic_native
from extproc.translators.anthropic.compose import AnthropicVia
from extproc.translators.base import ProviderTarget, TranslationError
from extproc.translators.registry import spec_of
from extproc.translators.responses import native as responses_native
from extproc.translators.responses.compose import ResponsesVia
from extproc.translators.responses.request import to_chat

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


objects = st.one_of(json_objects(15), openai_objects())
streams = st.one_of(
    st.builds(
        frames,
        st.lists(objects, max_size=6),
        st.sampled_from(["sse", "event", "ndjson"]),
        st.booleans(),
    ),
    st.binary(max_size=400),
    st.builds(lambda n: b"data: " + b"x" * n, st.integers(LINE - 2, LINE + 2)),
)
bodies = st.one_of(
    json_objects(25).map(orjson.dumps),
    openai_objects().map(orjson.dumps),
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


def translator(kind: str) -> Any:
    return spec_of(kind).translator


@FUZZ
@given(targets, st.booleans(), st.booleans(), streams, st.data())
def test_stream_translators(
    target: ProviderTarget, include_usage: bool, anthropic: bool, raw: bytes, data: st.DataObject
) -> None:
    """OpenAI clients, or Anthropic clients through the same translator."""
    chunks = data.draw(split(raw))
    inner = translator(target.type)
    tx = (
        AnthropicVia(inner).chat_stream(target, LINE)
        if anthropic
        else inner.chat_stream(target, include_usage, LINE)
    )
    try:
        for c in chunks:
            assert isinstance(tx.feed(c), bytes)
        assert isinstance(tx.finish(), bytes)
    except StreamLimitError:
        pass
    assert tx.usage is None or tx.usage.total_tokens >= 0
    assert tx.model is None or isinstance(tx.model, str)


@FUZZ
@given(targets, streams, st.data(), st.integers(16, 4096))
def test_responses_stream_translators(
    target: ProviderTarget, raw: bytes, data: st.DataObject, held: int
) -> None:
    """Responses clients through every provider's translator: every event the
    client gets is JSON with its type and the next sequence number, and the
    stream always ends (completed, incomplete or failed) unless a limit cut it."""
    via = ResponsesVia(translator(target.type), target.type in ("openai", "azure"))
    via.chat_body({"input": "x", "stream": True})
    tx = via.chat_stream(target, LINE, held)
    out = b""
    try:
        for c in data.draw(split(raw)):
            piece = tx.feed(c)
            assert isinstance(piece, bytes)
            out += piece
        out += tx.finish()
    except StreamLimitError:
        return
    events = [orjson.loads(e.data) for e in SSEDecoder().feed(out)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert all(isinstance(e["type"], str) for e in events)
    assert events and events[-1]["type"] in (
        "response.completed",
        "response.incomplete",
        "response.failed",
    )
    assert tx.usage is None or tx.usage.total_tokens >= 0


@FUZZ
@given(json_objects(25))
def test_responses_request_translation(body: dict[str, Any]) -> None:
    """Any client body: a chat request, or a TranslationError (-> 400)."""
    try:
        out = to_chat(body)
    except TranslationError:
        return
    assert isinstance(out.body["messages"], list) and out.body["messages"]


@FUZZ
@given(st.sampled_from([ollama_native, anthropic_native, responses_native]), streams, st.data())
def test_native_taps(native: Any, raw: bytes, data: st.DataObject) -> None:
    tap = native.NativeStreamTap(LINE)
    try:
        for c in data.draw(split(raw)):
            assert tap.feed(c) == c  # the client gets the provider's bytes untouched
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
    tx = translator(target.type)
    via = AnthropicVia(tx)
    for fn in (tx.chat_response, tx.embeddings_response, via.chat_response):
        try:
            out = fn(status, body, target)
        except TranslationError:
            continue
        assert isinstance(out.body, bytes)
    assert isinstance(tx.error_response(status, body), bytes)
    assert isinstance(via.error_response(status, body), bytes)
    for native in (ollama_native, anthropic_native, responses_native):
        assert isinstance(native.native_response(status, body).body, bytes)
    rvia = ResponsesVia(tx)
    rvia.chat_body({"input": "x"})
    with contextlib.suppress(TranslationError):
        assert isinstance(rvia.chat_response(status, body, target).body, bytes)
