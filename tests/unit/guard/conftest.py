from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The tests run with --import-mode=importlib: make the sibling helper module importable.
sys.path.insert(0, str(Path(__file__).parent))

from fake_llm import FakeLLM


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    server = await FakeLLM().start()
    try:
        yield server
    finally:
        await server.stop()
