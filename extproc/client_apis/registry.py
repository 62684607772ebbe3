"""The client APIs the gateway serves, and a route's `client_api` value -> its APIs.

The one module outside `translators/` that names client APIs. Adding a client
API: its `ClientApi` here (endpoints, error body, key hint, how its answers
are read; listed in `APIS`), and its legs in `core/` with one entry in
`core/pick.py`'s `LEGS`. Endpoint names live in `content/endpoints.py`.
"""

from __future__ import annotations

from typing import Any

from extproc.api_errors import (
    anthropic_error_body,
    error_type_for_status,
    ollama_error_body,
    openai_error_body,
)
from extproc.client_apis.base import ClientApi, Endpoint
from extproc.content.endpoints import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_ENDPOINTS,
    ANTHROPIC_MESSAGES,
    CHAT,
    EMBEDDINGS,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    OTHER,
    RESPONSES_STORED,
)
from extproc.content.endpoints import RESPONSES as RESPONSES_CALL
from extproc.translators.anthropic import native as anthropic_native
from extproc.translators.base import StreamTranslator, TranslatedResponse
from extproc.translators.common import loads_object, usage_from_openai
from extproc.translators.ollama_native import NativeStreamTap as OllamaStreamTap
from extproc.translators.ollama_native import native_response as ollama_response
from extproc.translators.openai_compat import OpenAIStreamTap
from extproc.translators.responses import native as responses_native

__all__ = [
    "ANTHROPIC",
    "ANTHROPIC_COUNT_TOKENS",
    "ANTHROPIC_ENDPOINTS",
    "ANTHROPIC_MESSAGES",
    "APIS",
    "CHAT",
    "DEFAULT",
    "EMBEDDINGS",
    "ENDPOINTS",
    "OLLAMA",
    "OLLAMA_CHAT",
    "OLLAMA_GENERATE",
    "OPENAI",
    "OTHER",
    "RESPONSES",
    "ROUTE_APIS",
    "ClientApi",
    "Endpoint",
    "api_named",
    "api_of_path",
]


_MAX_REASONS = 8  # finish reasons read of one answer (an OpenAI answer's choices)


def _reason(obj: dict[str, Any], key: str) -> list[str]:
    r = obj.get(key)
    return [r] if isinstance(r, str) else []


# -- OpenAI ------------------------------------------------------------------


def _openai_error(status: int, message: str, code: str, type_: str | None) -> bytes:
    return openai_error_body(message, type_ or error_type_for_status(status), code)


def _openai_read(status: int, raw: bytes, endpoint: str) -> TranslatedResponse:
    obj = loads_object(raw)
    if obj is None:
        return TranslatedResponse(raw, None, None)
    model = obj.get("model")
    return TranslatedResponse(
        raw, usage_from_openai(obj.get("usage")), model if isinstance(model, str) else None
    )


def _openai_tap(max_line: int, include_usage: bool) -> StreamTranslator:
    # Each fallback attempt asks for the usage chunk; a client that did not does not get it.
    return OpenAIStreamTap(drop_usage_chunk=not include_usage, max_line_bytes=max_line)


def _openai_reasons(obj: dict[str, Any]) -> list[str]:
    choices = obj.get("choices")
    out = []
    for c in choices[:_MAX_REASONS] if isinstance(choices, list) else ():
        r = c.get("finish_reason") if isinstance(c, dict) else None
        if isinstance(r, str):
            out.append(r)
    return out


OPENAI = ClientApi(
    name="openai",
    title="OpenAI",
    endpoints=(
        # "" is the plugin demo's `curl 127.0.0.1:18000/`: a chat body on "/".
        Endpoint(name=CHAT, paths=("/chat/completions", ""), operation="chat", messages=True),
        Endpoint(name=EMBEDDINGS, paths=("/embeddings",), operation="embeddings", streams=False),
    ),
    error_body=_openai_error,
    key_hint="'Authorization: Bearer <key>'",
    read=_openai_read,
    tap=_openai_tap,
    finish_reasons=_openai_reasons,
)

# -- Anthropic Messages --------------------------------------------------------


def _anthropic_error(status: int, message: str, code: str, type_: str | None) -> bytes:
    return anthropic_error_body(status, message, code)


def _anthropic_read(status: int, raw: bytes, endpoint: str) -> TranslatedResponse:
    if endpoint == ANTHROPIC_COUNT_TOKENS:
        return TranslatedResponse(raw, None, None)  # a count, not tokens spent
    return anthropic_native.native_response(status, raw)


def _anthropic_tap(max_line: int, include_usage: bool) -> StreamTranslator:
    return anthropic_native.NativeStreamTap(max_line)


ANTHROPIC = ClientApi(
    name="anthropic",
    title="Anthropic",
    endpoints=(
        Endpoint(name=ANTHROPIC_MESSAGES, paths=("/v1/messages",), operation="chat", messages=True),
        Endpoint(
            name=ANTHROPIC_COUNT_TOKENS,
            paths=("/v1/messages/count_tokens",),
            messages=True,
            streams=False,
            stream_policy=False,  # counting tokens streams nothing
        ),
    ),
    error_body=_anthropic_error,
    key_hint="'x-api-key: <key>'",
    # Claude takes the Messages API as it is; to anyone else it is translated,
    # `protocol: original` or not.
    honours_original=False,
    read=_anthropic_read,
    tap=_anthropic_tap,
    finish_reasons=lambda obj: _reason(obj, "stop_reason"),
    owns_path=lambda path: "/v1/messages" in path,
)

# -- Ollama native -------------------------------------------------------------


def _ollama_error(status: int, message: str, code: str, type_: str | None) -> bytes:
    return ollama_error_body(message)


def _ollama_read(status: int, raw: bytes, endpoint: str) -> TranslatedResponse:
    return ollama_response(status, raw)


def _ollama_tap(max_line: int, include_usage: bool) -> StreamTranslator:
    return OllamaStreamTap(max_line)


# Ollama's generation limit is an option.
_OLLAMA_MAX_TOKENS: dict[str, Any] = {
    "max_tokens_in": ("options",),
    "max_tokens_keys": ("num_predict",),
}

OLLAMA = ClientApi(
    name="ollama",
    title="Ollama",
    endpoints=(
        # Ollama streams unless told not to.
        Endpoint(
            name=OLLAMA_CHAT,
            paths=("/api/chat",),
            operation="chat",
            messages=True,
            stream_default=True,
            **_OLLAMA_MAX_TOKENS,
        ),
        Endpoint(
            name=OLLAMA_GENERATE,
            paths=("/api/generate",),
            operation="text_completion",
            stream_default=True,
            **_OLLAMA_MAX_TOKENS,
        ),
    ),
    error_body=_ollama_error,
    key_hint="'Authorization: Bearer <key>'",
    # What the Python Ollama key proxy answered, for a missing and a bad key alike.
    auth_message="Invalid or missing API key",
    translated=False,  # only to providers that serve it
    read=_ollama_read,
    tap=_ollama_tap,
    finish_reasons=lambda obj: _reason(obj, "done_reason"),
    owns_path=lambda path: path.startswith("/api/"),
)

# -- OpenAI Responses ----------------------------------------------------------


def _responses_read(status: int, raw: bytes, endpoint: str) -> TranslatedResponse:
    return responses_native.native_response(status, raw)


def _responses_tap(max_line: int, include_usage: bool) -> StreamTranslator:
    return responses_native.NativeStreamTap(max_line)


def _responses_reasons(obj: dict[str, Any]) -> list[str]:
    details = obj.get("incomplete_details")
    if isinstance(details, dict) and isinstance(details.get("reason"), str):
        return [details["reason"]]
    return _reason(obj, "status")


RESPONSES = ClientApi(
    name="responses",
    title="Responses",
    endpoints=(
        Endpoint(
            name=RESPONSES_CALL,
            paths=("/v1/responses",),
            operation="responses",
            max_tokens_keys=("max_output_tokens",),
        ),
        # GET /v1/responses/{id}, its input_items, cancel, DELETE: the provider's state.
        Endpoint(
            name=RESPONSES_STORED,
            paths=(),
            within=("/v1/responses/",),
            has_body=False,
            streams=False,
            stream_policy=False,
            native_only=True,
        ),
    ),
    error_body=_openai_error,  # OpenAI's shape is the Responses API's
    key_hint="'Authorization: Bearer <key>'",
    read=_responses_read,
    tap=_responses_tap,
    finish_reasons=_responses_reasons,
)

APIS: tuple[ClientApi, ...] = (OPENAI, OLLAMA, ANTHROPIC, RESPONSES)
DEFAULT = OPENAI  # the shape of an error before the request's API is known

# A route's `client_api` -> the APIs its requests may speak, tried in order on
# the path; a path none of them models is the last one's (OTHER endpoint).
ROUTE_APIS: dict[str, tuple[ClientApi, ...]] = {
    **{a.name: (a,) for a in APIS},
    # OpenAI routes take the Responses API by its paths too.
    OPENAI.name: (RESPONSES, OPENAI),
    # The Messages and Responses APIs by their paths, OpenAI elsewhere.
    "auto": (ANTHROPIC, RESPONSES, OPENAI),
}

ENDPOINTS: dict[str, Endpoint] = {e.name: e for a in APIS for e in a.endpoints}
_API_OF: dict[str, ClientApi] = {e.name: a for a in APIS for e in a.endpoints}
_BY_NAME: dict[str, ClientApi] = {a.name: a for a in APIS}
_NO_ENDPOINT = Endpoint(name=OTHER, paths=(), streams=False, stream_policy=False)


def api_of_path(path: str) -> ClientApi:
    """The API a request for `path` most likely speaks, for an error answered
    before any route is known."""
    for api in (ANTHROPIC, OLLAMA):
        if api.owns_path is not None and api.owns_path(path):
            return api
    return DEFAULT


def api_named(name: str) -> ClientApi:
    """The API of this name (KeyError for one the gateway does not serve)."""
    return _BY_NAME[name]


def endpoint_named(name: str) -> Endpoint:
    return ENDPOINTS.get(name, _NO_ENDPOINT)


def resolve(path: str, route_api: str) -> tuple[str, ClientApi]:
    """(endpoint, client API) of a request on a route with this `client_api`."""
    p = path.split("?", 1)[0].rstrip("/")
    apis = ROUTE_APIS[route_api]
    for api in apis:
        e = api.match(p)
        if e is not None:
            return e.name, api
    return OTHER, apis[-1]


def api_of(endpoint: str, route_api: str) -> ClientApi:
    """The API a request for `endpoint` speaks on a route with this `client_api`."""
    api = _API_OF.get(endpoint)
    if api is not None and api in ROUTE_APIS[route_api]:
        return api
    return ROUTE_APIS[route_api][-1]


def operation_of(endpoint: str) -> str:
    """The GenAI operation name of an endpoint ("" for none)."""
    return endpoint_named(endpoint).operation
