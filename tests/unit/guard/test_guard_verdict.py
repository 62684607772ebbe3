from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.guard.verdict import MAX_REASON_CHARS, Verdict, parse_guard_reply


def reply(content: Any) -> bytes:
    return json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": content}}]}
    ).encode()


ALLOW = '{"result": "allow", "reason": "nothing sensitive"}'
DENY = '{"result": "deny", "reason": "contains a phone number"}'


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason"),
    [
        (200, reply(ALLOW), "allow", "nothing sensitive"),
        (200, reply('{"result": "ALLOW"}'), "allow", ""),
        (200, reply('{"result": " Allow ", "reason": 1}'), "allow", ""),
        (200, reply(DENY), "deny", "contains a phone number"),
        (200, reply('{"result": "Deny"}'), "deny", "denied by guard"),
        (200, reply(f"```json\n{DENY}\n```"), "deny", "contains a phone number"),
        (200, reply(f"```\n{ALLOW}\n```"), "allow", "nothing sensitive"),
        (200, reply(f"Sure! Here is my verdict:\n```JSON\n{ALLOW}\n```\nBye"), "allow", None),
        (200, reply(f"My verdict is {DENY} - hope that helps."), "deny", None),
        (201, reply(ALLOW), "allow", None),
        # errors
        (500, reply(ALLOW), "error", "guard returned HTTP 500"),
        (401, b'{"error": "bad key"}', "error", "guard returned HTTP 401"),
        (302, b"", "error", "guard returned HTTP 302"),
        (200, b"<html>", "error", "guard reply body is not JSON"),
        (200, b"", "error", "guard reply body is not JSON"),
        (200, b"[1, 2]", "error", "guard reply body is not a JSON object"),
        (200, b"{}", "error", "guard reply has no choices"),
        (200, b'{"choices": {}}', "error", "guard reply has no choices"),
        (200, b'{"choices": []}', "error", "guard reply has empty choices"),
        (200, b'{"choices": ["x"]}', "error", "guard reply choice has no message"),
        (200, b'{"choices": [{"message": {}}]}', "error", "guard reply message has no content"),
        (200, reply(None), "error", "guard reply message has no content"),
        (200, reply("   "), "error", "guard reply message has no content"),
        (200, reply(["parts"]), "error", "guard reply message has no content"),
        (200, reply("I think this is fine."), "error", "guard answer is not a JSON object"),
        (200, reply("[1]"), "error", "guard answer is not a JSON object"),
        (200, reply(f"{ALLOW} and {DENY}"), "error", "guard answer is not a JSON object"),
        (200, reply('{"reason": "no result"}'), "error", "guard answer has no result"),
        (200, reply('{"result": true}'), "error", "guard answer result is not a string"),
        (200, reply('{"result": "maybe"}'), "error", "neither allow nor deny"),
        (200, reply('{"result": "allowed"}'), "error", "neither allow nor deny"),
    ],
)
def test_parse_table(status: int, body: bytes, kind: str, reason: str | None) -> None:
    verdict = parse_guard_reply(status, body)
    assert verdict.kind == kind
    if reason is not None:
        assert reason in verdict.reason if kind == "error" else verdict.reason == reason


def test_error_reasons_do_not_quote_the_reply() -> None:
    secret_text = "my card is 4111 1111 1111 1111"
    verdict = parse_guard_reply(200, reply(f"The user wrote: {secret_text}"))
    assert verdict.kind == "error"
    assert "4111" not in verdict.reason
    verdict = parse_guard_reply(500, secret_text.encode())
    assert "4111" not in verdict.reason


def test_long_reason_is_clipped() -> None:
    verdict = parse_guard_reply(200, reply(json.dumps({"result": "deny", "reason": "x" * 5000})))
    assert verdict.kind == "deny"
    assert len(verdict.reason) == MAX_REASON_CHARS


def test_verdict_is_frozen() -> None:
    verdict = Verdict("allow", "ok")
    with pytest.raises(AttributeError):
        verdict.kind = "deny"  # type: ignore[misc]
    assert Verdict.error("boom") == Verdict("error", "boom")
