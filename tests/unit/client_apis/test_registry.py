"""The client-API specs: paths -> endpoints, error shapes, key messages, operations."""

from __future__ import annotations

import orjson
import pytest

from extproc.client_apis.registry import (
    ANTHROPIC,
    APIS,
    OLLAMA,
    OPENAI,
    RESPONSES,
    ROUTE_APIS,
    api_of,
    operation_of,
    resolve,
)
from extproc.translators.registry import CLIENT_KEY_HEADERS, PROVIDER_ONLY_HEADERS


@pytest.mark.parametrize(
    ("path", "route_api", "endpoint", "api"),
    [
        ("/v1/chat/completions", "openai", "chat", OPENAI),
        ("/v1/chat/completions/?x=1", "openai", "chat", OPENAI),
        ("/", "openai", "chat", OPENAI),
        ("/v1/embeddings", "openai", "embeddings", OPENAI),
        ("/v1/models", "openai", "other", OPENAI),
        ("/v1/messages", "openai", "other", OPENAI),
        ("/v1/messages", "anthropic", "anthropic_messages", ANTHROPIC),
        ("/v1/messages/count_tokens", "auto", "anthropic_count_tokens", ANTHROPIC),
        ("/v1/chat/completions", "auto", "chat", OPENAI),
        ("/v1/models", "auto", "other", OPENAI),
        ("/v1/models", "anthropic", "other", ANTHROPIC),
        ("/api/chat", "ollama", "ollama_chat", OLLAMA),
        ("/api/generate", "ollama", "ollama_generate", OLLAMA),
        ("/api/tags", "ollama", "other", OLLAMA),
        ("/v1/chat/completions", "ollama", "other", OLLAMA),
        ("/v1/responses", "responses", "responses", RESPONSES),
        ("/v1/responses", "openai", "responses", RESPONSES),
        ("/v1/responses?x=1", "auto", "responses", RESPONSES),
        ("/v1/responses/resp_1", "openai", "responses_stored", RESPONSES),
        ("/v1/responses/resp_1/input_items", "responses", "responses_stored", RESPONSES),
        ("/v1/chat/completions", "responses", "other", RESPONSES),
        ("/v1/responses", "anthropic", "other", ANTHROPIC),
        ("/v1/responses", "ollama", "other", OLLAMA),
    ],
)
def test_paths_resolve_to_endpoint_and_api(
    path: str, route_api: str, endpoint: str, api: object
) -> None:
    assert resolve(path, route_api) == (endpoint, api)
    assert api_of(endpoint, route_api) is api


def test_every_api_is_a_route_value_and_auto_tries_anthropic_first() -> None:
    # Each API's own route value ends with it (a path it does not model is its OTHER).
    assert all(ROUTE_APIS[a.name][-1] is a for a in APIS)
    assert ROUTE_APIS["openai"] == (RESPONSES, OPENAI)  # the Responses API by its paths
    assert ROUTE_APIS["auto"] == (ANTHROPIC, RESPONSES, OPENAI)


def test_error_bodies_in_each_apis_shape() -> None:
    assert orjson.loads(OPENAI.error_body(429, "Slow.", "x", None)) == {
        "error": {"message": "Slow.", "type": "rate_limit_error", "param": None, "code": "x"}
    }
    assert orjson.loads(ANTHROPIC.error_body(429, "Slow.", "x", None)) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Slow.", "code": "x"},
    }
    assert orjson.loads(OLLAMA.error_body(429, "Slow.", "x", None)) == {"error": "Slow."}


def test_missing_key_messages() -> None:
    assert "'Authorization: Bearer <key>'" in OPENAI.unauthorized(missing=True)
    assert "'x-api-key: <key>'" in ANTHROPIC.unauthorized(missing=True)
    assert ANTHROPIC.unauthorized(missing=False) == "The API key is not valid."
    # The Python Ollama key proxy's one message, for both.
    assert OLLAMA.unauthorized(True) == OLLAMA.unauthorized(False) == "Invalid or missing API key"


def test_operation_names() -> None:
    assert operation_of("anthropic_messages") == "chat"
    assert operation_of("ollama_generate") == "text_completion"
    assert operation_of("responses") == "responses"
    assert operation_of("other") == ""


def test_header_sets_derived_from_the_provider_specs() -> None:
    assert set(CLIENT_KEY_HEADERS) == {"authorization", "x-api-key", "api-key", "x-goog-api-key"}
    assert PROVIDER_ONLY_HEADERS == ("anthropic-version",)
