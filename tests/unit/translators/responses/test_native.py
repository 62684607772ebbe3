"""Responses pass-through to a native provider: body, path, usage tap."""

from __future__ import annotations

import orjson
import pytest

from extproc.streaming.sse import SSEDecoder
from extproc.translators.base import ProviderTarget
from extproc.translators.responses.native import (
    NativeStreamTap,
    native_path,
    native_payload,
    native_response,
)
from extproc.usage import Usage


def target(
    type_: str = "openai", model: str = "gpt-4o", stream: bool = False, **settings: str
) -> ProviderTarget:
    return ProviderTarget(
        type_, "h", "/v1" if type_ == "openai" else "", "k", model, stream, settings
    )


def test_paths() -> None:
    assert native_path(target()) == "/v1/responses"
    assert native_path(target("azure")) == "/openai/v1/responses"


def test_payload_unchanged_unless_mapped() -> None:
    body = {"model": "gpt-4o", "input": "x"}
    assert native_payload(body, target()) is None
    assert native_payload(body, target(model="gpt-5")) == {"model": "gpt-5", "input": "x"}
    assert native_payload(body, target(), modified=True) == body
    assert native_payload(body, target(stream=True)) == {**body, "stream": True}
    azure = native_payload(body, target("azure", deployment="dep1"))
    assert azure is not None and azure["model"] == "dep1"


USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 5,
    "output_tokens_details": {"reasoning_tokens": 1},
    "total_tokens": 17,
}
EXPECTED = Usage(12, 5, 17, 4, 1)


def test_json_answer_read_for_usage() -> None:
    raw = orjson.dumps({"object": "response", "model": "gpt-4o-2024", "usage": USAGE, "output": []})
    out = native_response(200, raw)
    assert out.body is raw and out.usage == EXPECTED and out.model == "gpt-4o-2024"
    assert native_response(400, b'{"error": {}}').usage is None


def ev(kind: str, named: bool = True, **fields: object) -> bytes:
    data = orjson.dumps({"type": kind, **fields})
    return (b"event: " + kind.encode() + b"\n" if named else b"") + b"data: " + data + b"\n\n"


@pytest.mark.parametrize("end", ["response.completed", "response.incomplete", "response.failed"])
@pytest.mark.parametrize("named", [True, False])
def test_stream_tap_reads_the_end_event(end: str, named: bool) -> None:
    raw = (
        ev("response.created", named, response={"model": "gpt-4o-2024", "usage": None})
        + ev("response.output_text.delta", named, delta="hi")
        + ev(end, named, response={"model": "gpt-4o-2024", "usage": USAGE})
    )
    tap = NativeStreamTap()
    out = b"".join(tap.feed(raw[i : i + 9]) for i in range(0, len(raw), 9)) + tap.finish()
    assert out == raw  # untouched
    assert tap.usage == EXPECTED and tap.model == "gpt-4o-2024"


def test_cut_off_native_stream_gets_response_failed() -> None:
    raw = ev("response.created", response={"id": "resp_1", "model": "gpt-4o-2024"}) + ev(
        "response.output_text.delta", delta="hi"
    )
    tap = NativeStreamTap()
    assert tap.feed(raw) == raw
    tail = tap.finish()
    (failed,) = [orjson.loads(e.data) for e in SSEDecoder().feed(tail)]
    assert failed["type"] == "response.failed" and failed["sequence_number"] == 2
    assert failed["response"]["id"] == "resp_1" and failed["response"]["status"] == "failed"
    assert "ended before it finished" in failed["response"]["error"]["message"]


@pytest.mark.parametrize("end", [b"", b"x"])
def test_finished_or_empty_native_stream_gets_nothing_added(end: bytes) -> None:
    tap = NativeStreamTap()
    if end:
        tap.feed(ev("response.completed", response={"usage": USAGE}))
    assert tap.finish() == b""
