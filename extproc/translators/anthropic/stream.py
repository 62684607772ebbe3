"""OpenAI ``chat.completion.chunk`` SSE -> Anthropic Messages stream events.

Anthropic's stream is ``message_start``, then per content block
``content_block_start`` / ``content_block_delta``* / ``content_block_stop``
(indices 0, 1, ...), then ``message_delta`` (stop reason, usage) and
``message_stop``. OpenAI's deltas carry text, reasoning and tool-call pieces
in any mix, so a new block opens whenever the kind of delta changes (or a
new tool call starts) and the previous one is closed. The end (stop reason
and usage) is held until ``[DONE]``: with ``include_usage`` the usage chunk
comes after the chunk with ``finish_reason``.

A stream that ends with neither ``[DONE]`` nor a finish reason was cut off
upstream and ends with an ``error`` event, not ``message_stop``.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.streaming.sse import SSEDecoder, encode_sse
from extproc.translators.anthropic.errors import error_event
from extproc.translators.anthropic.response import message_id, stop_reason, usage_dict
from extproc.translators.base import StreamFacts
from extproc.translators.common import SSE, as_int, as_objs, new_id, usage_from_openai
from extproc.usage import Usage

# The HTTP status an OpenAI in-stream error type stands for (Anthropic's types are per status).
_OPENAI_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
}


def event(kind: str, **fields: Any) -> bytes:
    return encode_sse(orjson.dumps({"type": kind, **fields}), kind)


class AnthropicStream(StreamFacts):
    """One instance per streamed response; bytes in, Anthropic SSE bytes out."""

    content_type = SSE

    def __init__(self, model: str, max_line_bytes: int | None = None) -> None:
        self._decoder = SSEDecoder(max_line_bytes) if max_line_bytes else SSEDecoder()
        self._fallback_model = model
        self._model: str | None = None
        self._usage: Usage | None = None
        self._started = False
        self._block: int | None = None  # index of the open content block
        self._kind = ""  # its kind: text, thinking or tool_use
        self._next = 0
        self._tools: dict[int, int] = {}  # OpenAI tool_calls index -> block index
        self._finish: str | None = None
        self._ended = False

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for ev in self._decoder.feed(chunk):
            if self._ended:
                break
            if ev.data == "[DONE]":
                self._end(out)
                continue
            try:
                obj = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                self._handle(obj, out)
        return b"".join(out)

    def finish(self) -> bytes:
        self._decoder.finish()
        if self._ended:
            return b""
        out: list[bytes] = []
        if self._finish is not None:
            self._end(out)  # finished but no [DONE]: some servers omit it
        else:
            self._ended = True
            out.append(error_event(502, "upstream stream ended before it finished"))
        return b"".join(out)

    # -- events ---------------------------------------------------------

    def _start(self, obj: dict[str, Any], out: list[bytes]) -> None:
        self._started = True
        served = obj.get("model")
        if isinstance(served, str) and served:
            self._model = served
        message: dict[str, Any] = {
            "id": message_id(obj.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self._model or self._fallback_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # OpenAI reports usage only at the end: message_delta carries it.
            "usage": usage_dict(None),
        }
        out.append(event("message_start", message=message))

    def _handle(self, obj: dict[str, Any], out: list[bytes]) -> None:
        err = obj.get("error")
        if isinstance(err, dict):
            status = _OPENAI_TYPE_STATUS.get(str(err.get("type")), 500)
            out.append(error_event(status, str(err.get("message") or "upstream stream error")))
            self._ended = True
            return
        if not self._started:
            self._start(obj, out)
        usage = usage_from_openai(obj.get("usage"))
        if usage is not None:
            self._usage = usage
        for choice in as_objs(obj.get("choices")):
            # Anthropic has one message per response: only the first choice.
            if as_int(choice.get("index")) == 0:
                self._choice(choice, out)

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                self._delta("thinking", {"type": "thinking_delta", "thinking": reasoning}, out)
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._delta("text", {"type": "text_delta", "text": text}, out)
            for call in as_objs(delta.get("tool_calls")):
                self._tool_delta(call, out)
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])

    def _open(self, kind: str, block: dict[str, Any], out: list[bytes]) -> int:
        self._close(out)
        index = self._next
        self._next += 1
        self._block, self._kind = index, kind
        out.append(event("content_block_start", index=index, content_block=block))
        return index

    def _close(self, out: list[bytes]) -> None:
        if self._block is not None:
            out.append(event("content_block_stop", index=self._block))
            self._block, self._kind = None, ""

    def _delta(self, kind: str, delta: dict[str, Any], out: list[bytes]) -> None:
        if self._kind != kind:
            start = (
                {"type": "thinking", "thinking": "", "signature": ""}
                if kind == "thinking"
                else {"type": "text", "text": ""}
            )
            self._open(kind, start, out)
        out.append(event("content_block_delta", index=self._block, delta=delta))

    def _tool_delta(self, call: dict[str, Any], out: list[bytes]) -> None:
        i = as_int(call.get("index"))
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        index = self._tools.get(i)
        if index is None:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu_"),
                "name": fn.get("name") or "",
                "input": {},
            }
            index = self._tools[i] = self._open("tool_use", block, out)
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            # Parallel calls arrive one after another; should a server interleave
            # them, the delta still names its own block's index.
            delta = {"type": "input_json_delta", "partial_json": args}
            out.append(event("content_block_delta", index=index, delta=delta))

    def _end(self, out: list[bytes]) -> None:
        if not self._started:
            self._start({}, out)
        self._close(out)
        delta = {"stop_reason": stop_reason(self._finish), "stop_sequence": None}
        out.append(event("message_delta", delta=delta, usage=usage_dict(self._usage)))
        out.append(event("message_stop"))
        self._ended = True
