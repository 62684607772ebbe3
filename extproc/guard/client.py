"""The guard's HTTP transport: one pooled ``httpx.AsyncClient`` per ``GuardClient``.

``judge`` never raises for guard trouble: timeouts, connection errors, a full
concurrency budget and bad replies all become ``error`` verdicts (what to do with them is
``policy.decide``'s business). The guard key is only ever placed in the Authorization
header; it is not logged, not put in reasons and scrubbed from any model-written reason.
Logs (logger ``extproc.guard``) carry verdict kinds, reasons and timings, never the text.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import orjson

from extproc.guard.cache import VerdictCache
from extproc.guard.prompt import DEFAULT_SYSTEM_PROMPT, build_guard_request
from extproc.guard.verdict import Verdict, parse_guard_reply

__all__ = ["GuardClient"]

logger = logging.getLogger("extproc.guard")

MAX_REPLY_BYTES = 1 << 20  # a judge answer is tiny; refuse to buffer megabytes


class GuardClient:
    """Asks an OpenAI-compatible guard model whether a text may be sent upstream."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str = "/compatible-mode/v1/chat/completions",
        model: str = "qwen-turbo",
        *,
        api_key: str,
        timeout_s: float = 10.0,
        tls: bool | None = None,
        system_prompt: str | None = None,
        max_concurrency: int = 32,
        cache: VerdictCache | None = None,
        queue_timeout_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not host:
            raise ValueError("guard host is empty")
        if not 0 < port < 65536:
            raise ValueError(f"guard port {port} is out of range")
        if not path.startswith("/"):
            raise ValueError(f"guard path {path!r} must start with '/'")
        if timeout_s <= 0:
            raise ValueError("guard timeout_s must be > 0")
        if queue_timeout_s is not None and queue_timeout_s <= 0:
            raise ValueError("guard queue_timeout_s must be > 0")
        if max_concurrency < 1:
            raise ValueError("guard max_concurrency must be >= 1")
        if not api_key:
            raise ValueError("guard api_key is empty")
        use_tls = port == 443 if tls is None else tls
        scheme = "https" if use_tls else "http"
        authority = f"[{host}]" if ":" in host and not host.startswith("[") else host
        default_port = 443 if use_tls else 80
        self.base_url = (
            f"{scheme}://{authority}" if port == default_port else f"{scheme}://{authority}:{port}"
        )
        self.path = path
        self.model = model
        self.timeout_s = float(timeout_s)
        self.max_concurrency = max_concurrency
        # How long a call may wait for a free slot (within its overall timeout_s budget).
        self.queue_timeout_s = min(queue_timeout_s or self.timeout_s, self.timeout_s)
        self.system_prompt = system_prompt or DEFAULT_SYSTEM_PROMPT
        self._api_key = api_key
        self._cache = cache
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0)),
            limits=httpx.Limits(
                max_connections=max_concurrency,
                max_keepalive_connections=max_concurrency,
                keepalive_expiry=30.0,
            ),
            trust_env=False,
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"GuardClient(base_url={self.base_url!r}, path={self.path!r}, model={self.model!r})"

    async def __aenter__(self) -> GuardClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    def _scrub(self, reason: str) -> str:
        return reason.replace(self._api_key, "[redacted]") if self._api_key in reason else reason

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
            async with asyncio.timeout(budget_s):
                async with self._http.stream("POST", self.path, content=body) as response:
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_REPLY_BYTES:
                            return Verdict.error(
                                f"guard reply is larger than {MAX_REPLY_BYTES} bytes"
                            )
                    status = response.status_code
        except (TimeoutError, httpx.TimeoutException) as exc:
            name = "TimeoutError" if isinstance(exc, TimeoutError) else type(exc).__name__
            return Verdict.error(f"guard request timed out after {self.timeout_s:g}s ({name})")
        except httpx.HTTPError as exc:
            return Verdict.error(f"guard request failed ({type(exc).__name__})")
        except Exception as exc:  # judge() must not raise for guard trouble; no exc_info logged
            return Verdict.error(f"guard request failed unexpectedly ({type(exc).__name__})")
        verdict = parse_guard_reply(status, bytes(data))
        if verdict.kind != "error" and self._api_key in verdict.reason:
            verdict = Verdict(verdict.kind, self._scrub(verdict.reason))
        return verdict
