"""The fake provider's Anthropic Messages API: /v1/messages (JSON and SSE, text and
tool_use) and /v1/messages/count_tokens, with Anthropic's checks and errors."""

from __future__ import annotations

import json
from typing import Any

from fake_tools import TOOLU_ID, claude_tool_name, claude_tool_result, tool_arguments

USAGE_IN, USAGE_OUT = 12, 9


def _j(o: Any) -> bytes:
    return json.dumps(o, ensure_ascii=False).encode()


def _sse(o: dict[str, Any]) -> bytes:
    return f"event: {o['type']}\n".encode() + b"data: " + _j(o) + b"\n\n"


def error(status: int, etype: str, message: str) -> tuple[int, bytes]:
    return status, _j({"type": "error", "error": {"type": etype, "message": message}})


def _split(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text)))
    step = -(-len(text) // n)
    return [text[i : i + step] for i in range(0, len(text), step)]


def _last_text(req: dict[str, Any]) -> str:
    msgs = req.get("messages") or []
    last = msgs[-1].get("content") if msgs else ""
    if isinstance(last, str):
        return last
    return " ".join(b.get("text", "") for b in last if isinstance(b, dict))


def check(headers: dict[str, str], key_ok: bool) -> tuple[int, bytes] | None:
    """Anthropic's own refusals: a wrong key, a missing version header."""
    if not key_ok:
        return error(401, "authentication_error", "invalid x-api-key")
    if not headers.get("anthropic-version"):
        return error(400, "invalid_request_error", "anthropic-version header is required")
    return None


def count_tokens(req: dict[str, Any]) -> tuple[int, bytes]:
    if not isinstance(req.get("messages"), list):
        return error(400, "invalid_request_error", "messages: Field required")
    text = json.dumps([req.get("system"), req["messages"], req.get("tools")])
    return 200, _j({"input_tokens": max(1, len(text) // 4)})


def _content(req: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The answer's blocks and stop reason."""
    tool = claude_tool_name(req)
    if tool is not None:
        block = {
            "type": "tool_use",
            "id": TOOLU_ID,
            "name": tool,
            "input": tool_arguments(_last_text(req)),
        }
        return [block], "tool_use"
    result = claude_tool_result(req)
    if result is not None:
        text = f"Fake Claude read the tool result: {result}"
    else:
        text = (
            f"Hello from fake Claude. model={req.get('model')} "
            f"system={req.get('system') is not None} last_user={_last_text(req)[:200]}"
        )
    return [{"type": "text", "text": text}], "end_turn"


def messages(req: dict[str, Any]) -> tuple[int, bytes]:
    if "max_tokens" not in req:
        return error(400, "invalid_request_error", "max_tokens: Field required")
    content, stop = _content(req)
    return 200, _j(
        {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": req.get("model"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
        }
    )


def _block_events(i: int, block: dict[str, Any], chunks: int) -> list[bytes]:
    if block["type"] == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _split(block["text"], chunks)]
    else:
        start = {**block, "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": p}
            for p in _split(json.dumps(block["input"]), 2)
        ]
    return [
        _sse({"type": "content_block_start", "index": i, "content_block": start}),
        *(_sse({"type": "content_block_delta", "index": i, "delta": d}) for d in deltas),
        _sse({"type": "content_block_stop", "index": i}),
    ]


def message_stream(req: dict[str, Any], chunks: int) -> list[bytes]:
    content, stop = _content(req)
    start = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": req.get("model"),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": 1},
    }
    parts = [_sse({"type": "message_start", "message": start}), _sse({"type": "ping"})]
    for i, block in enumerate(content):
        parts += _block_events(i, block, chunks)
    parts += [
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": USAGE_OUT},
            }
        ),
        _sse({"type": "message_stop"}),
    ]
    return parts
