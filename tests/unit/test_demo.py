"""The demo's config and banner (test/demo.py, test/demo/config.yaml), sans-IO."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
from extproc.consumers.auth import Authenticator
from extproc.core.events import Continue, Reject, RequestBody, RequestHeaders
from extproc.core.exchange import Exchange

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test"))

import demo  # noqa: E402

KEY = "demo-key-SECRET-7f3a"
SEED_401 = {"error": "Invalid or missing API key"}


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    env = {**demo.DEMO_KEYS, "LLM_PROXY_KEY": KEY}
    return compile_config(load_text(demo.render_config(real=False)), env)


async def ollama(rt: Runtime, body: dict[str, object], **headers: str) -> Continue | Reject:
    ex = Exchange(rt, authenticate=Authenticator(rt))
    h = {
        ":authority": f"localhost:{demo.OLLAMA}",
        ":path": "/api/chat",
        ":method": "POST",
        "content-type": "application/json",
        **headers,
    }
    assert isinstance(await ex.handle(RequestHeaders(h, False)), Continue)
    d = await ex.handle(RequestBody(orjson.dumps(body), True))
    assert isinstance(d, Continue | Reject)
    return d


CHAT = {"model": "llama3", "messages": [{"role": "user", "content": "Hello!"}]}


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({**CHAT, "key": KEY}, {}),
        (CHAT, {"authorization": f"Bearer {KEY}"}),
        # Both: the body key is still stripped.
        ({**CHAT, "key": KEY}, {"authorization": f"Bearer {KEY}"}),
    ],
)
async def test_ollama_route_takes_body_key_or_bearer(
    runtime: Runtime, body: dict[str, object], headers: dict[str, str]
) -> None:
    d = await ollama(runtime, body, **headers)
    assert isinstance(d, Continue)
    assert "authorization" in d.remove_headers or "authorization" not in headers
    assert all(KEY not in v for _, v in d.set_headers)
    if d.body is not None:
        assert KEY.encode() not in d.body and orjson.loads(d.body) == CHAT
    else:
        assert "key" not in body


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (CHAT, {}),
        ({**CHAT, "key": "wrong"}, {}),
        (CHAT, {"authorization": "Bearer wrong"}),
        (CHAT, {"authorization": "Bearer "}),
        (CHAT, {"authorization": f"Basic {KEY}"}),
    ],
)
async def test_ollama_route_401_is_the_seeds_exact_body(
    runtime: Runtime, body: dict[str, object], headers: dict[str, str]
) -> None:
    d = await ollama(runtime, body, **headers)
    assert isinstance(d, Reject) and d.status == 401
    assert d.body == b'{"error":"Invalid or missing API key"}'
    assert orjson.loads(d.body) == SEED_401


@pytest.mark.parametrize("real", [False, True])
@pytest.mark.parametrize("own_key", [False, True])
def test_banner_prints_no_key_value(
    monkeypatch: pytest.MonkeyPatch, real: bool, own_key: bool
) -> None:
    monkeypatch.setenv("LLM_PROXY_KEY", KEY)
    text = demo.banner(real, own_key, Path("/tmp/run"))
    assert KEY not in text
    assert '"$LLM_PROXY_KEY"' in text and "Bearer $LLM_PROXY_KEY" in text
    assert ("export LLM_PROXY_KEY=" in text) is not own_key
