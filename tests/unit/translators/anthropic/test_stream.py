"""OpenAI chunk stream -> Anthropic stream events, checked with the official SDK's
event types and its own snapshot accumulation (what `client.messages.stream` does)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from extproc.streaming.errors import StreamLimitError
from extproc.streaming.sse import SSEDecoder
from extproc.translators.anthropic.stream import AnthropicStream
from extproc.usage import Usage

EVENT = TypeAdapter(RawMessageStreamEvent)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    obj: dict[str, Any] = {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-2024",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


USAGE = {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34}
DONE = b"data: [DONE]\n\n"

TEXT = (
    chunk({"role": "assistant", "content": ""})
    + chunk({"content": "Héllo"})
    + chunk({"content": " 世界"})
    + chunk({}, "stop")
    + chunk(None, usage=USAGE)
    + DONE
)

TOOLS = (
    chunk({"role": "assistant", "content": "Checking."})
    + chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    )
    + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]})
    + chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]})
    + chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "now", "arguments": "{}"},
                }
            ]
        }
    )
    + chunk({}, "tool_calls", usage=USAGE)
    + DONE
)


def run(data: bytes, cuts: list[int] | None = None, st_: AnthropicStream | None = None) -> bytes:
    s = st_ or AnthropicStream("asked-model")
    out = bytearray()
    pos = 0
    for cut in sorted(cuts or []):
        out += s.feed(data[pos:cut])
        pos = cut
    out += s.feed(data[pos:])
    out += s.finish()
    return bytes(out)


def sdk_events(body: bytes) -> list[tuple[str, Any]]:
    out = []
    for ev in SSEDecoder().feed(body):
        obj = orjson.loads(ev.data)
        assert ev.event == obj["type"]  # the SDK dispatches on the SSE event name
        out.append((ev.event, obj))
    return out


def accumulate(body: bytes) -> Message:
    snapshot = None
    bufs: dict[int, bytes] = {}
    for _, obj in sdk_events(body):
        snapshot = accumulate_event(
            event=EVENT.validate_python(obj), current_snapshot=snapshot, json_bufs=bufs
        )
    assert snapshot is not None
    return Message.model_validate(snapshot.model_dump())


def test_text_stream_event_sequence() -> None:
    events = sdk_events(run(TEXT))
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["id"] == "msg_chatcmpl-7"
    assert start["model"] == "gpt-4o-2024"
    assert events[5][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "input_tokens": 25,
            "output_tokens": 9,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    msg = accumulate(run(TEXT))
    assert msg.content[0].text == "Héllo 世界"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 9


def test_tool_stream_has_indexed_blocks_and_json_deltas() -> None:
    st_ = AnthropicStream("m")
    body = run(TOOLS, st_=st_)
    events = sdk_events(body)
    starts = [o for n, o in events if n == "content_block_start"]
    assert [(o["index"], o["content_block"]["type"]) for o in starts] == [
        (0, "text"),
        (1, "tool_use"),
        (2, "tool_use"),
    ]
    stops = [o["index"] for n, o in events if n == "content_block_stop"]
    assert stops == [0, 1, 2]
    json_deltas = [o for n, o in events if n == "content_block_delta" and o["index"] == 1]
    assert [d["delta"] for d in json_deltas] == [
        {"type": "input_json_delta", "partial_json": '{"city": "Pa'},
        {"type": "input_json_delta", "partial_json": 'ris"}'},
    ]
    msg = accumulate(body)
    assert msg.stop_reason == "tool_use"
    tool_a, tool_b = msg.content[1], msg.content[2]
    assert (tool_a.id, tool_a.name, tool_a.input) == ("call_a", "get_weather", {"city": "Paris"})  # type: ignore[union-attr]
    assert (tool_b.id, tool_b.name, tool_b.input) == ("call_b", "now", {})  # type: ignore[union-attr]
    assert st_.usage == Usage.of(25, 9)
    assert st_.model == "gpt-4o-2024"


def test_reasoning_then_text_are_two_blocks() -> None:
    data = (
        chunk({"role": "assistant", "reasoning_content": "Let me"})
        + chunk({"reasoning_content": " think."})
        + chunk({"content": "42"})
        + chunk({}, "length")
        + DONE
    )
    msg = accumulate(run(data))
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == "Let me think."  # type: ignore[union-attr]
    assert msg.stop_reason == "max_tokens"


def test_cached_tokens_are_split_out_of_input() -> None:
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 20}}
    data = chunk({"content": "x"}) + chunk({}, "stop") + chunk(None, usage=usage) + DONE
    delta = next(o for n, o in sdk_events(run(data)) if n == "message_delta")
    assert delta["usage"]["input_tokens"] == 5
    assert delta["usage"]["cache_read_input_tokens"] == 20


def test_in_stream_error_becomes_error_event_and_ends() -> None:
    err = b'data: {"error":{"message":"slow down","type":"rate_limit_error"}}\n\n'
    body = run(chunk({"content": "a"}) + err + chunk({"content": "ignored"}) + DONE)
    events = sdk_events(body)
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
    )
    assert "message_stop" not in [n for n, _ in events]
    assert b"ignored" not in body


def test_truncated_stream_ends_with_error_not_message_stop() -> None:
    events = sdk_events(run(chunk({"content": "partial"})))
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [n for n, _ in events]


def test_finished_stream_without_done_still_ends_cleanly() -> None:
    events = sdk_events(run(chunk({"content": "x"}) + chunk({}, "stop")))
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]


def test_empty_stream_with_done_is_an_empty_message() -> None:
    msg = accumulate(run(DONE))
    assert msg.content == []
    assert msg.model == "asked-model"


def test_other_choices_are_ignored() -> None:
    other = (
        b"data: " + orjson.dumps({"choices": [{"index": 1, "delta": {"content": "NO"}}]}) + b"\n\n"
    )
    body = run(chunk({"content": "yes"}) + other + chunk({}, "stop") + DONE)
    assert b"NO" not in body


def test_line_limit_is_enforced() -> None:
    s = AnthropicStream("m", max_line_bytes=64)
    with pytest.raises(StreamLimitError):
        s.feed(b"data: " + b"x" * 100)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TOOLS)), max_size=25))
def test_splits_anywhere_give_the_same_events(cuts: list[int]) -> None:
    assert run(TOOLS, cuts) == run(TOOLS)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=25))
def test_splits_inside_utf8_give_the_same_text(cuts: list[int]) -> None:
    assert run(TEXT, cuts) == run(TEXT)
