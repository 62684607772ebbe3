"""The upstream legs of an Anthropic Messages client (``/v1/messages``, ``/count_tokens``).

* `AnthropicNativeLeg`: to a ``claude`` provider the API passes through (model
  mapping, key as ``x-api-key``, ``anthropic-version`` kept or defaulted);
  answers go back byte for byte and are read for usage.
* `AnthropicTranslatedLeg`: to any other provider, through
  (Anthropic, OpenAI) + that provider's (OpenAI, X) translator.
* ``count_tokens`` only exists at Anthropic: elsewhere a 501 in Anthropic's shape
  (`core/pick.py`).
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.core.events import Continue
from extproc.core.legs import BodyLeg
from extproc.core.request import RequestContext
from extproc.providers.custom_settings import apply_resolved
from extproc.translators.anthropic.compose import AnthropicVia
from extproc.translators.anthropic.errors import map_error
from extproc.translators.anthropic.native import (
    NativeStreamTap,
    native_headers,
    native_path,
    native_payload,
    native_response,
)
from extproc.translators.base import StreamTranslator, TranslatedResponse


class AnthropicNativeLeg(BodyLeg):
    """Anthropic client and Claude upstream: the client's bytes go on when unchanged."""

    __slots__ = ("count_tokens",)

    def __init__(self, *args: Any, count_tokens: bool = False) -> None:
        super().__init__(*args)
        self.count_tokens = count_tokens

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        target, settings = self.target, self.prov.custom_settings
        payload = native_payload(ctx.body, target, ctx.modified)
        if settings and not self.count_tokens:
            # Claude's wire is this API: its custom settings apply to the client's body.
            payload = apply_resolved(dict(payload or ctx.body), settings)
        body = None if payload is None else orjson.dumps(payload)
        path = native_path(target, self.count_tokens)
        return self._mutation(ctx, path, native_headers(target, ctx.headers), (), body)

    def _stream(self, max_line: int) -> StreamTranslator:
        return NativeStreamTap(max_line)

    def _success(self, status: int, raw: bytes) -> TranslatedResponse:
        if self.count_tokens:
            return TranslatedResponse(raw, None, None)  # a count, not tokens spent
        return native_response(status, raw)

    def _error(self, status: int, raw: bytes) -> bytes:
        # Claude's errors are already the client's shape; Envoy's own are not.
        return map_error(status, raw)


class AnthropicTranslatedLeg(BodyLeg):
    """Anthropic client, any other provider: translated both ways."""

    __slots__ = ("via",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.via = AnthropicVia(self.prov.translator)

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        up = self.via.chat_request(ctx.body, self.target)
        if self.prov.custom_settings and up.payload is not None:
            # The provider's wire body, before the one serialisation.
            apply_resolved(up.payload, self.prov.custom_settings)
        return self._mutation(ctx, up.path, up.headers, up.remove_headers, up.body)

    def _stream(self, max_line: int) -> StreamTranslator:
        return self.via.chat_stream(self.target, max_line)

    def _success(self, status: int, raw: bytes) -> TranslatedResponse:
        return self.via.chat_response(status, raw, self.target)

    def _error(self, status: int, raw: bytes) -> bytes:
        return map_error(status, raw)
