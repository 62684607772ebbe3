"""What the gateway knows about one client API: a spec, read instead of testing names.

A client API is the API a client speaks to the gateway (OpenAI chat, Anthropic
Messages, Ollama native, ...): its paths (endpoints), its error body, what a
client is told about a missing key, the metrics operation of each endpoint,
and how an answer already in this API is read for usage (a fallback route's
router-level exchange reads what the attempts translated back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from extproc.content.endpoints import OTHER
from extproc.translators.base import StreamTranslator, TranslatedResponse

__all__ = ["OTHER", "ClientApi", "Endpoint"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One call of a client API, found by the end of the request's path."""

    name: str  # the record's and the logs' `endpoint`
    paths: tuple[str, ...]  # path endings, query and trailing "/" removed ("": the root)
    operation: str = ""  # GenAI operation name in metrics ("": other)
    messages: bool = False  # its body must carry `messages`, an array of objects
    # Where its body says how many tokens to generate: the object holding the
    # field ((): the body itself) and the field's names, the first the canonical one.
    max_tokens_in: tuple[str, ...] = ()
    max_tokens_keys: tuple[str, ...] = ("max_tokens", "max_completion_tokens")
    streams: bool = True  # its body has a "stream" field
    # The route's stream policy and the provider's default stream apply (False:
    # it never streams, whatever they say).
    stream_policy: bool = True
    stream_default: bool | None = None  # the API's own default; None: the provider's
    # Path parts it lies under, beyond its endings (`/v1/responses/` for `/v1/responses/{id}`).
    within: tuple[str, ...] = ()
    # Stored state only a provider serving the API itself has: elsewhere a 404.
    native_only: bool = False
    has_body: bool = True  # its requests carry a JSON body (False: GET, DELETE, ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientApi:
    name: str  # the route's `client_api` value
    title: str  # its name in messages
    endpoints: tuple[Endpoint, ...]
    # (status, message, code, OpenAI-style error type or None) -> the error body.
    error_body: Callable[[int, str, str, str | None], bytes]
    key_hint: str  # how a client of this API sends its key (missing-key message)
    auth_message: str = ""  # set: the one message for a missing and a bad key
    # `protocol: original` providers get this API's body untouched.
    honours_original: bool = True
    # Providers that do not serve it are reached through their translators.
    translated: bool = True
    # (status, body, endpoint) -> an answer in this API, read for usage and model.
    read: Callable[[int, bytes, str], TranslatedResponse]
    # (max_line_bytes, client asked for usage) -> a stream in this API, read for usage.
    tap: Callable[[int, bool], StreamTranslator]
    # A whole answer in this API (a JSON object) -> its finish reasons (traces).
    finish_reasons: Callable[[dict[str, Any]], list[str]]
    # Whether a path looks like this API's, for an error answered before any
    # route is known (None: only as the default).
    owns_path: Callable[[str], bool] | None = None
    _by_path: dict[str, Endpoint] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_path", {p: e for e in self.endpoints for p in e.paths})

    def match(self, path: str) -> Endpoint | None:
        """The endpoint a path (no query, no trailing "/") ends with, or None."""
        if path == "":
            return self._by_path.get("")
        for p, e in self._by_path.items():
            if p and path.endswith(p):
                return e
        for e in self.endpoints:
            if any(w in path for w in e.within):
                return e
        return None

    def unauthorized(self, missing: bool) -> str:
        """The 401 message for a missing (or a bad) key."""
        if self.auth_message:
            return self.auth_message
        if missing:
            return f"No API key was provided; send {self.key_hint}."
        return "The API key is not valid."
