"""Responses client -> any provider with an OpenAI->X translator.

The pair (Responses, X) is the composition (Responses, OpenAI chat) +
(OpenAI chat, X): requests go Responses -> chat dict -> the X translator's
upstream request; answers come back X -> chat (that translator's response or
stream) -> Responses. Nothing of the X translators is copied. One instance
per request: the answer's translation needs what the request said (tool
namespaces, the settings a response object echoes).
"""

from __future__ import annotations

from typing import Any

from extproc.translators.base import (
    ProviderTarget,
    TranslatedResponse,
    Translator,
    UpstreamRequest,
)
from extproc.translators.common import ComposedStream
from extproc.translators.responses.request import ChatRequest, to_chat
from extproc.translators.responses.response import response_body
from extproc.translators.responses.stream import MAX_HELD_BYTES, ResponsesStream

# Chat fields a provider's OpenAI-shaped translator may not know; only
# OpenAI-compatible providers get them (their bodies go on as they are).
_OPENAI_ONLY = ("reasoning_effort", "metadata")


class ResponsesVia:
    """Request, response and stream functions of one (Responses, X) pair."""

    def __init__(self, inner: Translator, openai_wire: bool = True) -> None:
        self.inner = inner
        self.name = inner.name
        self._openai_wire = openai_wire
        self.chat = ChatRequest({})

    def chat_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """Raises TranslationError (-> 400) for what X cannot express."""
        self.chat = to_chat(body)
        out = self.chat.body
        if not self._openai_wire:
            for key in _OPENAI_ONLY:
                out.pop(key, None)
        return out

    @property
    def dropped(self) -> tuple[str, ...]:
        """Hosted tool types the request named that this provider cannot run."""
        return self.chat.dropped

    def chat_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        return self.inner.chat_request(self.chat_body(body), target)

    def chat_response(self, status: int, body: bytes, target: ProviderTarget) -> TranslatedResponse:
        mid = self.inner.chat_response(status, body, target)
        out = response_body(mid.body, target.model, self.chat.names, self.chat.echo)
        return TranslatedResponse(out, mid.usage, mid.model)

    def chat_stream(
        self,
        target: ProviderTarget,
        max_line_bytes: int | None = None,
        max_held_bytes: int = MAX_HELD_BYTES,
    ) -> ComposedStream:
        # include_usage: the inner stream must hand the usage chunk on to us.
        inner = self.inner.chat_stream(target, True, max_line_bytes)
        outer = ResponsesStream(
            target.model, self.chat.names, self.chat.echo, max_line_bytes, max_held_bytes
        )
        return ComposedStream(inner, outer)

    def error_response(self, status: int, body: bytes) -> bytes:
        # Every OpenAI->X translator maps its provider's errors to OpenAI's
        # shape, which is the Responses API's too.
        return self.inner.error_response(status, body)
