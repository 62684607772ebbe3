"""Responses client -> a provider that speaks the Responses API: pass-through.

The client's bytes go upstream unless the model was mapped (or a provider's
default stream applies); the key is the provider's usual one. Answers pass
through byte for byte and are only read for usage and the served model: the
JSON body, or the stream's ``response.created`` (model) and
``response.completed`` / ``.incomplete`` / ``.failed`` (usage) events. A
stream that ends without one of those (cut off upstream) gets a
``response.failed`` added, as translated streams do.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.streaming.sse import SSEDecoder, encode_sse
from extproc.translators.base import ProviderTarget, StreamFacts, TranslatedResponse
from extproc.translators.common import SSE, as_int, join_path, loads_object
from extproc.usage import Usage

RESPONSES = "/responses"
# Stream events whose response object carries the usage (the last one of a stream).
_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_TAPPED = _ENDS | {"response.created"}


def native_path(target: ProviderTarget) -> str:
    if target.type == "azure":
        # Azure's v1 Responses API: the deployment goes in the body's model.
        return join_path(target.base_path, "/openai/v1/responses")
    return join_path(target.base_path, RESPONSES)


def native_payload(
    body: dict[str, Any], target: ProviderTarget, modified: bool = False
) -> dict[str, Any] | None:
    """The body to send, or None when the client's bytes can go unchanged.

    ``modified``: a processor changed ``body``. A changed body is a new dict.
    """
    model = target.model
    if target.type == "azure":
        model = str(target.settings.get("deployment") or model)
    changes: dict[str, Any] = {}
    if model and body.get("model") != model:
        changes["model"] = model
    if bool(body.get("stream")) != target.stream:
        changes["stream"] = target.stream
    if not changes and not modified:
        return None
    return {**body, **changes}


def usage_from_responses(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    inp, outp = as_int(u.get("input_tokens")), as_int(u.get("output_tokens"))
    total = u.get("total_tokens")
    idet, odet = u.get("input_tokens_details"), u.get("output_tokens_details")
    return Usage(
        input_tokens=inp,
        output_tokens=outp,
        total_tokens=as_int(total) if isinstance(total, int) else inp + outp,
        cached_tokens=as_int(idet.get("cached_tokens")) if isinstance(idet, dict) else 0,
        reasoning_tokens=as_int(odet.get("reasoning_tokens")) if isinstance(odet, dict) else 0,
    )


def _model_of(obj: dict[str, Any]) -> str | None:
    model = obj.get("model")
    return model if isinstance(model, str) and model else None


def native_response(status: int, body: bytes) -> TranslatedResponse:
    """A JSON answer (response or error) passes through; usage and model are read."""
    obj = loads_object(body) if status < 400 else None
    if obj is None or obj.get("object") != "response":
        return TranslatedResponse(body, None, None)
    return TranslatedResponse(body, usage_from_responses(obj.get("usage")), _model_of(obj))


class NativeStreamTap(StreamFacts):
    """The provider's Responses SSE passes through untouched; tapped, not buffered."""

    content_type = SSE

    def __init__(self, max_line_bytes: int | None = None) -> None:
        self._decoder = SSEDecoder(max_line_bytes) if max_line_bytes else SSEDecoder()
        self._events = 0  # seen so far: the next sequence number
        self._ended = False  # a terminal event passed
        self._started: dict[str, Any] = {}  # response.created's response

    def feed(self, chunk: bytes) -> bytes:
        for ev in self._decoder.feed(chunk):
            self._events += 1
            # OpenAI names every event; skip the many deltas without parsing them.
            if ev.event in _TAPPED or (
                ev.event == "message" and '"response.' in ev.data and '"delta"' not in ev.data
            ):
                self._observe(ev.data)
            elif ev.event == "error":
                self._ended = True  # the provider said what went wrong
        return chunk

    def finish(self) -> bytes:
        self._decoder.finish()
        if self._ended or not self._events:
            return b""
        # Cut off upstream: say so, so that the client does not wait for an end.
        resp = {
            **self._started,
            "status": "failed",
            "error": {
                "code": "server_error",
                "message": "upstream stream ended before it finished",
            },
        }
        self._ended = True
        data = {"type": "response.failed", "sequence_number": self._events, "response": resp}
        return encode_sse(orjson.dumps(data), "response.failed")

    def _observe(self, data: str) -> None:
        obj = loads_object(data.encode())
        resp = obj.get("response") if obj else None
        if obj is None or not isinstance(resp, dict):
            return
        self._model = _model_of(resp) or self._model
        kind = obj.get("type")
        if kind in _ENDS:
            self._ended = True
            self._usage = usage_from_responses(resp.get("usage")) or self._usage
        elif kind == "response.created":
            self._started = resp
