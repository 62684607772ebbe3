"""The upstream legs of a Responses API client (``/v1/responses``).

* `ResponsesNativeLeg`: to a provider that serves the Responses API
  (its spec's ``native_apis``: openai, azure) it passes through (model mapping,
  the provider's key); answers go back byte for byte and are read for usage.
* `ResponsesTranslatedLeg`: to any other provider, through
  (Responses, chat) + that provider's (chat, X) translator. Hosted tools it
  cannot run are dropped and named in the ``x-llm-dropped-tools`` header.
* Stored responses (``GET /v1/responses/{id}``, ...) exist only at a native
  provider (`core/pick.py`: the endpoint is ``native_only``).

``accept-encoding`` never goes upstream: the gateway reads every answer (usage,
translation) and does not decode compressed bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from extproc.client_apis.base import ClientApi
from extproc.client_apis.registry import OPENAI
from extproc.config.runtime import ProviderRuntime, RouteRuntime
from extproc.core.events import Continue, Headers, Reject
from extproc.core.legs import BodyLeg, Leg, Pairs, resolve_target
from extproc.core.record import ExchangeRecord
from extproc.core.request import RequestContext
from extproc.providers.custom_settings import apply_resolved
from extproc.translators.base import StreamTranslator, TranslatedResponse
from extproc.translators.responses.compose import ResponsesVia
from extproc.translators.responses.native import (
    NativeStreamTap,
    native_path,
    native_payload,
    native_response,
)

log = logging.getLogger("extproc.responses")

DROPPED_HEADER = "x-llm-dropped-tools"
_NO_ENCODING = ("accept-encoding",)


class ResponsesNativeLeg(BodyLeg):
    """Responses client, Responses provider: the client's bytes go on when unchanged."""

    __slots__ = ()

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        target = self.target
        payload = native_payload(ctx.body, target, ctx.modified)
        body = None if payload is None else orjson.dumps(payload)
        headers = self.prov.spec.upstream_headers(target)
        return self._mutation(ctx, native_path(target), headers, _NO_ENCODING, body)

    def _stream(self, max_line: int) -> StreamTranslator:
        return NativeStreamTap(max_line)

    def _success(self, status: int, raw: bytes) -> TranslatedResponse:
        return native_response(status, raw)


class ResponsesTranslatedLeg(BodyLeg):
    """Responses client, any other provider: translated both ways."""

    __slots__ = ("via",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.via = ResponsesVia(self.prov.translator, self.prov.spec.serves(OPENAI.name))

    def request(self, ctx: RequestContext, raw: bytes) -> Continue:
        up = self.via.chat_request(ctx.body, self.target)
        if self.prov.custom_settings and up.payload is not None:
            # The provider's wire body, before the one serialisation.
            apply_resolved(up.payload, self.prov.custom_settings)
        if self.via.dropped:
            log.info(
                "hosted tools dropped: provider %r cannot run %s",
                self.prov.name,
                ", ".join(self.via.dropped),
                extra={"fields": {"route": self.route.name, "provider": self.prov.name}},
            )
        remove = (*up.remove_headers, *_NO_ENCODING)
        return self._mutation(ctx, up.path, up.headers, remove, up.body)

    def answer_headers(
        self, status: int, headers: Headers, rec: ExchangeRecord
    ) -> tuple[Pairs, tuple[str, ...]]:
        out, remove = super().answer_headers(status, headers, rec)
        if self.via.dropped:
            out = (*out, (DROPPED_HEADER, ",".join(dict.fromkeys(self.via.dropped))))
        return out, remove

    def _stream(self, max_line: int) -> StreamTranslator:
        return self.via.chat_stream(self.target, max_line)

    def _success(self, status: int, raw: bytes) -> TranslatedResponse:
        return self.via.chat_response(status, raw, self.target)

    def _error(self, status: int, raw: bytes) -> bytes:
        return self.via.error_response(status, raw)


def open_responses_leg(
    route: RouteRuntime,
    endpoint: str,
    api: ClientApi,
    prov: ProviderRuntime,
    body: Mapping[str, Any],
) -> Leg | Reject:
    """The leg for a Responses API request (or a Reject: policy, no token)."""
    resolved = resolve_target(route, endpoint, api, prov, body)
    if isinstance(resolved, Reject):
        return resolved
    target, requested, _ = resolved
    args = (route, prov, target, requested, False)
    if prov.spec.serves(api.name):
        return ResponsesNativeLeg(*args)
    return ResponsesTranslatedLeg(*args)
