"""traceparent parsing and our ids (W3C trace context)."""

from __future__ import annotations

from extproc.core.tracecontext import format_traceparent, our_ids, parse

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_parse_valid_and_invalid() -> None:
    assert parse(f"00-{TRACE}-{PARENT}-01") == (TRACE, PARENT, "01")
    assert parse(f"00-{TRACE.upper()}-{PARENT}-00") == (TRACE, PARENT, "00")
    # A later version may append fields.
    assert parse(f"01-{TRACE}-{PARENT}-01-extra") == (TRACE, PARENT, "01")
    for bad in (
        "",
        "garbage",
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 is exactly 55 characters
        f"ff-{TRACE}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE[:-1]}x-{PARENT}-01",
        f"00_{TRACE}-{PARENT}-01",
    ):
        assert parse(bad) is None, bad


def test_our_ids_continue_the_parent_or_start_a_trace() -> None:
    trace_id, span_id, flags = our_ids(f"00-{TRACE}-{PARENT}-00")
    assert (trace_id, flags) == (TRACE, "00") and span_id != PARENT and len(span_id) == 16
    trace_id, span_id, flags = our_ids("not a traceparent")
    assert len(trace_id) == 32 and trace_id != "0" * 32 and flags == "01"
    assert parse(format_traceparent(trace_id, span_id, flags)) == (trace_id, span_id, flags)
