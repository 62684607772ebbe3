"""prompt_decorator, context (file and URL, refreshed on change), llm_rewrite."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from extproc.chat.client import ChatCallError, ChatClient
from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.core.events import Reject
from extproc.core.request import CHAT, OLLAMA_GENERATE, RESPONSES, RequestContext
from extproc.processors.context import Context, ContextSource
from extproc.processors.llm_rewrite import LlmRewrite
from extproc.processors.prompt_decorator import PromptDecorator
from extproc.processors.upstream import Upstream

ROUTE = compile_config(load_text("hosts: [a.com]\napi_key: k\n"), {}).routes.routes[0]


def ctx(body: dict[str, Any], endpoint: str = CHAT) -> RequestContext:
    return RequestContext(ROUTE, {}, endpoint, body)


async def test_prompt_decorator_prepends_and_appends() -> None:
    p = PromptDecorator((("system", "Be kind."),), (("user", "Answer in French."),))
    c = ctx({"messages": [{"role": "user", "content": "hi"}]})
    assert await p.process(c) is None
    assert c.modified
    assert [m["content"] for m in c.body["messages"]] == ["Be kind.", "hi", "Answer in French."]


async def test_prompt_decorator_on_a_responses_request() -> None:
    p = PromptDecorator((("system", "Be kind."),), (("user", "Answer in French."),))
    c = ctx({"input": "hi"}, RESPONSES)
    assert await p.process(c) is None and c.modified
    assert c.body["input"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "Answer in French."},
    ]
    items = [{"type": "function_call_output", "call_id": "c", "output": "x"}]
    c = ctx({"input": list(items)}, RESPONSES)
    await p.process(c)
    assert c.body["input"][1:2] == items
    # What the checks read includes the added texts.
    assert "Be kind." in c.texts_for(None)


async def test_context_file_inserted_after_system_messages_and_refreshed(tmp_path: Path) -> None:
    f = tmp_path / "ctx.txt"
    f.write_text("version one")
    src = ContextSource(str(f), "", max_bytes=1000)
    p = Context(src, refresh_s=3600)
    await src.refresh()
    c = ctx({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]})
    assert await p.process(c) is None
    assert c.body["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "system", "content": "version one"},
        {"role": "user", "content": "q"},
    ]
    f.write_text("version two, longer")
    os.utime(f, (1, 1))  # a different mtime even on coarse clocks
    await src.refresh()
    c2 = ctx({"messages": [{"role": "user", "content": "q"}]})
    await p.process(c2)
    assert c2.body["messages"][0] == {"role": "system", "content": "version two, longer"}


async def test_context_keeps_last_good_text_and_fails_closed_without_one(tmp_path: Path) -> None:
    f = tmp_path / "ctx.txt"
    src = ContextSource(str(f), "", max_bytes=1000)
    await src.refresh()  # missing file: no text yet
    p = Context(src, refresh_s=3600)
    r = await p.process(ctx({"messages": [{"role": "user", "content": "q"}]}))
    assert isinstance(r, Reject) and r.status == 503
    f.write_text("good")
    await src.refresh()
    f.unlink()
    await src.refresh()
    c = ctx({"messages": [{"role": "user", "content": "q"}]})
    assert await p.process(c) is None and c.body["messages"][0]["content"] == "good"


async def test_context_file_over_max_bytes_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "ctx.txt"
    f.write_text("x" * 50)
    src = ContextSource(str(f), "", max_bytes=10)
    await src.refresh()
    assert src.text is None


async def test_context_url_fetched_once_then_conditional(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(dict(request.headers))
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, text="from url", headers={"etag": '"v1"'})

    src = ContextSource(
        "", "http://ctx.test/doc", max_bytes=1000, transport=httpx.MockTransport(handler)
    )
    await src.start()
    await src.refresh()
    await src.refresh()
    assert src.text == "from url"
    assert len(calls) == 2 and calls[1]["if-none-match"] == '"v1"'
    await src.aclose()


class FakeChat(ChatClient):
    def __init__(self, answer: str | Exception) -> None:
        self.answer = answer
        self.seen: list[list[dict[str, str]]] = []

    async def complete(self, messages: list[dict[str, str]]) -> str:
        self.seen.append(messages)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def aclose(self) -> None:
        pass


async def test_llm_rewrite_replaces_the_last_user_message() -> None:
    chat = FakeChat("a better question")
    p = LlmRewrite(chat, "", "deny")
    c = ctx(
        {
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "q?"},
            ]
        }
    )
    assert await p.process(c) is None
    assert c.modified and c.body["messages"][2]["content"] == "a better question"
    assert c.body["messages"][0]["content"] == "first"
    assert chat.seen[0][0]["role"] == "system" and chat.seen[0][1] == {
        "role": "user",
        "content": "q?",
    }


async def test_llm_rewrite_ollama_generate_prompt() -> None:
    p = LlmRewrite(FakeChat("better"), "custom prompt", "deny")
    c = ctx({"prompt": "why sky blue"}, OLLAMA_GENERATE)
    assert await p.process(c) is None
    assert c.body["prompt"] == "better"


async def test_llm_rewrite_failure_follows_on_error() -> None:
    body = {"messages": [{"role": "user", "content": "q"}]}
    r = await LlmRewrite(FakeChat(ChatCallError("timed out")), "", "deny").process(ctx(dict(body)))
    assert isinstance(r, Reject) and r.status == 502
    assert orjson.loads(r.body)["error"]["code"] == "rewrite_failed"
    c = ctx(dict(body))
    assert await LlmRewrite(FakeChat(ChatCallError("timed out")), "", "allow").process(c) is None
    assert not c.modified


async def test_chat_client_against_a_real_http_server() -> None:
    got: list[bytes] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        lines = {
            k.strip().lower(): v.strip()
            for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n")[1:] if ln)
        }
        length = int(lines[b"content-length"])
        got.append(lines[b"authorization"])
        await r.readexactly(length)
        body = orjson.dumps({"choices": [{"message": {"content": " rewritten "}}]})
        w.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        await w.drain()
        w.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    up = Upstream(f"http://127.0.0.1:{port}", "/v1/chat/completions", 5, api_key="sk-REWRITE-KEY")
    client = ChatClient(up, "m")
    await client.start()
    try:
        assert await client.complete([{"role": "user", "content": "x"}]) == "rewritten"
    finally:
        await client.aclose()
        server.close()
    assert got == [b"Bearer sk-REWRITE-KEY"]


async def test_prompt_decorator_on_the_messages_api_puts_system_texts_in_system() -> None:
    from extproc.core.request import ANTHROPIC_MESSAGES

    p = PromptDecorator(
        (("system", "Be kind."), ("user", "Context.")), (("system", "Answer in French."),)
    )
    c = ctx(
        {"system": "You code.", "messages": [{"role": "user", "content": "hi"}]},
        ANTHROPIC_MESSAGES,
    )
    assert await p.process(c) is None and c.modified
    assert c.body["system"] == [
        {"type": "text", "text": "Be kind."},
        {"type": "text", "text": "You code."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert c.body["messages"] == [
        {"role": "user", "content": "Context."},
        {"role": "user", "content": "hi"},
    ]
    blocks = [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]
    c2 = ctx({"system": blocks, "messages": []}, ANTHROPIC_MESSAGES)
    await PromptDecorator((), (("system", "X"),)).process(c2)
    assert c2.body["system"] == [*blocks, {"type": "text", "text": "X"}]
