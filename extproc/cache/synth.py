"""A cached non-stream answer as a stream in its client API's event format.

The whole stream is one immediate response body: the client's SDK reads the
same events a live stream would have sent (one content delta per block; the
text is not re-chunked, which no client depends on).
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.content.endpoints import (
    ANTHROPIC_MESSAGES,
    CHAT,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    RESPONSES,
)
from extproc.streaming.sse import encode_sse

SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


class CannotSynthesise(ValueError):
    """The stored body is not the API's non-stream shape."""


def _obj(body: bytes) -> dict[str, Any]:
    try:
        out = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise CannotSynthesise(f"not JSON: {e}") from None
    if not isinstance(out, dict):
        raise CannotSynthesise("not a JSON object")
    return out


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def synthesise(endpoint: str, body: bytes, include_usage: bool) -> tuple[bytes, str]:
    """(stream bytes, content type) for a stored answer of `endpoint` (the
    endpoint names its API's stream format)."""
    if endpoint == ANTHROPIC_MESSAGES:
        return anthropic_stream(_obj(body)), SSE
    if endpoint in (OLLAMA_CHAT, OLLAMA_GENERATE):
        return ollama_stream(_obj(body), endpoint), NDJSON
    if endpoint == CHAT:
        return openai_chat_stream(_obj(body), include_usage), SSE
    if endpoint == RESPONSES:
        return responses_stream(_obj(body)), SSE
    raise CannotSynthesise(f"no stream format for endpoint {endpoint!r}")


# -- OpenAI chat completions ---------------------------------------------------


def openai_chat_stream(resp: dict[str, Any], include_usage: bool) -> bytes:
    base = {
        "id": resp.get("id", ""),
        "object": "chat.completion.chunk",
        "created": resp.get("created", 0),
        "model": resp.get("model", ""),
    }
    if resp.get("system_fingerprint"):
        base["system_fingerprint"] = resp["system_fingerprint"]
    out: list[bytes] = []

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> None:
        out.append(encode_sse(orjson.dumps({**base, "choices": choices, **extra})))

    choices = resp.get("choices")
    for c in choices if isinstance(choices, list) else ():
        if not isinstance(c, dict):
            raise CannotSynthesise("a choice is not an object")
        i = c.get("index", 0)
        msg = _dict(c.get("message"))
        chunk([{"index": i, "delta": {"role": msg.get("role", "assistant"), "content": ""}}])
        for field in ("reasoning_content", "content", "refusal"):
            if isinstance(msg.get(field), str) and msg[field]:
                chunk([{"index": i, "delta": {field: msg[field]}, "finish_reason": None}])
        calls = msg.get("tool_calls")
        for n, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                delta = {"index": n, **{k: v for k, v in call.items() if k != "index"}}
                chunk([{"index": i, "delta": {"tool_calls": [delta]}, "finish_reason": None}])
        fin: dict[str, Any] = {"index": i, "delta": {}, "finish_reason": c.get("finish_reason")}
        if c.get("logprobs") is not None:
            fin["logprobs"] = c["logprobs"]
        chunk([fin])
    if include_usage and isinstance(resp.get("usage"), dict):
        chunk([], usage=resp["usage"])
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


# -- Anthropic Messages ----------------------------------------------------------


def _event(name: str, data: dict[str, Any]) -> bytes:
    return encode_sse(orjson.dumps({"type": name, **data}), name)


def anthropic_stream(msg: dict[str, Any]) -> bytes:
    usage = _dict(msg.get("usage"))
    start_usage = {**usage, "output_tokens": 0}
    head = {k: v for k, v in msg.items() if k not in ("content", "stop_reason", "stop_sequence")}
    head.update({"content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage})
    out = [_event("message_start", {"message": head})]
    blocks = msg.get("content")
    for i, b in enumerate(blocks if isinstance(blocks, list) else ()):
        if not isinstance(b, dict):
            raise CannotSynthesise("a content block is not an object")
        kind = b.get("type")
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            start = {**b, "text": ""}
            if b.get("text"):
                deltas.append({"type": "text_delta", "text": b["text"]})
        elif kind in ("tool_use", "server_tool_use"):
            start = {**b, "input": {}}
            deltas.append(
                {
                    "type": "input_json_delta",
                    "partial_json": orjson.dumps(b.get("input", {})).decode(),
                }
            )
        elif kind == "thinking":
            start = {**b, "thinking": "", "signature": ""}
            if b.get("thinking"):
                deltas.append({"type": "thinking_delta", "thinking": b["thinking"]})
            if b.get("signature"):
                deltas.append({"type": "signature_delta", "signature": b["signature"]})
        else:  # redacted_thinking and blocks sent whole
            start = b
        out.append(_event("content_block_start", {"index": i, "content_block": start}))
        for d in deltas:
            out.append(_event("content_block_delta", {"index": i, "delta": d}))
        out.append(_event("content_block_stop", {"index": i}))
    out.append(
        _event(
            "message_delta",
            {
                "delta": {
                    "stop_reason": msg.get("stop_reason"),
                    "stop_sequence": msg.get("stop_sequence"),
                },
                "usage": {"output_tokens": usage.get("output_tokens", 0)},
            },
        )
    )
    out.append(_event("message_stop", {}))
    return b"".join(out)


# -- Ollama native -----------------------------------------------------------------


def ollama_stream(final: dict[str, Any], endpoint: str) -> bytes:
    """Ollama's NDJSON: the content in one line with done false, then the
    final line (done true, the counts) with empty content."""
    head: dict[str, Any] = {k: final[k] for k in ("model", "created_at") if k in final}
    last: dict[str, Any] = {**final, "done": True}
    if endpoint == OLLAMA_GENERATE:
        first: dict[str, Any] = {**head, "response": final.get("response", ""), "done": False}
        if final.get("thinking"):
            first["thinking"] = last.pop("thinking")
        last["response"] = ""
    else:
        msg = _dict(final.get("message"))
        first = {**head, "message": msg, "done": False}
        last["message"] = {"role": msg.get("role", "assistant"), "content": ""}
    return orjson.dumps(first) + b"\n" + orjson.dumps(last) + b"\n"


# -- OpenAI Responses API ------------------------------------------------------------


def responses_stream(resp: dict[str, Any]) -> bytes:
    """`response.created` ... `response.completed`, as the Responses API streams:
    per output item `output_item.added`, its deltas and `output_item.done`."""
    out: list[bytes] = []
    seq = 0

    def emit(kind: str, **fields: Any) -> None:
        nonlocal seq
        out.append(encode_sse(orjson.dumps({"type": kind, "sequence_number": seq, **fields}), kind))
        seq += 1

    head = {k: v for k, v in resp.items() if k not in ("output", "usage", "status")}
    started = {**head, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=started)
    emit("response.in_progress", response=started)
    items = resp.get("output")
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            raise CannotSynthesise("an output item is not an object")
        kind = item.get("type")
        at = {"output_index": i, "item_id": item.get("id", "")}
        if kind == "message":
            emit(
                "response.output_item.added",
                output_index=i,
                item={**item, "status": "in_progress", "content": []},
            )
            parts = item.get("content")
            for j, part in enumerate(parts if isinstance(parts, list) else ()):
                if not isinstance(part, dict):
                    raise CannotSynthesise("a content part is not an object")
                where = {**at, "content_index": j}
                if part.get("type") == "output_text":
                    emit(
                        "response.content_part.added",
                        **where,
                        part={**part, "text": "", "annotations": []},
                    )
                    if part.get("text"):
                        emit("response.output_text.delta", **where, delta=part["text"], logprobs=[])
                    emit(
                        "response.output_text.done", **where, text=part.get("text", ""), logprobs=[]
                    )
                else:  # refusal and parts sent whole
                    emit("response.content_part.added", **where, part=part)
                emit("response.content_part.done", **where, part=part)
        elif kind == "function_call":
            emit(
                "response.output_item.added",
                output_index=i,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            args = item.get("arguments", "")
            if args:
                emit("response.function_call_arguments.delta", **at, delta=args)
            emit("response.function_call_arguments.done", **at, arguments=args)
        else:  # reasoning and other items: added and done whole
            emit("response.output_item.added", output_index=i, item=item)
        emit("response.output_item.done", output_index=i, item=item)
    emit("response.completed", response=resp)
    return b"".join(out)
