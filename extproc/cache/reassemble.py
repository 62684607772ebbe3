"""A streamed answer back into its API's non-stream body, for the cache.

Fed the bytes the client received (what the leg already produced), it keeps
only what the final answer needs. `result` is None unless the stream
completed normally: the API's end marker seen (`[DONE]` with every choice
finished, `message_stop`, `done: true`), no error event, nothing
unparseable, and not larger than the bound. It never raises into the
exchange: a stream it cannot read is simply not cached.
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
from extproc.streaming.ndjson import NDJSONDecoder
from extproc.streaming.sse import SSEDecoder, SSEEvent
from extproc.usage import Usage


class Reassembler:
    """Bytes in; the non-stream body out (or None)."""

    def __init__(self, max_bytes: int) -> None:
        # Stream framing repeats ids and field names per chunk: allow for it,
        # the answer's own size is checked against max_entry_bytes after.
        self._budget = 8 * max_bytes + (64 << 10)
        self._max_line = max(1 << 16, 2 * max_bytes)
        self.failed = False
        self.done = False

    def feed(self, data: bytes) -> None:
        if self.failed or not data:
            return
        self._budget -= len(data)
        if self._budget < 0:
            self.failed = True
            return
        try:
            self._feed(data)
        except Exception:  # unreadable: not cached, never the client's problem
            self.failed = True

    def result(self, usage: Usage | None = None) -> bytes | None:
        if self.failed or not self.done:
            return None
        try:
            out = self._result(usage)
        except Exception:  # a shape this code does not know: not cached
            return None
        return None if out is None else orjson.dumps(out)

    def _feed(self, data: bytes) -> None:
        raise NotImplementedError

    def _result(self, usage: Usage | None) -> dict[str, Any] | None:
        raise NotImplementedError


class _SSE(Reassembler):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self._dec = SSEDecoder(self._max_line, self._max_line)

    def _feed(self, data: bytes) -> None:
        for ev in self._dec.feed(data):
            if self.failed:
                return
            self._event(ev)

    def _event(self, ev: SSEEvent) -> None:
        raise NotImplementedError


def _text(parts: list[str]) -> str:
    return "".join(parts)


class OpenAIChatReassembler(_SSE):
    """`chat.completion.chunk` events -> a `chat.completion`."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self._meta: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None

    def _event(self, ev: SSEEvent) -> None:
        if ev.data == "[DONE]":
            self.done = True
            return
        if self.done:
            return
        obj = orjson.loads(ev.data)
        if not isinstance(obj, dict) or obj.get("error") is not None:
            self.failed = True
            return
        for k in ("id", "created", "model", "system_fingerprint"):
            if obj.get(k) is not None:
                self._meta.setdefault(k, obj[k])
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]
        for c in obj.get("choices") or ():
            st = self._choices.setdefault(
                int(c.get("index", 0)),
                {"role": "assistant", "content": [], "reasoning_content": [], "refusal": []},
            )
            d = c.get("delta") or {}
            if d.get("role"):
                st["role"] = d["role"]
            for f in ("content", "reasoning_content", "refusal"):
                if isinstance(d.get(f), str):
                    st[f].append(d[f])
            for tc in d.get("tool_calls") or ():
                tools = st.setdefault("tools", {})
                t = tools.setdefault(
                    int(tc.get("index", 0)), {"id": "", "type": "function", "n": [], "a": []}
                )
                if tc.get("id"):
                    t["id"] = tc["id"]
                if tc.get("type"):
                    t["type"] = tc["type"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    t["n"].append(fn["name"])
                if fn.get("arguments"):
                    t["a"].append(fn["arguments"])
            if c.get("finish_reason"):
                st["finish_reason"] = c["finish_reason"]

    def _result(self, usage: Usage | None) -> dict[str, Any] | None:
        if not self._choices or any("finish_reason" not in st for st in self._choices.values()):
            return None
        choices = []
        for i in sorted(self._choices):
            st = self._choices[i]
            msg: dict[str, Any] = {"role": st["role"]}
            content = _text(st["content"])
            tools = st.get("tools")
            msg["content"] = content if content or not tools else None
            for f in ("reasoning_content", "refusal"):
                if st[f]:
                    msg[f] = _text(st[f])
            if tools:
                msg["tool_calls"] = [
                    {
                        "id": t["id"],
                        "type": t["type"],
                        "function": {"name": _text(t["n"]), "arguments": _text(t["a"])},
                    }
                    for _, t in sorted(tools.items())
                ]
            choices.append(
                {"index": i, "message": msg, "finish_reason": st["finish_reason"], "logprobs": None}
            )
        out: dict[str, Any] = {
            "id": self._meta.get("id", ""),
            "object": "chat.completion",
            "created": self._meta.get("created", 0),
            "model": self._meta.get("model", ""),
            "choices": choices,
        }
        if "system_fingerprint" in self._meta:
            out["system_fingerprint"] = self._meta["system_fingerprint"]
        u = self._usage
        if u is None and usage is not None:
            # The client did not ask for usage in its stream; the leg read it anyway.
            u = {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            }
        if u is not None:
            out["usage"] = u
        return out


class AnthropicReassembler(_SSE):
    """Messages API events -> a `message`."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self._msg: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}

    def _event(self, ev: SSEEvent) -> None:
        obj = orjson.loads(ev.data)
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "error" or not isinstance(obj, dict):
            self.failed = True
        elif kind == "message_start":
            self._msg = dict(obj["message"])
        elif self._msg is None:
            return  # ping before message_start
        elif kind == "content_block_start":
            self._blocks[int(obj["index"])] = dict(obj["content_block"])
        elif kind == "content_block_delta":
            i, d = int(obj["index"]), obj["delta"]
            b = self._blocks[i]
            dt = d.get("type")
            if dt == "text_delta":
                b["text"] = b.get("text", "") + d["text"]
            elif dt == "input_json_delta":
                self._json.setdefault(i, []).append(d.get("partial_json", ""))
            elif dt == "thinking_delta":
                b["thinking"] = b.get("thinking", "") + d["thinking"]
            elif dt == "signature_delta":
                b["signature"] = d["signature"]
            elif dt == "citations_delta":
                b.setdefault("citations", []).append(d["citation"])
            else:
                self.failed = True  # a delta this code does not know: not cached
        elif kind == "content_block_stop":
            i = int(obj["index"])
            if i in self._json:
                raw = _text(self._json.pop(i))
                self._blocks[i]["input"] = orjson.loads(raw) if raw else {}
        elif kind == "message_delta":
            delta = obj.get("delta") or {}
            for k in ("stop_reason", "stop_sequence"):
                if k in delta:
                    self._msg[k] = delta[k]
            if isinstance(obj.get("usage"), dict):
                self._msg["usage"] = {**(self._msg.get("usage") or {}), **obj["usage"]}
        elif kind == "message_stop":
            self.done = True

    def _result(self, usage: Usage | None) -> dict[str, Any] | None:
        msg = self._msg
        if msg is None or not msg.get("stop_reason") or self._json:
            return None
        return {**msg, "content": [self._blocks[i] for i in sorted(self._blocks)]}


class OllamaReassembler(Reassembler):
    """Ollama's NDJSON (`/api/chat`, `/api/generate`) -> the non-stream object."""

    def __init__(self, max_bytes: int, generate: bool) -> None:
        super().__init__(max_bytes)
        self._dec = NDJSONDecoder(self._max_line)
        self._generate = generate
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._tools: list[Any] = []
        self._role = "assistant"
        self._final: dict[str, Any] | None = None

    def _feed(self, data: bytes) -> None:
        for obj in self._dec.feed(data):
            self._obj(obj)

    def _obj(self, obj: Any) -> None:
        if not isinstance(obj, dict) or obj.get("error") is not None or self.done:
            self.failed = True
            return
        part = obj if self._generate else (obj.get("message") or {})
        text = part.get("response" if self._generate else "content")
        if isinstance(text, str):
            self._text.append(text)
        if isinstance(part.get("thinking"), str):
            self._thinking.append(part["thinking"])
        if not self._generate:
            if part.get("role"):
                self._role = part["role"]
            if isinstance(part.get("tool_calls"), list):
                self._tools.extend(part["tool_calls"])
        if obj.get("done") is True:
            self._final = obj
            self.done = True

    def _result(self, usage: Usage | None) -> dict[str, Any] | None:
        final = self._final
        if final is None:
            return None
        thinking = _text(self._thinking)
        if self._generate:
            out = {**final, "response": _text(self._text)}
            if thinking:
                out["thinking"] = thinking
            return out
        msg: dict[str, Any] = {"role": self._role, "content": _text(self._text)}
        if thinking:
            msg["thinking"] = thinking
        if self._tools:
            msg["tool_calls"] = self._tools
        return {**final, "message": msg}


class ResponsesReassembler(_SSE):
    """Responses API events -> the `response` object `response.completed` carries."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self._final: dict[str, Any] | None = None

    def _event(self, ev: SSEEvent) -> None:
        obj = orjson.loads(ev.data)
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "response.completed":
            resp = obj.get("response")
            if not isinstance(resp, dict) or resp.get("status") != "completed":
                self.failed = True
                return
            self._final = resp
            self.done = True
        elif kind in ("response.failed", "response.incomplete", "error") or kind is None:
            self.failed = True  # cut short, refused or broken: not an answer to keep

    def _result(self, usage: Usage | None) -> dict[str, Any] | None:
        return self._final


def reassembler_for(endpoint: str, max_bytes: int) -> Reassembler | None:
    """The reassembler of an endpoint's stream (None: that stream is not cached)."""
    if endpoint == ANTHROPIC_MESSAGES:
        return AnthropicReassembler(max_bytes)
    if endpoint in (OLLAMA_CHAT, OLLAMA_GENERATE):
        return OllamaReassembler(max_bytes, endpoint == OLLAMA_GENERATE)
    if endpoint == CHAT:
        return OpenAIChatReassembler(max_bytes)
    if endpoint == RESPONSES:
        return ResponsesReassembler(max_bytes)
    return None
