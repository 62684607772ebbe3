"""The exchange with an Azure OpenAI provider: deployment path, api-version, api-key."""

from __future__ import annotations

import pytest

from extproc.config.runtime import Runtime
from extproc.core.exchange import Exchange
from support import (
    CHAT,
    PROVIDERS,
    hdrs,
    runtime,
    send,
)


@pytest.fixture
def rt() -> Runtime:
    # Per test: token pools remember 401/429 answers.
    return runtime(PROVIDERS)


async def test_azure_request(rt: Runtime) -> None:
    ex = Exchange(rt)
    d = await send(ex, "azure.test", CHAT)
    h = hdrs(d)
    assert h[":authority"] == "myres.openai.azure.com"
    assert h[":path"] == "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01"
    assert h["api-key"] == "az-key"
    assert "authorization" not in h
    assert "authorization" in d.remove_headers  # the gateway key must not reach Azure
    assert d.clear_route_cache
