from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.streaming.sse import SSEDecoder
from extproc.translators.base import ProviderTarget, StreamTranslator

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers"


def _load(provider: str, name: str) -> Any:
    raw = (FIXTURES / provider / name).read_bytes()
    return orjson.loads(raw) if name.endswith(".json") else raw


def _target(d: dict[str, Any], **over: Any) -> ProviderTarget:
    fields = {**d, **over}
    return ProviderTarget(
        type=fields["type"],
        host=fields["host"],
        base_path=fields["base_path"],
        api_key=fields["api_key"],
        model=fields["model"],
        stream=fields["stream"],
        settings=fields.get("settings", {}),
    )


def _feed_split(st: StreamTranslator, data: bytes, seed: int | None) -> bytes:
    """Feed ``data`` in random pieces (or whole when seed is None), then finish."""
    out = bytearray()
    if seed is None:
        out += st.feed(data)
    else:
        rng = random.Random(seed)
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 40)
            out += st.feed(data[pos : pos + step])
            pos += step
    out += st.finish()
    return bytes(out)


def _events(body: bytes) -> list[Any]:
    """Client SSE bytes -> list of parsed data payloads; volatile fields dropped."""
    dec = SSEDecoder()
    out: list[Any] = []
    for ev in dec.feed(body):
        if ev.data == "[DONE]":
            out.append("[DONE]")
            continue
        obj = orjson.loads(ev.data)
        obj.pop("created", None)
        obj.pop("id", None)
        out.append(obj)
    return out


@pytest.fixture
def load() -> Callable[[str, str], Any]:
    return _load


@pytest.fixture
def make_target() -> Callable[..., ProviderTarget]:
    return _target


@pytest.fixture
def feed_split() -> Callable[[StreamTranslator, bytes, int | None], bytes]:
    return _feed_split


@pytest.fixture
def events() -> Callable[[bytes], list[Any]]:
    return _events
