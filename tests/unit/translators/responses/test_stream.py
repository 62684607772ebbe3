"""Chat chunk stream -> Responses API events, checked with the official SDK's
event types and its own accumulation (what `client.responses.stream` does)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from extproc.streaming.errors import StreamLimitError
from extproc.streaming.sse import SSEDecoder
from extproc.translators.responses.request import to_chat
from extproc.translators.responses.stream import ResponsesStream

EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    obj: dict[str, Any] = {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "qwen-plus",
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


def call(index: int, id_: str | None, name: str | None, args: str) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": args}
    if name:
        fn["name"] = name
    c: dict[str, Any] = {"index": index, "type": "function", "function": fn}
    if id_:
        c["id"] = id_
    return {"tool_calls": [c]}


TOOLS = (
    chunk({"role": "assistant", "reasoning_content": "hmm"})
    + chunk({"content": "Checking."})
    + chunk(call(0, "call_a", "fs__read", ""))
    + chunk(call(0, None, None, '{"path":'))
    + chunk(call(1, "call_b", "shell", '{"c":1}'))
    + chunk(call(0, None, None, '"a"}'))  # interleaved: still call 0's arguments
    + chunk({}, "tool_calls")
    + chunk(None, usage=USAGE)
    + DONE
)


def run(raw: bytes, pieces: int = 1, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    req = to_chat(body or {"input": "x"})
    st_ = ResponsesStream("fallback", req.names, req.echo)
    out = b""
    step = max(1, len(raw) // pieces)
    for i in range(0, len(raw), step):
        out += st_.feed(raw[i : i + step])
    out += st_.finish()
    dec = SSEDecoder()
    events = []
    for ev in dec.feed(out):
        obj = orjson.loads(ev.data)
        assert ev.event == obj["type"]  # `event:` names each one, as OpenAI does
        events.append(obj)
    return events


def check(events: list[dict[str, Any]], body: dict[str, Any] | None = None) -> Any:
    """Every event an SDK event type, sequence numbers 0, 1, ...; the SDK's own
    accumulation must succeed; returns the final response."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    state: ResponseStreamState[Any] = ResponseStreamState(
        input_tools=(body or {}).get("tools", []), text_format=omit
    )
    for e in events:
        state.handle_event(EVENT.validate_python(e))
    return EVENT.validate_python(events[-1]).response


def test_text_stream() -> None:
    events = run(TEXT)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    resp = check(events)
    assert resp.status == "completed" and resp.output_text == "Héllo 世界"
    assert resp.model == "qwen-plus"
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (
        25,
        9,
        34,
    )


def _strip_ids(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events without what holds fresh ids."""
    gone = ("item_id", "response", "item")
    return [{k: v for k, v in e.items() if k not in gone} for e in evs]


@pytest.mark.parametrize("pieces", [1, 7, 10_000])
def test_split_anywhere_gives_the_same_events(pieces: int) -> None:
    whole = run(TOOLS)
    split = run(TOOLS, pieces)
    assert _strip_ids(split) == _strip_ids(whole)


def test_tool_calls_stream() -> None:
    body = {
        "input": "x",
        "tools": [
            {
                "type": "namespace",
                "name": "fs",
                "description": "files",
                "tools": [{"type": "function", "name": "read"}],
            },
            {"type": "function", "name": "shell"},
        ],
    }
    events = run(TOOLS, body=body)
    resp = check(events, body)
    assert [o.type for o in resp.output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    calls = resp.output[2:]
    assert [(c.call_id, c.namespace, c.name, c.arguments) for c in calls] == [
        ("call_a", "fs", "read", '{"path":"a"}'),
        ("call_b", None, "shell", '{"c":1}'),
    ]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [d["arguments"] for d in done] == ['{"path":"a"}', '{"c":1}']
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [
        0,
        1,
        2,
        3,
    ]


def test_length_ends_incomplete() -> None:
    events = run(chunk({"content": "Hel"}) + chunk({}, "length") + DONE)
    assert events[-1]["type"] == "response.incomplete"
    resp = check(events)
    assert resp.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("cut", [0, 1, 3])
def test_cut_off_stream_ends_with_response_failed(cut: int) -> None:
    """No [DONE] and no finish reason: the client gets response.failed, never a
    response.completed (nor a hang waiting for one)."""
    parts = [chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk(call(0, "c", "f", "{"))]
    events = run(b"".join(parts[:cut]))
    assert events[-1]["type"] == "response.failed"
    assert not any(e["type"] == "response.completed" for e in events)
    resp = check(events)
    assert resp.status == "failed" and resp.error.code == "server_error"
    if resp.output:  # the item being streamed when it stopped was cut short
        assert resp.output[-1].status == "incomplete"
    assert "ended before it finished" in resp.error.message


def test_in_stream_error_fails_the_response() -> None:
    err = b'data: {"error": {"message": "slow down", "type": "rate_limit_error"}}\n\n'
    events = run(chunk({"content": "a"}) + err + chunk({"content": "ignored"}))
    assert events[-1]["type"] == "response.failed"
    resp = check(events)
    assert resp.error.code == "rate_limit_exceeded" and resp.error.message == "slow down"
    assert resp.output_text == "a"


def test_held_text_is_bounded() -> None:
    st_ = ResponsesStream("m", max_held_bytes=10)
    st_.feed(chunk({"content": "12345"}))
    with pytest.raises(StreamLimitError):
        st_.feed(chunk({"content": "678901"}))


def test_finish_reason_without_done_still_completes() -> None:
    events = run(chunk({"content": "a"}) + chunk({}, "stop"))
    assert events[-1]["type"] == "response.completed"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, len(TOOLS) - 1), max_size=8, unique=True))
def test_any_split_keeps_sdk_valid(cuts: list[int]) -> None:
    st_ = ResponsesStream("m")
    out = b""
    prev = 0
    for c in [*sorted(cuts), len(TOOLS)]:
        out += st_.feed(TOOLS[prev:c])
        prev = c
    out += st_.finish()
    events = [orjson.loads(e.data) for e in SSEDecoder().feed(out)]
    check(events)
