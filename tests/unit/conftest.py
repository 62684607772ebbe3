from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_llm import FakeLLM


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    """A scripted chat-completions server on 127.0.0.1 (the guard or rewrite model)."""
    server = await FakeLLM().start()
    try:
        yield server
    finally:
        await server.stop()
