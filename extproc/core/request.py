"""The parsed client request that processors read and change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from extproc.core.events import Headers

if TYPE_CHECKING:
    from extproc.config.runtime import RouteRuntime

# Endpoints, from the client's path.
CHAT = "chat"
EMBEDDINGS = "embeddings"
OLLAMA_CHAT = "ollama_chat"
OLLAMA_GENERATE = "ollama_generate"
ANTHROPIC_MESSAGES = "anthropic_messages"
ANTHROPIC_COUNT_TOKENS = "anthropic_count_tokens"
OTHER = "other"

ANTHROPIC_ENDPOINTS = frozenset({ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS})


def endpoint_of(path: str, client_api: str) -> str:
    """The endpoint a request is for. ``auto`` routes take the Anthropic
    Messages API by its path and the OpenAI API otherwise."""
    p = path.split("?", 1)[0].rstrip("/")
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
    """The API one request speaks ("openai", "ollama", "anthropic"): an ``auto``
    route speaks Anthropic on the Messages paths and OpenAI elsewhere."""
    if endpoint in ANTHROPIC_ENDPOINTS:
        return "anthropic"
    return "openai" if route_api == "auto" else route_api


def text_of(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


def _anthropic_texts(body: dict[str, Any], messages: list[Any]) -> list[str]:
    """The Messages API's client-authored texts: the system prompt, user text
    blocks and tool results (which travel in user turns)."""
    out = [text_of(body.get("system"))]
    for m in messages:
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        content = m.get("content")
        out.append(text_of(content))
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_result":
                out.append(text_of(block.get("content")))
    return [t for t in out if t]


@dataclass(slots=True)
class RequestContext:
    route: RouteRuntime
    headers: Headers
    endpoint: str
    body: dict[str, Any]
    modified: bool = False  # a processor changed the body
    consumer: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)  # processor results for logs

    @property
    def client_api(self) -> str:
        """The API this request speaks: the error shape its rejections use."""
        return client_api_of(self.endpoint, self.route.client_api)

    @property
    def messages(self) -> list[Any]:
        m = self.body.get("messages")
        return m if isinstance(m, list) else []

    def user_texts(self) -> list[str]:
        """Every user-authored text: user messages (and the Messages API's system
        prompt and tool results), or Ollama's `prompt`."""
        if self.endpoint == OLLAMA_GENERATE:
            p = self.body.get("prompt")
            return [p] if isinstance(p, str) else []
        if self.endpoint in ANTHROPIC_ENDPOINTS:
            return _anthropic_texts(self.body, self.messages)
        return [
            text_of(m.get("content"))
            for m in self.messages
            if isinstance(m, dict) and m.get("role") == "user"
        ]
