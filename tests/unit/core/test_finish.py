"""Finish reasons and response ids of answers in each client API's shape."""

from __future__ import annotations

import orjson

from extproc.core.finish import answer_facts


def test_each_api() -> None:
    openai = {"id": "c1", "choices": [{"finish_reason": "stop"}, {"finish_reason": "length"}]}
    assert answer_facts("openai", orjson.dumps(openai)) == (("stop", "length"), "c1")
    claude = {"id": "msg_1", "stop_reason": "end_turn"}
    assert answer_facts("anthropic", orjson.dumps(claude)) == (("end_turn",), "msg_1")
    assert answer_facts("ollama", b'{"done_reason": "stop"}') == (("stop",), "")


def test_unreadable_or_odd_answers() -> None:
    assert answer_facts("openai", b"not json") == ((), "")
    assert answer_facts("openai", b"[1]") == ((), "")
    assert answer_facts("openai", b'{"id": 5, "choices": [1, {"finish_reason": 2}]}') == ((), "")
    many = {"choices": [{"finish_reason": "stop"}] * 100}
    assert len(answer_facts("openai", orjson.dumps(many))[0]) == 8
