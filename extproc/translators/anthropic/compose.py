"""Anthropic client -> any provider with an OpenAI->X translator.

The pair (Anthropic, X) is the composition (Anthropic, OpenAI) + (OpenAI, X):
requests go Anthropic -> OpenAI dict -> the X translator's upstream request;
answers come back X -> OpenAI (that translator's response or stream) ->
Anthropic. Nothing of the X translators is copied.
"""

from __future__ import annotations

from typing import Any

from extproc.translators.anthropic.errors import map_error
from extproc.translators.anthropic.request import to_openai
from extproc.translators.anthropic.response import response_body
from extproc.translators.anthropic.stream import AnthropicStream
from extproc.translators.base import (
    ProviderTarget,
    TranslatedResponse,
    Translator,
    UpstreamRequest,
)
from extproc.translators.common import ComposedStream

# The sampling fields a Messages request may carry; the provider's spec says
# which of them its API takes (OpenAI and Azure answer 400 to top_k).
_SAMPLING = ("temperature", "top_p", "top_k")


class AnthropicVia:
    """Request, response and stream functions of one (Anthropic, X) pair."""

    def __init__(self, inner: Translator) -> None:
        self.inner = inner
        self.name = inner.name

    def openai_body(self, body: dict[str, Any]) -> dict[str, Any]:
        out = to_openai(body)
        accepted = self.inner.spec.sampling
        for key in _SAMPLING:
            if key not in accepted:
                out.pop(key, None)
        return out

    def chat_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        """Raises TranslationError (-> 400) for what X cannot express."""
        return self.inner.chat_request(self.openai_body(body), target)

    def chat_response(self, status: int, body: bytes, target: ProviderTarget) -> TranslatedResponse:
        """A success (errors go to `error_response`); raises TranslationError when
        it is not a chat completion."""
        mid = self.inner.chat_response(status, body, target)
        return TranslatedResponse(response_body(mid.body, target.model), mid.usage, mid.model)

    def chat_stream(
        self, target: ProviderTarget, max_line_bytes: int | None = None
    ) -> ComposedStream:
        # include_usage: the inner stream must hand the usage chunk on to us.
        inner = self.inner.chat_stream(target, True, max_line_bytes)
        return ComposedStream(inner, AnthropicStream(target.model, max_line_bytes))

    def error_response(self, status: int, body: bytes) -> bytes:
        return map_error(status, body)
