"""The chat client of llm_guard and llm_rewrite: a provider token per call, with
rotation and cool-down, and nothing pinned or opened at compile time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fake_llm import FakeLLM, FakeReply, FakeRequest, chat_reply

from extproc.chat.client import ChatCallError, ChatClient, Reply
from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
from extproc.core.events import Reject
from extproc.core.request import CHAT, RequestContext
from extproc.processors.base import Processor
from extproc.processors.upstream import Upstream

TOKEN_A = "sk-pool-AAAA"
TOKEN_B = "sk-pool-BBBB"


def config(port: int, processor: str) -> str:
    return f"""
providers:
- name: p
  type: generic
  base_url: http://127.0.0.1:{port}/v1
  api_tokens: [{TOKEN_A}, {TOKEN_B}]
  token_cooldown: 300s
routes:
- name: r
  match: {{hosts: [a.test]}}
  provider: p
  processors: [{processor}]
"""


GUARD = "{llm_guard: {provider: p, cache_ttl: 0s}}"
REWRITE = "{llm_rewrite: {provider: p, model: rewriter}}"


@pytest.fixture
async def compiled(request: pytest.FixtureRequest, fake_llm: FakeLLM) -> AsyncIterator[Runtime]:
    rt = compile_config(load_text(config(fake_llm.port, request.param)), {})
    for p in rt.processors:
        await p.start()
    try:
        yield rt
    finally:
        for p in rt.processors:
            await p.aclose()


def processor(rt: Runtime) -> Processor:
    (p,) = rt.routes.routes[0].processors
    return p


def ask(rt: Runtime, text: str) -> RequestContext:
    body = {"messages": [{"role": "user", "content": text}]}
    return RequestContext(rt.routes.routes[0], {}, CHAT, body)


def keys(fake: FakeLLM) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in fake.requests]


@pytest.mark.parametrize("compiled", [GUARD, REWRITE], indirect=True, ids=["guard", "rewrite"])
async def test_a_token_per_call_round_robin(compiled: Runtime, fake_llm: FakeLLM) -> None:
    fake_llm.handler = lambda _req: chat_reply('{"result": "allow"}')
    p = processor(compiled)
    for i in range(4):
        assert await p.process(ask(compiled, f"question {i}")) is None
    # Compiling took no token: the first call gets the pool's first one.
    assert keys(fake_llm) == [TOKEN_A, TOKEN_B, TOKEN_A, TOKEN_B]
    assert {r.path for r in fake_llm.requests} == {"/v1/chat/completions"}


@pytest.mark.parametrize("compiled", [GUARD, REWRITE], indirect=True, ids=["guard", "rewrite"])
async def test_a_429_puts_the_token_on_cool_down(compiled: Runtime, fake_llm: FakeLLM) -> None:
    def handler(req: FakeRequest) -> FakeReply:
        if req.headers["authorization"] == f"Bearer {TOKEN_A}":
            return FakeReply(429, b'{"error": "slow down"}')
        return chat_reply('{"result": "allow"}')

    fake_llm.handler = handler
    p = processor(compiled)
    first = await p.process(ask(compiled, "first"))
    assert isinstance(first, Reject)  # on_error deny: the failed call stops the request
    for i in range(3):
        assert await p.process(ask(compiled, f"again {i}")) is None
    assert keys(fake_llm) == [TOKEN_A, TOKEN_B, TOKEN_B, TOKEN_B]
    pool = compiled.providers["p"].tokens
    assert pool is not None and pool.available() == 1


@pytest.mark.parametrize("compiled", [GUARD, REWRITE], indirect=True, ids=["guard", "rewrite"])
async def test_every_token_cooling_down_fails_the_call(
    compiled: Runtime, fake_llm: FakeLLM
) -> None:
    fake_llm.handler = lambda _req: FakeReply(401, b"{}")
    p = processor(compiled)
    for i in range(3):
        rej = await p.process(ask(compiled, f"q {i}"))
        assert isinstance(rej, Reject)
        assert TOKEN_A not in rej.body.decode() and TOKEN_B not in rej.body.decode()
    assert len(fake_llm.requests) == 2  # the third call had no token to send


async def test_retry_after_sets_the_cool_down() -> None:
    from extproc.providers.token_pool import TokenPool

    now = [0.0]
    pool = TokenPool([TOKEN_A], cooldown_s=300, clock=lambda: now[0])
    transport = httpx.MockTransport(
        lambda _r: httpx.Response(429, headers={"retry-after": "7"}, json={})
    )
    client = ChatClient(Upstream("http://x.test", "/c", 5, tokens=pool), "m", transport=transport)
    await client.start()
    try:
        reply = await client.post(b"{}")
    finally:
        await client.aclose()
    assert reply.status == 429 and pool.available() == 0
    now[0] = 7.0
    assert pool.available() == 1


@pytest.mark.parametrize(
    ("body", "cools"),
    [
        (
            {
                "error": {
                    "message": "flagged by the safety system",
                    "type": "content_policy_violation",
                }
            },
            False,
        ),
        ({"type": "error", "error": {"type": "permission_error", "message": "no access"}}, True),
    ],
)
async def test_a_403_cools_the_token_only_when_it_is_about_the_key(
    body: dict[str, object], cools: bool
) -> None:
    from extproc.providers.token_pool import TokenPool

    pool = TokenPool([TOKEN_A], cooldown_s=300)
    transport = httpx.MockTransport(lambda _r: httpx.Response(403, json=body))
    client = ChatClient(Upstream("http://x.test", "/c", 5, tokens=pool), "m", transport=transport)
    await client.start()
    try:
        reply = await client.post(b"{}")
    finally:
        await client.aclose()
    assert reply.status == 403
    assert pool.available() == (0 if cools else 1)


async def test_own_key_and_redaction() -> None:
    seen: list[str] = []

    def handler(r: httpx.Request) -> httpx.Response:
        seen.append(r.headers["authorization"])
        content = f"the key is {r.headers['authorization'].removeprefix('Bearer ')}"
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    up = Upstream("http://x.test", "/c", 5, api_key="sk-OWN-KEY")
    client = ChatClient(up, "m", transport=httpx.MockTransport(handler))
    assert "sk-OWN-KEY" not in repr(client) and "sk-OWN-KEY" not in repr(up)
    await client.start()
    try:
        assert await client.complete([{"role": "user", "content": "x"}]) == (
            "the key is [redacted]"
        )
    finally:
        await client.aclose()
    assert seen == ["Bearer sk-OWN-KEY"]
    assert "sk-OWN-KEY" not in repr(Reply(200, b"", "sk-OWN-KEY"))


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (httpx.Response(500, json={}), "upstream answered HTTP 500"),
        (httpx.Response(200, content=b"not json"), "not an OpenAI chat completion"),
        (httpx.Response(200, json={"choices": [{"message": {"content": " "}}]}), "no text"),
        (httpx.Response(200, content=b" " * (2 << 20)), "larger than"),
    ],
)
async def test_complete_failures(reply: httpx.Response, message: str) -> None:
    client = ChatClient(
        Upstream("http://x.test", "/c", 5), "m", transport=httpx.MockTransport(lambda _r: reply)
    )
    await client.start()
    try:
        with pytest.raises(ChatCallError, match=message):
            await client.complete([{"role": "user", "content": "x"}])
        with pytest.raises(ChatCallError, match="JSON"):
            await client.complete([{"role": "user", "content": "bad \ud800"}])
    finally:
        await client.aclose()


async def test_calls_before_start_and_after_aclose_fail() -> None:
    client = ChatClient(Upstream("http://x.test", "/c", 5), "m")
    with pytest.raises(ChatCallError, match="not started"):
        await client.post(b"{}")
    await client.start()
    await client.aclose()
    await client.start()  # a closed client stays closed
    with pytest.raises(ChatCallError, match="closed"):
        await client.post(b"{}")
