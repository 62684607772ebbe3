"""W3C trace context (`traceparent`), sans-IO: parse a parent, make our ids.

https://www.w3.org/TR/trace-context/#traceparent-header: version "00",
32 hex trace id, 16 hex parent id, 2 hex flags; all-zero ids are invalid.
"""

from __future__ import annotations

import random

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse(value: str) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid `traceparent`, else None."""
    v = value.strip().lower()
    if len(v) < 55:
        return None
    version, trace_id, span_id, flags = v[:2], v[3:35], v[36:52], v[53:55]
    if v[2] != "-" or v[35] != "-" or v[52] != "-" or version == "ff":
        return None
    # Version 00 is exactly 55 characters; a later version may append fields.
    if (version == "00" and len(v) != 55) or (len(v) > 55 and v[55] != "-"):
        return None
    if not _HEX.issuperset(version + trace_id + span_id + flags):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, flags


def our_ids(parent: str) -> tuple[str, str, str]:
    """(trace id, span id, flags) of our span: the parent's trace and flags
    (sampled or not, as the parent decided), or a new sampled trace."""
    parsed = parse(parent) if parent else None
    span_id = f"{random.getrandbits(64) or 1:016x}"
    if parsed is None:
        return f"{random.getrandbits(128) or 1:032x}", span_id, "01"
    return parsed[0], span_id, parsed[2]


def format_traceparent(trace_id: str, span_id: str, flags: str) -> str:
    return f"00-{trace_id}-{span_id}-{flags}"
