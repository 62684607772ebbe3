"""A tiny scripted HTTP/1.1 server on 127.0.0.1 standing in for the guard LLM.

Stdlib asyncio streams only. Each test sets ``server.handler`` (request -> FakeReply) and
inspects ``server.requests``. Keep-alive is supported; ``stop()`` closes the listener,
cancels connection handlers and closes their sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeReply:
    status: int = 200
    body: bytes = b""
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


def chat_reply(content: str | None, status: int = 200, delay_s: float = 0.0) -> FakeReply:
    """An OpenAI chat-completions reply whose message content is ``content``."""
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    return FakeReply(status=status, body=json.dumps(body).encode(), delay_s=delay_s)


Handler = Callable[[FakeRequest], FakeReply]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class FakeLLM:
    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler = handler or (lambda _req: chat_reply('{"result": "allow"}'))
        self.requests: list[FakeRequest] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> FakeLLM:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                reply = self.handler(request)
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
                head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
                head += [f"{k}: {v}" for k, v in reply.headers.items()]
                head.append(f"content-length: {len(reply.body)}")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + reply.body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> FakeRequest | None:
        line = await reader.readline()
        if not line:
            return None
        method, path, _version = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        return FakeRequest(method, path, headers, body)
