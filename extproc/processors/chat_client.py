"""A small pooled client for the OpenAI-compatible chat calls processors make."""

from __future__ import annotations

import httpx
import orjson


class ChatCallError(Exception):
    """A processor's LLM call failed; the message names the failure, never a key."""


class ChatClient:
    def __init__(
        self, base_url: str, path: str, model: str, api_key: str, timeout_s: float
    ) -> None:
        self._path = path
        self._model = model
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        # One pooled client per target: keep-alive, bounded connections.
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    async def complete(self, messages: list[dict[str, str]]) -> str:
        payload = {"model": self._model, "messages": messages, "stream": False, "temperature": 0}
        try:
            r = await self._client.post(
                self._path, content=orjson.dumps(payload), headers=self._headers
            )
        except httpx.TimeoutException:
            raise ChatCallError("timed out") from None
        except httpx.HTTPError as e:
            raise ChatCallError(f"connection failed ({type(e).__name__})") from None
        if not 200 <= r.status_code < 300:
            raise ChatCallError(f"upstream answered HTTP {r.status_code}")
        try:
            content = orjson.loads(r.content)["choices"][0]["message"]["content"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise ChatCallError("reply is not an OpenAI chat completion") from None
        if not isinstance(content, str) or not content.strip():
            raise ChatCallError("reply has no text")
        return content.strip()

    async def aclose(self) -> None:
        await self._client.aclose()
