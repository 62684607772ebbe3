"""The parsed client request that processors read and change."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from extproc.content.texts import Text, UnreadableContent, request_texts, select
from extproc.core.endpoints import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_ENDPOINTS,
    ANTHROPIC_MESSAGES,
    CHAT,
    EMBEDDINGS,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    OTHER,
    RESPONSES,
    RESPONSES_ENDPOINTS,
    RESPONSES_STORED,
    client_api_of,
    endpoint_of,
)
from extproc.core.errors import reject
from extproc.core.events import Headers, Reject

if TYPE_CHECKING:
    from extproc.config.runtime import RouteRuntime

__all__ = [
    "ANTHROPIC_COUNT_TOKENS",
    "ANTHROPIC_ENDPOINTS",
    "ANTHROPIC_MESSAGES",
    "CHAT",
    "EMBEDDINGS",
    "OLLAMA_CHAT",
    "OLLAMA_GENERATE",
    "OTHER",
    "RESERVATION",
    "RESPONSES",
    "RESPONSES_ENDPOINTS",
    "RESPONSES_STORED",
    "RequestContext",
    "client_api_of",
    "endpoint_of",
    "unreadable",
]

_USER = frozenset({"user"})
# The annotation the authenticator leaves for the exchange: the budget Reservation.
RESERVATION = "budget_reservation"


class RequestContext:
    """One request as processors see it. Setting `modified` (a processor
    changed `body`) makes `texts` read the body again on next use."""

    __slots__ = (
        "_gen",
        "_modified",
        "_texts",
        "_texts_gen",
        "annotations",
        "body",
        "body_bytes",
        "consumer",
        "endpoint",
        "headers",
        "route",
    )

    def __init__(
        self,
        route: RouteRuntime,
        headers: Headers,
        endpoint: str,
        body: dict[str, Any],
        modified: bool = False,
        consumer: str | None = None,
        annotations: dict[str, Any] | None = None,
        body_bytes: int = 0,
    ) -> None:
        self.route = route
        self.headers = headers
        self.endpoint = endpoint
        self.body = body
        self._modified = modified
        self._gen = 0
        self._texts: list[Text] | None = None
        self._texts_gen = 0
        self.consumer = consumer
        self.body_bytes = body_bytes  # the client's body as received (budget estimates)
        self.annotations: dict[str, Any] = {} if annotations is None else annotations

    @property
    def modified(self) -> bool:
        return self._modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = value
        self._gen += 1

    @property
    def client_api(self) -> str:
        """The name of the API this request speaks: the error shape its rejections use."""
        return client_api_of(self.endpoint, self.route.client_api)

    @property
    def messages(self) -> list[Any]:
        m = self.body.get("messages")
        return m if isinstance(m, list) else []

    @property
    def texts(self) -> list[Text]:
        """Every (role, text) the model will read; raises UnreadableContent.
        Computed once, again only after a processor modified the body."""
        if self._texts is None or self._texts_gen != self._gen:
            self._texts_gen = self._gen
            self._texts = None
            self._texts = request_texts(self.endpoint, self.body)
        return self._texts

    def texts_for(self, roles: Collection[str] | None) -> list[str]:
        """The texts of these roles (None: every role); raises UnreadableContent."""
        return select(self.texts, roles)

    def user_texts(self) -> list[str]:
        """The user's texts for the debug prompt log ([] when unreadable)."""
        try:
            return select(self.texts, _USER)
        except UnreadableContent:
            return []


def unreadable(ctx: RequestContext) -> Reject | None:
    """400 naming the field the route's checks cannot read, else None.

    Only routes with a processor that reads texts pay for the extraction."""
    if not ctx.route.reads_texts:
        return None
    try:
        ctx.texts  # noqa: B018 - computed now, kept for the processors
    except UnreadableContent as e:
        return reject(400, str(e), "invalid_content", ctx.client_api)
    return None
