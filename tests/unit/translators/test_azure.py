from __future__ import annotations

import orjson

from extproc.translators.base import ProviderTarget
from extproc.translators.registry import spec_of
from extproc.usage import Usage


def _t(**kw: object) -> ProviderTarget:
    base = {
        "type": "azure",
        "host": "res.openai.azure.com",
        "base_path": "",
        "api_key": "azkey",
        "model": "gpt-4o",
        "stream": True,
    }
    base.update(kw)
    return ProviderTarget(**base)  # type: ignore[arg-type]


def test_chat_path_headers_and_body() -> None:
    req = spec_of("azure").translator.chat_request({"messages": [], "model": "x"}, _t())
    assert req.path == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    assert ("api-key", "azkey") in req.headers
    assert not any(k == "authorization" for k, _ in req.headers)
    assert req.remove_headers == ("authorization",)
    body = orjson.loads(req.body)
    assert body["stream_options"] == {"include_usage": True}


def test_deployment_and_version_from_settings() -> None:
    t = _t(settings={"deployment": "prod-4o", "api_version": "2025-01-01-preview"})
    req = spec_of("azure").translator.embeddings_request({"input": "x"}, t)
    assert req.path == "/openai/deployments/prod-4o/embeddings?api-version=2025-01-01-preview"


def test_azure_error_mapped_keeps_message() -> None:
    body = b'{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded call rate limit."}}'
    out = spec_of("azure").translator.error_response(429, body)
    assert out == body  # already OpenAI shaped; passed through with every detail
    res = spec_of("azure").translator.chat_response(
        200,
        b'{"model":"gpt-4o-2024-11-20","usage":{"prompt_tokens":2,"completion_tokens":3}}',
        _t(),
    )
    assert res.usage == Usage(2, 3, 5)
    assert res.model == "gpt-4o-2024-11-20"
