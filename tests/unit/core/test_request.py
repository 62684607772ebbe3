"""Endpoint detection per client API, and the error shape a request's rejections use."""

from __future__ import annotations

import orjson
import pytest

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.core.errors import reject
from extproc.core.request import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    CHAT,
    EMBEDDINGS,
    OLLAMA_CHAT,
    OTHER,
    RequestContext,
    endpoint_of,
)


@pytest.mark.parametrize(
    ("path", "api", "endpoint"),
    [
        ("/v1/messages", "anthropic", ANTHROPIC_MESSAGES),
        ("/v1/messages?beta=true", "anthropic", ANTHROPIC_MESSAGES),
        ("/gateway/v1/messages/", "anthropic", ANTHROPIC_MESSAGES),
        ("/v1/messages/count_tokens", "anthropic", ANTHROPIC_COUNT_TOKENS),
        ("/v1/models", "anthropic", OTHER),
        ("/v1/chat/completions", "anthropic", OTHER),
        ("/v1/messages", "auto", ANTHROPIC_MESSAGES),
        ("/v1/messages/count_tokens", "auto", ANTHROPIC_COUNT_TOKENS),
        ("/v1/chat/completions", "auto", CHAT),
        ("/v1/embeddings", "auto", EMBEDDINGS),
        ("/v1/messages", "openai", OTHER),
        ("/v1/chat/completions", "openai", CHAT),
        ("/api/chat", "ollama", OLLAMA_CHAT),
        ("/v1/messages", "ollama", OTHER),
    ],
)
def test_endpoint_of(path: str, api: str, endpoint: str) -> None:
    assert endpoint_of(path, api) == endpoint


CONFIG = """
providers: [{name: q, type: qwen, api_tokens: [k]}]
routes:
- {name: a, match: {hosts: [a.test]}, provider: q, client_api: anthropic}
- {name: auto, match: {hosts: [auto.test]}, provider: q, client_api: auto}
- {name: o, match: {hosts: [o.test]}, provider: q}
"""


@pytest.mark.parametrize(
    ("host", "path", "api"),
    [
        ("a.test", "/v1/messages", "anthropic"),
        ("a.test", "/v1/models", "anthropic"),
        ("auto.test", "/v1/messages", "anthropic"),
        ("auto.test", "/v1/chat/completions", "openai"),
        ("o.test", "/v1/chat/completions", "openai"),
    ],
)
def test_client_api_per_request(host: str, path: str, api: str) -> None:
    rt = compile_config(load_text(CONFIG))
    route = rt.routes.match(host, path, {})
    assert route is not None
    endpoint = endpoint_of(path, route.client_api)
    ctx = RequestContext(route, {}, endpoint, {})
    # An Anthropic route's other paths (GET /v1/models) still answer in its shape.
    expected = "anthropic" if route.client_api == "anthropic" else api
    assert ctx.client_api == expected


def test_reject_shapes() -> None:
    a = orjson.loads(reject(403, "Blocked.", "content_denied", "anthropic").body)
    assert a == {
        "type": "error",
        "error": {"type": "permission_error", "message": "Blocked.", "code": "content_denied"},
    }
    o = orjson.loads(reject(403, "Blocked.", "content_denied", "openai").body)
    assert o["error"]["type"] == "permission_error" and "type" not in {k for k in o if k != "error"}
    assert orjson.loads(reject(401, "No.", "x", "ollama").body) == {"error": "No."}
