"""Endpoints, from the client's path (which API call a request body is)."""

from __future__ import annotations

CHAT = "chat"
EMBEDDINGS = "embeddings"
OLLAMA_CHAT = "ollama_chat"
OLLAMA_GENERATE = "ollama_generate"
ANTHROPIC_MESSAGES = "anthropic_messages"
ANTHROPIC_COUNT_TOKENS = "anthropic_count_tokens"
RESPONSES = "responses"  # POST /v1/responses
RESPONSES_STORED = "responses_stored"  # /v1/responses/{id}[...]: stored state
OTHER = "other"

ANTHROPIC_ENDPOINTS = frozenset({ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS})
RESPONSES_ENDPOINTS = frozenset({RESPONSES, RESPONSES_STORED})
# Route `client_api` values that take the Responses API on its paths.
_RESPONSES_APIS = frozenset({"responses", "openai", "auto"})


def endpoint_of(path: str, client_api: str) -> str:
    """The endpoint a request is for. ``auto`` routes take the Anthropic
    Messages API by its path and the OpenAI API otherwise; OpenAI routes
    take the Responses API on its paths."""
    p = path.split("?", 1)[0].rstrip("/")
    if client_api in _RESPONSES_APIS:
        if p.endswith("/v1/responses"):
            return RESPONSES
        if "/v1/responses/" in p:
            return RESPONSES_STORED
        if client_api == "responses":
            return OTHER
    if client_api in ("anthropic", "auto"):
        if p.endswith("/v1/messages"):
            return ANTHROPIC_MESSAGES
        if p.endswith("/v1/messages/count_tokens"):
            return ANTHROPIC_COUNT_TOKENS
        if client_api == "anthropic":
            return OTHER
    if client_api == "ollama":
        if p.endswith("/api/chat"):
            return OLLAMA_CHAT
        if p.endswith("/api/generate"):
            return OLLAMA_GENERATE
        return OTHER
    if p.endswith("/chat/completions") or p == "":
        # "" is the plugin demo's `curl 127.0.0.1:18000/`: a chat body on "/".
        return CHAT
    if p.endswith("/embeddings"):
        return EMBEDDINGS
    return OTHER


def client_api_of(endpoint: str, route_api: str) -> str:
    """The API one request speaks ("openai", "ollama", "anthropic", "responses"):
    an ``auto`` route speaks Anthropic on the Messages paths, Responses on
    its paths and OpenAI elsewhere."""
    if endpoint in ANTHROPIC_ENDPOINTS:
        return "anthropic"
    if endpoint in RESPONSES_ENDPOINTS:
        return "responses"
    return "openai" if route_api == "auto" else route_api
