"""Anthropic client -> ``claude`` provider: the Messages API passes through.

The client's bytes go upstream unless the model was mapped (or a provider's
default stream applies); the provider key goes in ``x-api-key``;
``anthropic-version`` is the client's when it sent one, else the provider's
setting or the default. Answers pass through byte for byte and are only read
for usage and the served model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.streaming.sse import SSEDecoder
from extproc.translators.base import ProviderTarget, TranslatedResponse
from extproc.translators.claude import CLAUDE, usage_from_anthropic
from extproc.translators.common import SSE, join_path, loads_object
from extproc.usage import Usage

MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"


def native_path(target: ProviderTarget, count_tokens: bool = False) -> str:
    return join_path(target.base_path, COUNT_TOKENS if count_tokens else MESSAGES)


def native_headers(
    target: ProviderTarget, client_headers: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """The key, and ``anthropic-version`` only when the client did not send one."""
    own = {h.name for h in CLAUDE.spec.headers}
    return tuple(
        (k, v)
        for k, v in CLAUDE.spec.upstream_headers(target)
        if k not in own or k not in client_headers
    )


def native_payload(
    body: dict[str, Any], target: ProviderTarget, modified: bool = False
) -> dict[str, Any] | None:
    """The body to send, or None when the client's bytes can go unchanged.

    ``modified``: a processor changed ``body`` (the client's bytes are stale).
    A changed body is a new dict: the caller's is not touched.
    """
    changes: dict[str, Any] = {}
    if target.model and body.get("model") != target.model:
        changes["model"] = target.model
    if bool(body.get("stream")) != target.stream:
        changes["stream"] = target.stream
    if not changes and not modified:
        return None
    return {**body, **changes}


def _model_of(obj: Mapping[str, Any]) -> str | None:
    model = obj.get("model")
    return model if isinstance(model, str) and model else None


def native_response(status: int, body: bytes) -> TranslatedResponse:
    """A JSON answer (message or error) passes through; usage and model are read."""
    obj = loads_object(body) if status < 400 else None
    if obj is None or obj.get("type") != "message":
        return TranslatedResponse(body, None, None)
    return TranslatedResponse(body, usage_from_anthropic(obj.get("usage")), _model_of(obj))


class NativeStreamTap:
    """Anthropic SSE passes through untouched; ``message_start`` and
    ``message_delta`` are read for the model and the (cumulative) usage."""

    content_type = SSE

    def __init__(self, max_line_bytes: int | None = None) -> None:
        self._decoder = SSEDecoder(max_line_bytes) if max_line_bytes else SSEDecoder()
        self._fields: dict[str, int] = {}
        self._model: str | None = None

    @property
    def usage(self) -> Usage | None:
        return usage_from_anthropic(self._fields) if self._fields else None

    @property
    def model(self) -> str | None:
        return self._model

    def feed(self, chunk: bytes) -> bytes:
        for ev in self._decoder.feed(chunk):
            # Anthropic names every event; skip the many deltas without parsing them.
            if ev.event in ("message_start", "message_delta") or (
                ev.event == "message" and '"message_' in ev.data
            ):
                self._observe(ev.data)
        return chunk

    def finish(self) -> bytes:
        self._decoder.finish()
        return b""

    def _observe(self, data: str) -> None:
        obj = loads_object(data.encode())
        if obj is None:
            return
        if obj.get("type") == "message_start" and isinstance(obj.get("message"), dict):
            msg = obj["message"]
            self._model = _model_of(msg) or self._model
            self._merge(msg.get("usage"))
        elif obj.get("type") == "message_delta":
            self._merge(obj.get("usage"))

    def _merge(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for k, v in usage.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    self._fields[k] = v
