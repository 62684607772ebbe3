"""The Redactor and the pass-through RedactTap (issue 18 item 7)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from extproc.providers.redact import Redactor, RedactTap

KEY = "sk-redact-0123456789"
GUARD = "gk-guard-abcdef"


def test_headers_and_bodies() -> None:
    r = Redactor([KEY, GUARD, "short"])  # too short to be a key: left alone
    h = {":status": "200", "x-echo": f"Bearer {KEY}", "x-g": GUARD, "x-ok": "short"}
    assert r.headers(h) == (("x-echo", "Bearer [redacted]"), ("x-g", "[redacted]"))
    assert r.headers({"x": "nothing"}) == ()
    assert r.body(f"{KEY}/{GUARD}".encode()) == b"[redacted]/[redacted]"
    assert r.text("plain") == "plain"
    assert KEY not in repr(r) and not Redactor([])
    assert Redactor([]).headers(h) == ()


def test_a_secret_containing_another_is_replaced_whole() -> None:
    r = Redactor(["sk-abcdefgh", "sk-abcdefgh-longer"])
    assert r.body(b"x sk-abcdefgh-longer y") == b"x [redacted] y"


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=250), max_size=6))
def test_tap_catches_a_key_split_anywhere(noise: bytes, cuts: list[int]) -> None:
    data = noise[:50] + KEY.encode() + noise[50:] + KEY.encode()
    tap = RedactTap(Redactor([KEY]), "application/json")
    points = sorted({min(c, len(data)) for c in cuts})
    parts = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    out = b"".join(tap.feed(p) for p in parts) + tap.finish()
    assert KEY.encode() not in out
    assert out == Redactor([KEY]).body(data)
