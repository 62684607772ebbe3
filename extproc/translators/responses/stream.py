"""OpenAI ``chat.completion.chunk`` SSE -> Responses API stream events.

The stream is ``response.created`` and ``response.in_progress``, then per
output item ``response.output_item.added``, its deltas and
``response.output_item.done`` (a message also gets ``content_part.added`` /
``output_text.delta`` / ``output_text.done`` / ``content_part.done``; a
function call ``function_call_arguments.delta`` / ``.done``), then
``response.completed`` (or ``response.incomplete``) with the whole response
and usage. Every event carries its ``type`` and an increasing
``sequence_number``. The end is held until ``[DONE]``: with
``include_usage`` the usage chunk comes after the chunk with
``finish_reason``.

A stream that ends with neither ``[DONE]`` nor a finish reason was cut off
upstream and ends with ``response.failed``, so a client never waits for
``response.completed`` forever. The text the final events repeat is held, up
to ``max_held_bytes`` (beyond it the exchange cuts the stream off).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from extproc.streaming.errors import StreamLimitError
from extproc.streaming.sse import SSEDecoder, encode_sse
from extproc.translators.base import StreamFacts
from extproc.translators.common import SSE, as_int, as_obj, as_objs, new_id, now, usage_from_openai
from extproc.translators.responses.response import (
    call_item,
    message_item,
    response_id,
    skeleton,
    status_of,
    text_part,
    usage_dict,
)
from extproc.usage import Usage

MAX_HELD_BYTES = 32 << 20  # text and arguments repeated by the closing events
# Responses API error codes for an OpenAI in-stream error type.
_ERROR_CODES = {
    "rate_limit_error": "rate_limit_exceeded",
    "invalid_request_error": "invalid_prompt",
}


class _Item:
    """One output item being streamed."""

    __slots__ = ("call_id", "id", "index", "kind", "name", "parts")

    def __init__(self, kind: str, index: int, id_: str, call_id: str = "", name: str = "") -> None:
        self.kind, self.index, self.id = kind, index, id_
        self.call_id, self.name = call_id, name
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ResponsesStream(StreamFacts):
    """One instance per streamed response; chat SSE bytes in, Responses SSE out."""

    content_type = SSE

    def __init__(
        self,
        model: str,
        names: Mapping[str, tuple[str, str]] | None = None,
        echo: Mapping[str, Any] | None = None,
        max_line_bytes: int | None = None,
        max_held_bytes: int = MAX_HELD_BYTES,
    ) -> None:
        self._decoder = SSEDecoder(max_line_bytes) if max_line_bytes else SSEDecoder()
        self._fallback_model = model
        self._names = names or {}
        self._echo = echo or {}
        self._max_held = max_held_bytes
        self._held = 0
        self._model: str | None = None
        self._usage: Usage | None = None
        self._id = ""
        self._created = 0
        self._seq = 0
        self._started = False
        self._ended = False
        self._finish: str | None = None
        self._open: _Item | None = None  # the open message or reasoning item
        self._calls: dict[int, _Item] = {}  # open function calls by chat tool_calls index
        self._output: list[dict[str, Any]] = []  # closed items, in output_index order
        self._next = 0
        self._item_status = "completed"  # of the items closed from now on

    # -- StreamTranslator ---------------------------------------------------

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
            self._fail(out, "server_error", "upstream stream ended before it finished")
        return b"".join(out)

    # -- framing ------------------------------------------------------------

    def _emit(self, out: list[bytes], kind: str, **fields: Any) -> None:
        data = orjson.dumps({"type": kind, "sequence_number": self._seq, **fields})
        self._seq += 1
        out.append(encode_sse(data, kind))

    def _response(self, status: str) -> dict[str, Any]:
        model = self._model or self._fallback_model
        return skeleton(self._id, self._created, model, status, self._echo)

    def _hold(self, text: str) -> None:
        self._held += len(text)
        if self._held > self._max_held:
            raise StreamLimitError(
                f"streamed output exceeds the gateway's limit ({self._max_held} bytes)"
            )

    # -- chat chunks ----------------------------------------------------------

    def _start(self, obj: dict[str, Any], out: list[bytes]) -> None:
        self._started = True
        served = obj.get("model")
        if isinstance(served, str) and served:
            self._model = served
        self._id = response_id(obj.get("id"))
        created = obj.get("created")
        self._created = as_int(created) or now()
        resp = self._response("in_progress")
        self._emit(out, "response.created", response=resp)
        self._emit(out, "response.in_progress", response=resp)

    def _handle(self, obj: dict[str, Any], out: list[bytes]) -> None:
        err = obj.get("error")
        if isinstance(err, dict):
            code = _ERROR_CODES.get(str(err.get("type")), "server_error")
            self._fail(out, code, str(err.get("message") or "upstream stream error"))
            return
        if not self._started:
            self._start(obj, out)
        usage = usage_from_openai(obj.get("usage"))
        if usage is not None:
            self._usage = usage
        for choice in as_objs(obj.get("choices")):
            if as_int(choice.get("index")) == 0:  # one response: the first choice
                self._choice(choice, out)

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                self._text("reasoning", reasoning, out)
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._text("message", text, out)
            for call in as_objs(delta.get("tool_calls")):
                self._call(call, out)
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])

    def _text(self, kind: str, text: str, out: list[bytes]) -> None:
        item = self._open
        if item is None or item.kind != kind:
            self._close_all(out)
            item = self._open = _Item(
                kind, self._next, new_id("msg_" if kind == "message" else "rs_")
            )
            self._next += 1
            if kind == "message":
                added: dict[str, Any] = message_item(item.id, [], "in_progress")
                part = text_part("")
            else:
                added = {"id": item.id, "type": "reasoning", "summary": [], "content": []}
                part = {"type": "reasoning_text", "text": ""}
            self._emit(out, "response.output_item.added", output_index=item.index, item=added)
            self._emit(
                out,
                "response.content_part.added",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                part=part,
            )
        self._hold(text)
        item.parts.append(text)
        if kind == "message":
            self._emit(
                out,
                "response.output_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        else:
            self._emit(
                out,
                "response.reasoning_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=text,
            )

    def _call(self, call: dict[str, Any], out: list[bytes]) -> None:
        i = as_int(call.get("index"))
        fn = as_obj(call.get("function"))
        item = self._calls.get(i)
        if item is None:
            if self._open is not None:
                self._close_text(out)
            call_id = call.get("id")
            name = fn.get("name")
            item = self._calls[i] = _Item(
                "function_call",
                self._next,
                new_id("fc_"),
                call_id if isinstance(call_id, str) and call_id else new_id("call_"),
                name if isinstance(name, str) else "",
            )
            self._next += 1
            added = call_item(item.id, item.call_id, item.name, "", "in_progress", self._names)
            self._emit(out, "response.output_item.added", output_index=item.index, item=added)
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            self._hold(args)
            item.parts.append(args)
            self._emit(
                out,
                "response.function_call_arguments.delta",
                item_id=item.id,
                output_index=item.index,
                delta=args,
            )

    # -- closing items ----------------------------------------------------------

    def _close_text(self, out: list[bytes]) -> None:
        item = self._open
        if item is None:
            return
        self._open = None
        text = item.text
        where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
        if item.kind == "message":
            part = text_part(text)
            self._emit(out, "response.output_text.done", **where, text=text, logprobs=[])
            done: dict[str, Any] = message_item(item.id, [part], self._item_status)
        else:
            part = {"type": "reasoning_text", "text": text}
            self._emit(out, "response.reasoning_text.done", **where, text=text)
            done = {"id": item.id, "type": "reasoning", "summary": [], "content": [part]}
        self._emit(out, "response.content_part.done", **where, part=part)
        self._emit(out, "response.output_item.done", output_index=item.index, item=done)
        self._output.append(done)

    def _close_calls(self, out: list[bytes]) -> None:
        for item in sorted(self._calls.values(), key=lambda c: c.index):
            args = item.text
            done = call_item(item.id, item.call_id, item.name, args, self._item_status, self._names)
            self._emit(
                out,
                "response.function_call_arguments.done",
                item_id=item.id,
                output_index=item.index,
                name=done["name"],
                arguments=args,
            )
            self._emit(out, "response.output_item.done", output_index=item.index, item=done)
            self._output.append(done)
        self._calls = {}

    def _close_all(self, out: list[bytes]) -> None:
        self._close_text(out)
        self._close_calls(out)

    # -- the end ------------------------------------------------------------------

    def _end(self, out: list[bytes]) -> None:
        if not self._started:
            self._start({}, out)
        self._close_all(out)
        status, details = status_of(self._finish)
        resp = self._response(status)
        resp["incomplete_details"] = details
        resp["output"] = self._output
        resp["usage"] = usage_dict(self._usage)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        self._emit(out, kind, response=resp)
        self._ended = True

    def _fail(self, out: list[bytes], code: str, message: str) -> None:
        """End with ``response.failed``: what was streamed so far, and why it stopped."""
        if not self._started:
            self._start({}, out)
        self._item_status = "incomplete"  # what was streamed so far, cut short
        self._close_all(out)
        resp = self._response("failed")
        resp["error"] = {"code": code, "message": message}
        resp["output"] = self._output
        resp["usage"] = usage_dict(self._usage)
        self._emit(out, "response.failed", response=resp)
        self._ended = True
