"""Endpoint names: which API call a request body is (each client API's spec maps
its paths to them, `client_apis/registry.py`)."""

from __future__ import annotations

CHAT = "chat"
EMBEDDINGS = "embeddings"
OLLAMA_CHAT = "ollama_chat"
OLLAMA_GENERATE = "ollama_generate"
ANTHROPIC_MESSAGES = "anthropic_messages"
ANTHROPIC_COUNT_TOKENS = "anthropic_count_tokens"
RESPONSES = "responses"  # POST /v1/responses
RESPONSES_STORED = "responses_stored"  # /v1/responses/{id}[...]: stored responses
OTHER = "other"  # a call the gateway does not model (GET /v1/models, ...)

ANTHROPIC_ENDPOINTS = frozenset({ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS})
RESPONSES_ENDPOINTS = frozenset({RESPONSES, RESPONSES_STORED})
