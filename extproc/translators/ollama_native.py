"""Ollama-native clients (``/api/chat``, ``/api/generate``) -> Ollama.

Client and upstream speak the same API: :func:`native_request` forwards the
client's bytes untouched (only the model is rewritten when a mapping changed
it), :class:`NativeStreamTap` passes the NDJSON stream through while reading
usage, and errors keep Ollama's own ``{"error": "..."}`` shape (the leg maps
them with ``api_errors.ollama_error_body``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from extproc.streaming.errors import StreamDecodeError
from extproc.streaming.ndjson import NDJSONDecoder
from extproc.translators.base import (
    ProviderTarget,
    StreamFacts,
    TranslatedResponse,
    TranslationError,
    UpstreamRequest,
)
from extproc.translators.common import JSON, join_path
from extproc.translators.ollama import NDJSON, OLLAMA, ollama_usage
from extproc.usage import Usage

NATIVE_PATHS = ("/api/chat", "/api/generate")


def native_request(
    path: str, raw_body: bytes, body: dict[str, Any] | None, target: ProviderTarget
) -> UpstreamRequest:
    """Forward an Ollama-native request (``/api/chat`` or ``/api/generate``).

    The client's bytes go upstream untouched unless the model mapping changed
    the model, in which case only ``model`` is rewritten. ``stream`` is left as
    the client sent it: client and upstream speak the same API, so Ollama's
    own default applies to both.
    """
    if path not in NATIVE_PATHS:
        raise TranslationError(f"{path} is not a native Ollama path this gateway forwards")
    payload = raw_body
    if target.model and body is not None and body.get("model") != target.model:
        payload = orjson.dumps({**body, "model": target.model})
    return UpstreamRequest(
        path=join_path(target.base_path, path),
        headers=(("content-type", JSON), *OLLAMA.spec.upstream_headers(target)),
        remove_headers=("authorization",),
        raw=payload,
    )


def native_response(status: int, body: bytes) -> TranslatedResponse:
    """Non-streamed native success: the body is returned as-is; usage is read."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return TranslatedResponse(body, None, None)
    if not isinstance(obj, dict):
        return TranslatedResponse(body, None, None)
    model = obj.get("model") if isinstance(obj.get("model"), str) else None
    return TranslatedResponse(body, ollama_usage(obj), model)


class NativeStreamTap(StreamFacts):
    """Passes a native NDJSON stream through byte for byte, reading usage/model."""

    content_type = NDJSON

    def __init__(self, max_line_bytes: int | None = None) -> None:
        self._decoder = NDJSONDecoder(max_line_bytes) if max_line_bytes else NDJSONDecoder()
        self._usage: Usage | None = None
        self._model: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        # A bad line is not ours to judge: the client gets exactly what upstream sent.
        with contextlib.suppress(StreamDecodeError):
            self._observe(self._decoder.feed(chunk))
        return chunk

    def finish(self) -> bytes:
        with contextlib.suppress(StreamDecodeError):
            self._observe(self._decoder.finish())
        return b""

    def _observe(self, objs: list[Any]) -> None:
        for obj in objs:
            if not isinstance(obj, dict):
                continue
            if self._model is None and isinstance(obj.get("model"), str):
                self._model = obj["model"]
            if obj.get("done"):
                self._usage = ollama_usage(obj)
