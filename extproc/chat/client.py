"""The pooled HTTP client for the OpenAI chat calls processors make (llm_guard, llm_rewrite).

Building one opens nothing: the connection pool is created in `start()` and
closed in `aclose()`, so compiling a config (check-config, a reload that fails)
leaves no client behind. With a provider's token pool each call picks a token
and reports the answer's status back (rotation, cool-down after 401/429 and a
403 about the key).
Failures are `ChatCallError`s whose messages name the failure, never a key.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from extproc.providers.key_errors import about_the_key
from extproc.providers.token_pool import NoTokenAvailable, TokenPool


@dataclass(frozen=True, slots=True)
class Upstream:
    base_url: str  # scheme://authority[:port]
    path: str
    timeout_s: float
    tokens: TokenPool | None = None  # a provider's pool: one token per call
    api_key: str = field(default="", repr=False)  # the processor's own key
    default_model: str = ""  # the provider's, for processors that fall back to it


MAX_REPLY_BYTES = 1 << 20  # a chat answer here is short; refuse to buffer megabytes


class ChatCallError(Exception):
    """A processor's LLM call failed; the message names the failure, never a key."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    key: str = field(repr=False)  # the key this call used: to redact a model's echo of it

    def redact(self, text: str) -> str:
        return text.replace(self.key, "[redacted]") if self.key and self.key in text else text


class ChatClient:
    def __init__(
        self,
        upstream: Upstream,
        model: str,
        *,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.upstream = upstream
        self.model = model
        self.timeout_s = upstream.timeout_s
        self._max_connections = max_connections
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._closed = False

    def target(self) -> tuple[str, str]:
        """(model, authority) for traces: never a key or a path."""
        return self.model, self.upstream.base_url.partition("://")[2]

    def __repr__(self) -> str:
        u = self.upstream
        return f"ChatClient(base_url={u.base_url!r}, path={u.path!r}, model={self.model!r})"

    async def start(self) -> None:
        if self._http is not None or self._closed:
            return
        # One pool per target: keep-alive, bounded connections; no proxy from the
        # environment and no redirects, so a key goes nowhere but the upstream.
        self._http = httpx.AsyncClient(
            base_url=self.upstream.base_url,
            headers={"content-type": "application/json", "accept": "application/json"},
            timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0)),
            limits=httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
                keepalive_expiry=30.0,
            ),
            trust_env=False,
            follow_redirects=False,
            transport=self._transport,
        )

    async def aclose(self) -> None:
        self._closed = True
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def _key(self) -> str:
        pool = self.upstream.tokens
        if pool is None:
            return self.upstream.api_key
        try:
            return pool.pick()
        except NoTokenAvailable:
            raise ChatCallError("no provider token available (all are cooling down)") from None

    async def post(self, body: bytes, budget_s: float | None = None) -> Reply:
        """POST `body` (JSON) to the upstream path within `budget_s` (default: the timeout)."""
        http = self._http
        if http is None:
            raise ChatCallError("client is closed" if self._closed else "client is not started")
        key = self._key()
        headers = {"authorization": f"Bearer {key}"} if key else None
        try:
            async with asyncio.timeout(self.timeout_s if budget_s is None else budget_s):
                async with http.stream(
                    "POST", self.upstream.path, content=body, headers=headers
                ) as r:
                    data = bytearray()
                    async for chunk in r.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_REPLY_BYTES:
                            raise ChatCallError(f"reply is larger than {MAX_REPLY_BYTES} bytes")
        except ChatCallError:
            raise
        except (TimeoutError, httpx.TimeoutException) as exc:
            name = "TimeoutError" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise ChatCallError(f"request timed out after {self.timeout_s:g}s ({name})") from None
        except httpx.HTTPError as exc:
            raise ChatCallError(f"request failed ({type(exc).__name__})") from None
        except Exception as exc:  # callers turn any failure into a verdict; no traceback
            raise ChatCallError(f"request failed unexpectedly ({type(exc).__name__})") from None
        if self.upstream.tokens is not None:
            self.upstream.tokens.report(key, r.status_code, _retry_after(r.headers))
            if r.status_code == 403 and about_the_key(403, bytes(data)):
                self.upstream.tokens.set_aside(key)
        return Reply(r.status_code, bytes(data), key)

    async def complete(self, messages: list[dict[str, str]]) -> str:
        """The model's answer to `messages` (non-streaming, temperature 0)."""
        payload = {"model": self.model, "messages": messages, "stream": False, "temperature": 0}
        try:
            body = orjson.dumps(payload)
        except TypeError:  # e.g. lone surrogates in a message
            raise ChatCallError("request cannot be encoded as JSON") from None
        reply = await self.post(body)
        if not 200 <= reply.status < 300:
            raise ChatCallError(f"upstream answered HTTP {reply.status}")
        try:
            content = orjson.loads(reply.body)["choices"][0]["message"]["content"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise ChatCallError("reply is not an OpenAI chat completion") from None
        if not isinstance(content, str) or not content.strip():
            raise ChatCallError("reply has no text")
        return reply.redact(content.strip())


def _retry_after(headers: Any) -> float | None:
    """Retry-After in whole seconds, as the exchange reads it (a date counts as absent)."""
    value = headers.get("retry-after")
    return float(value) if value and value.isdigit() else None
