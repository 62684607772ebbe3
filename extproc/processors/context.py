"""Insert the text of a local file or a URL as a system message.

The text is fetched once and kept; a background refresh re-reads it every
`refresh` interval (file: when its mtime/size changed; URL: conditional GET),
so the request path only reads a cached string. The URL's HTTP client is
opened in `start()`, not when the config is compiled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import httpx

from extproc.config.v1 import config_pb2 as pb
from extproc.core.errors import reject
from extproc.core.events import Reject
from extproc.core.request import CHAT, OLLAMA_CHAT, RequestContext
from extproc.processors.base import Build, Processor

log = logging.getLogger("extproc.processors")


class ContextSource:
    def __init__(
        self,
        file: str,
        url: str,
        max_bytes: int,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.file, self.url, self.max_bytes = file, url, max_bytes
        self.text: str | None = None
        self._stamp: tuple[float, int] | None = None
        self._etag: str | None = None
        self._timeout_s = timeout_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self.url and self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport)

    async def refresh(self) -> None:
        try:
            if self.file:
                st = await asyncio.to_thread(os.stat, self.file)
                stamp = (st.st_mtime, st.st_size)
                if stamp != self._stamp:
                    if st.st_size > self.max_bytes:
                        raise ValueError(f"{self.file} is larger than max_bytes ({self.max_bytes})")
                    self.text = await asyncio.to_thread(self._read_file)
                    self._stamp = stamp
            elif self._client is not None:
                headers = {"if-none-match": self._etag} if self._etag else {}
                r = await self._client.get(self.url, headers=headers)
                if r.status_code == 304:
                    return
                r.raise_for_status()
                if len(r.content) > self.max_bytes:
                    raise ValueError(
                        f"context URL body is larger than max_bytes ({self.max_bytes})"
                    )
                self.text = r.text
                self._etag = r.headers.get("etag")
        except (OSError, ValueError, httpx.HTTPError) as e:
            # Keep serving the last good text; without one, requests fail closed.
            log.warning(
                "context source refresh failed: %s", type(e).__name__ + ": " + str(e).split("\n")[0]
            )

    def _read_file(self) -> str:
        with open(self.file, encoding="utf-8") as f:
            return f.read()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class Context(Processor):
    name = "context"

    def __init__(self, source: ContextSource, refresh_s: float):
        self.source = source
        self._refresh_s = refresh_s
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_proto(cls, c: pb.ContextProcessor, path: str, b: Build) -> Context | None:
        if bool(c.file) == bool(c.url):
            b.err(path, "needs exactly one of file or url")
            return None
        return cls(
            ContextSource(c.file, c.url, c.max_bytes or 256 * 1024),
            b.positive(c, "refresh", 30.0, path),
        )

    async def start(self) -> None:
        if self._task is not None:
            return
        await self.source.start()
        await self.source.refresh()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            await self.source.refresh()

    async def process(self, ctx: RequestContext) -> Reject | None:
        if ctx.endpoint not in (CHAT, OLLAMA_CHAT):
            return None
        text = self.source.text
        if text is None:
            return reject(
                503,
                "The route's context source is not available.",
                "context_unavailable",
                ctx.client_api,
            )
        msgs = ctx.messages
        i = 0
        while i < len(msgs) and isinstance(msgs[i], dict) and msgs[i].get("role") == "system":
            i += 1
        ctx.body["messages"] = [*msgs[:i], {"role": "system", "content": text}, *msgs[i:]]
        ctx.modified = True
        return None

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.source.aclose()
