from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fake_llm import FakeLLM, FakeReply, FakeRequest, chat_reply

from extproc.chat.client import ChatClient
from extproc.guard.cache import VerdictCache
from extproc.guard.client import GuardClient
from extproc.guard.prompt import DEFAULT_SYSTEM_PROMPT
from extproc.guard.verdict import Verdict
from extproc.processors.upstream import DEFAULT_CHAT_PATH, Upstream, base_url

GUARD_KEY = "sk-guard-TOPSECRET-0123456789"
TEXT = "please summarise: the Q3 numbers are confidential-text-42"


def make_client(
    server: FakeLLM | int,
    *,
    model: str = "qwen-turbo",
    path: str = DEFAULT_CHAT_PATH,
    timeout_s: float = 2.0,
    **kwargs: object,
) -> GuardClient:
    """A guard on 127.0.0.1 (the fake, or a bare port) with its own key."""
    port = server if isinstance(server, int) else server.port
    up = Upstream(base_url("127.0.0.1", port, None), path, timeout_s, api_key=GUARD_KEY)
    return GuardClient(ChatClient(up, model), **kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def started(server: FakeLLM, **kwargs: Any) -> AsyncIterator[GuardClient]:
    client = make_client(server, **kwargs)
    await client.start()
    try:
        yield client
    finally:
        await client.aclose()


def assert_no_leak(caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    """The guard key appears in no log record, reason or exception text; logs hold no
    judged text either."""
    for text in texts:
        assert GUARD_KEY not in text
    for record in caplog.records:
        rendered = record.getMessage()
        assert GUARD_KEY not in rendered
        assert TEXT not in rendered
        assert record.exc_info is None or GUARD_KEY not in repr(record.exc_info[1])
        assert record.exc_text is None or GUARD_KEY not in record.exc_text


SCRIPTS: list[tuple[str, FakeReply, str, str]] = [
    (
        "allow",
        chat_reply('{"result": "allow", "reason": "no confidential data"}'),
        "allow",
        "no confidential data",
    ),
    (
        "deny",
        chat_reply('{"result": "deny", "reason": "unreleased financial results"}'),
        "deny",
        "unreleased financial results",
    ),
    ("no_result", chat_reply('{"reason": "hmm"}'), "error", "guard answer has no result"),
    (
        "empty_choices",
        FakeReply(200, b'{"id": "x", "choices": []}'),
        "error",
        "guard reply has empty choices",
    ),
    ("prose", chat_reply("This looks fine to me."), "error", "guard answer is not a JSON object"),
    (
        "fenced",
        chat_reply('Verdict:\n```json\n{"result": "deny", "reason": "pii"}\n```'),
        "deny",
        "pii",
    ),
    ("http_500", FakeReply(500, b'{"error": "overloaded"}'), "error", "guard returned HTTP 500"),
    (
        "slow",
        chat_reply('{"result": "allow"}', delay_s=1.0),
        "error",
        "guard request timed out after 0.3s",
    ),
]


@pytest.mark.parametrize(("case", "reply", "kind", "reason"), SCRIPTS, ids=[s[0] for s in SCRIPTS])
async def test_guard_against_fake_llm(
    fake_llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
    case: str,
    reply: FakeReply,
    kind: str,
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="extproc.guard")
    fake_llm.handler = lambda _req: reply
    client = make_client(fake_llm, timeout_s=0.3)
    await client.start()
    try:
        verdict = await client.judge(TEXT)
    except Exception as exc:  # judge must not raise; if it does, the text must be clean
        assert_no_leak(caplog, str(exc), repr(exc))
        raise
    finally:
        await client.aclose()
    assert verdict.kind == kind
    assert reason in verdict.reason
    assert len(fake_llm.requests) == 1
    assert_no_leak(caplog, verdict.reason, repr(verdict), repr(client))
    if kind == "error":
        assert any(r.levelno == logging.WARNING for r in caplog.records)


async def test_request_shape(fake_llm: FakeLLM) -> None:
    async with started(fake_llm, model="guard-model", path="/v1/chat/completions") as client:
        assert (await client.judge(TEXT)).kind == "allow"
    (request,) = fake_llm.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {GUARD_KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["model"] == "guard-model"
    assert body["stream"] is False
    assert body["temperature"] == 0
    assert body["messages"] == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": TEXT},
    ]


async def test_custom_system_prompt_is_sent(fake_llm: FakeLLM) -> None:
    async with started(fake_llm, system_prompt="Be strict.") as client:
        await client.judge(TEXT)
    assert fake_llm.requests[0].json()["messages"][0] == {"role": "system", "content": "Be strict."}


async def test_cache_hit_avoids_second_call(fake_llm: FakeLLM) -> None:
    fake_llm.handler = lambda _req: chat_reply('{"result": "deny", "reason": "pii"}')
    cache = VerdictCache()
    async with started(fake_llm, cache=cache) as client:
        first = await client.judge(TEXT)
        second = await client.judge(TEXT)
        await client.judge("another text")
    assert first == second == Verdict("deny", "pii")
    assert len(fake_llm.requests) == 2
    assert cache.hits == 1


async def test_errors_are_not_cached(fake_llm: FakeLLM) -> None:
    fake_llm.handler = lambda _req: FakeReply(500, b"{}")
    cache = VerdictCache()
    async with started(fake_llm, cache=cache) as client:
        assert (await client.judge(TEXT)).kind == "error"
        fake_llm.handler = lambda _req: chat_reply('{"result": "allow"}')
        assert (await client.judge(TEXT)).kind == "allow"
        assert (await client.judge(TEXT)).kind == "allow"
    assert len(fake_llm.requests) == 2


async def test_cache_is_keyed_by_model_and_prompt(fake_llm: FakeLLM) -> None:
    cache = VerdictCache()
    async with started(fake_llm, cache=cache, model="a") as one:
        await one.judge(TEXT)
    async with started(fake_llm, cache=cache, model="b") as two:
        await two.judge(TEXT)
    async with started(fake_llm, cache=cache, model="b", system_prompt="other") as three:
        await three.judge(TEXT)
    assert len(fake_llm.requests) == 3


async def test_concurrency_bound_gives_waiter_an_error(
    fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="extproc.guard")
    fake_llm.handler = lambda _req: chat_reply('{"result": "allow"}', delay_s=0.5)
    async with started(fake_llm, max_concurrency=1, timeout_s=2.0, queue_timeout_s=0.1) as client:
        first = asyncio.create_task(client.judge(TEXT))
        await asyncio.sleep(0.05)  # let the first call take the only slot
        waiter = await client.judge("second text")
        assert waiter.kind == "error"
        assert "no free guard slot within 0.1s (max_concurrency=1)" in waiter.reason
        assert (await first).kind == "allow"
    assert len(fake_llm.requests) == 1
    assert_no_leak(caplog, waiter.reason)


async def test_concurrency_bound_waiter_gives_up_on_the_slot(fake_llm: FakeLLM) -> None:
    # One slot; the first call holds it until its 0.3 s budget ends, the second may
    # wait 0.1 s for it: it fails without calling upstream (no timing asserted).
    fake_llm.handler = lambda _req: chat_reply('{"result": "allow"}', delay_s=2.0)
    async with started(fake_llm, max_concurrency=1, timeout_s=0.3, queue_timeout_s=0.1) as client:
        first, second = await asyncio.gather(client.judge("a"), client.judge("b"))
    assert first.kind == "error" and "slot" not in first.reason
    assert second.kind == "error" and "no free guard slot" in second.reason
    assert len(fake_llm.requests) == 1


async def test_slots_are_released(fake_llm: FakeLLM) -> None:
    async with started(fake_llm, max_concurrency=2) as client:
        verdicts = await asyncio.gather(*(client.judge(f"t{i}") for i in range(10)))
    assert all(v.kind == "allow" for v in verdicts)
    assert len(fake_llm.requests) == 10


async def test_keep_alive_reuses_connection(fake_llm: FakeLLM) -> None:
    async with started(fake_llm) as client:
        for i in range(3):
            await client.judge(f"t{i}")
    assert fake_llm.connections == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="extproc.guard")
    client = make_client(_closed_port(), timeout_s=1.0)
    await client.start()
    try:
        verdict = await client.judge(TEXT)
    finally:
        await client.aclose()
    assert verdict.kind == "error"
    assert verdict.reason == "guard request failed (ConnectError)"
    assert_no_leak(caplog, verdict.reason)


async def test_model_echoing_the_key_is_scrubbed(
    fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="extproc.guard")

    def echo(request: FakeRequest) -> FakeReply:
        key = request.headers["authorization"].removeprefix("Bearer ")
        return chat_reply(json.dumps({"result": "deny", "reason": f"key {key} leaked"}))

    fake_llm.handler = echo
    async with started(fake_llm) as client:
        verdict = await client.judge(TEXT)
    assert verdict == Verdict("deny", "key [redacted] leaked")
    assert_no_leak(caplog, verdict.reason)


async def test_oversized_reply_is_error(fake_llm: FakeLLM) -> None:
    fake_llm.handler = lambda _req: FakeReply(200, b" " * (2 << 20))
    async with started(fake_llm) as client:
        verdict = await client.judge(TEXT)
    assert verdict.kind == "error"
    assert "larger than" in verdict.reason


@pytest.mark.parametrize("kwargs", [{"max_concurrency": 0}, {"queue_timeout_s": 0}])
def test_invalid_arguments(fake_llm: FakeLLM, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_client(fake_llm, **kwargs)


def test_repr_names_no_key(fake_llm: FakeLLM) -> None:
    assert GUARD_KEY not in repr(make_client(fake_llm))


async def test_unencodable_text_is_error(fake_llm: FakeLLM) -> None:
    async with started(fake_llm) as client:
        verdict = await client.judge("bad \ud800 surrogate")
    assert verdict == Verdict.error("judged text cannot be encoded as JSON")
    assert fake_llm.requests == []


async def test_judge_before_start_is_error_and_opens_nothing(fake_llm: FakeLLM) -> None:
    client = make_client(fake_llm)
    verdict = await client.judge(TEXT)
    assert verdict == Verdict.error("guard client is not started")
    assert fake_llm.requests == []


async def test_judge_after_aclose_is_error(fake_llm: FakeLLM) -> None:
    client = make_client(fake_llm)
    await client.aclose()
    verdict = await client.judge(TEXT)
    assert verdict.kind == "error"
    assert GUARD_KEY not in verdict.reason
