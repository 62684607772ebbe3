"""Judging a text with the guard model, through the shared chat client.

``judge`` never raises for guard trouble: timeouts, connection errors, a full
concurrency budget and bad replies all become ``error`` verdicts (the ``llm_guard``
processor decides what they mean). The key (the guard's own or a provider's token) is
only placed in the Authorization header by the chat client; it is not logged, not put
in reasons and scrubbed from any model-written reason. Logs (logger ``extproc.guard``)
carry verdict kinds, reasons and timings, never the text.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from extproc.chat.client import ChatCallError, ChatClient
from extproc.guard.cache import VerdictCache
from extproc.guard.prompt import DEFAULT_SYSTEM_PROMPT, build_guard_request
from extproc.guard.verdict import Verdict, parse_guard_reply

__all__ = ["GuardClient"]

logger = logging.getLogger("extproc.guard")


class GuardClient:
    """Asks an OpenAI-compatible guard model whether a text may be sent upstream."""

    def __init__(
        self,
        chat: ChatClient,
        *,
        system_prompt: str | None = None,
        max_concurrency: int = 32,
        cache: VerdictCache | None = None,
        queue_timeout_s: float | None = None,
    ) -> None:
        if queue_timeout_s is not None and queue_timeout_s <= 0:
            raise ValueError("guard queue_timeout_s must be > 0")
        if max_concurrency < 1:
            raise ValueError("guard max_concurrency must be >= 1")
        self.chat = chat
        self.model = chat.model
        self.timeout_s = chat.timeout_s
        self.max_concurrency = max_concurrency
        # How long a call may wait for a free slot (within its overall timeout_s budget).
        self.queue_timeout_s = min(queue_timeout_s or self.timeout_s, self.timeout_s)
        self.system_prompt = system_prompt or DEFAULT_SYSTEM_PROMPT
        self._cache = cache
        self._semaphore = asyncio.Semaphore(max_concurrency)

    def __repr__(self) -> str:
        return f"GuardClient({self.chat!r})"

    async def start(self) -> None:
        """Open the pooled connections."""
        await self.chat.start()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.chat.aclose()

    def _error(self, reason: str, started: float) -> Verdict:
        verdict = Verdict.error(reason)
        logger.warning(
            "guard error verdict: %s (%.0f ms)", reason, (time.monotonic() - started) * 1000
        )
        return verdict

    async def judge(self, text: str) -> Verdict:
        """The guard's verdict on ``text`` (never raises for guard failures)."""
        started = time.monotonic()
        cache_key = None
        if self._cache is not None:
            cache_key = self._cache.key(text, self.model, self.system_prompt)
            cached = self._cache.get(cache_key)
            if cached is not None:
                logger.debug("guard verdict %s from cache", cached.kind)
                return cached

        deadline = started + self.timeout_s
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                await self._semaphore.acquire()
        except TimeoutError:
            return self._error(
                f"no free guard slot within {self.queue_timeout_s:g}s "
                f"(max_concurrency={self.max_concurrency})",
                started,
            )
        try:
            verdict = await self._call(text, max(deadline - time.monotonic(), 0.001))
        finally:
            self._semaphore.release()

        if verdict.kind == "error":
            return self._error(verdict.reason, started)
        if self._cache is not None and cache_key is not None:
            self._cache.put(cache_key, verdict)
        logger.debug(
            "guard verdict %s (%.0f ms)", verdict.kind, (time.monotonic() - started) * 1000
        )
        return verdict

    async def _call(self, text: str, budget_s: float) -> Verdict:
        try:
            body = orjson.dumps(build_guard_request(text, self.model, self.system_prompt))
        except TypeError:  # e.g. lone surrogates in the text
            return Verdict.error("judged text cannot be encoded as JSON")
        try:
            reply = await self.chat.post(body, budget_s)
        except ChatCallError as e:
            return Verdict.error(f"guard {e}")
        verdict = parse_guard_reply(reply.status, reply.body)
        if verdict.kind != "error":
            reason = reply.redact(verdict.reason)
            if reason is not verdict.reason:
                verdict = Verdict(verdict.kind, reason)
        return verdict
