"""Rewrite the last user message with an LLM (the Rust proxy's enhance_query)."""

from __future__ import annotations

import logging

from extproc.chat.client import ChatCallError, ChatClient
from extproc.config.v1 import config_pb2 as pb
from extproc.core.errors import reject
from extproc.core.events import Reject
from extproc.core.request import CHAT, OLLAMA_CHAT, OLLAMA_GENERATE, RequestContext
from extproc.processors.base import Build, Processor
from extproc.processors.upstream import DEFAULT_CHAT_PATH, resolve_upstream

log = logging.getLogger("extproc.processors")

DEFAULT_REWRITE_PROMPT = (
    "You improve search and chat queries. Rewrite the user's message so that it is clear, "
    "specific and self-contained, keeping its language and intent. Answer with the rewritten "
    "message only, without quotes or explanations."
)


class LlmRewrite(Processor):
    name = "llm_rewrite"
    calls_model = "rewrite"

    def __init__(self, client: ChatClient, system_prompt: str, on_error: str):
        self.client = client
        self._system = system_prompt or DEFAULT_REWRITE_PROMPT
        self._fail_open = on_error == "allow"

    @classmethod
    def from_proto(cls, r: pb.LlmRewrite, path: str, b: Build) -> LlmRewrite | None:
        """`llm_rewrite` at field path `path`; the model defaults to the provider's."""
        before = len(b.problems)
        up = resolve_upstream(r, path, b, default_path=DEFAULT_CHAT_PATH, key_required=False)
        model = r.model or (up.default_model if up is not None else "")
        if up is not None and not model:
            b.err(f"{path}.model", "is required")
        on_error = r.on_error or "deny"
        if on_error not in ("deny", "allow"):
            b.err(f"{path}.on_error", f"must be 'deny' or 'allow', not {on_error!r}")
        if up is None or len(b.problems) > before:
            return None
        return cls(ChatClient(up, model), r.system_prompt, on_error)

    async def process(self, ctx: RequestContext) -> Reject | None:
        target = self._last_user_slot(ctx)
        if target is None:
            return None
        holder, key, text = target
        try:
            rewritten = await self.client.complete(
                [{"role": "system", "content": self._system}, {"role": "user", "content": text}]
            )
        except ChatCallError as e:
            log.warning("llm_rewrite failed: %s", e)
            if self._fail_open:
                return None
            return reject(
                502,
                "The query rewriter failed; the request was not sent.",
                "rewrite_failed",
                ctx.client_api,
            )
        holder[key] = rewritten
        ctx.modified = True
        ctx.annotations["rewritten"] = True
        return None

    @staticmethod
    def _last_user_slot(ctx: RequestContext) -> tuple[dict, str, str] | None:
        if ctx.endpoint == OLLAMA_GENERATE:
            p = ctx.body.get("prompt")
            return (ctx.body, "prompt", p) if isinstance(p, str) and p else None
        if ctx.endpoint not in (CHAT, OLLAMA_CHAT):
            return None
        for m in reversed(ctx.messages):
            if isinstance(m, dict) and m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, str) and c:
                    return (m, "content", c)
                return None  # multimodal content is left as it is
        return None

    def call_target(self) -> tuple[str, str]:
        return self.client.target()

    async def start(self) -> None:
        await self.client.start()

    async def aclose(self) -> None:
        await self.client.aclose()
