"""Endpoints, from the client's path (which API call a request body is).

The names and paths are each client API's (`client_apis/registry.py`); this
module keeps the names where the core and the processors import them.
"""

from __future__ import annotations

from extproc.client_apis.registry import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_ENDPOINTS,
    ANTHROPIC_MESSAGES,
    CHAT,
    EMBEDDINGS,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    OTHER,
    api_of,
    resolve,
)
from extproc.content.endpoints import RESPONSES, RESPONSES_ENDPOINTS, RESPONSES_STORED

__all__ = [
    "ANTHROPIC_COUNT_TOKENS",
    "ANTHROPIC_ENDPOINTS",
    "ANTHROPIC_MESSAGES",
    "CHAT",
    "EMBEDDINGS",
    "OLLAMA_CHAT",
    "OLLAMA_GENERATE",
    "OTHER",
    "RESPONSES",
    "RESPONSES_ENDPOINTS",
    "RESPONSES_STORED",
    "client_api_of",
    "endpoint_of",
]


def endpoint_of(path: str, client_api: str) -> str:
    """The endpoint a request is for. ``auto`` routes take the Anthropic
    Messages API by its path and the OpenAI API otherwise."""
    return resolve(path, client_api)[0]


def client_api_of(endpoint: str, route_api: str) -> str:
    """The name of the API one request speaks (its errors' shape)."""
    return api_of(endpoint, route_api).name
