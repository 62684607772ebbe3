"""The intelligent guard as a processor: an LLM judges the request's text.

It judges the same texts as the regex checks (`ctx.texts`: every role, or the
configured `roles`), joined by newlines; `judge: last_user` judges only the
last user text.

Only an explicit "allow" verdict passes. A deny is 403 with the guard's reason
(unless show_reason is off); a guard failure follows on_error, and when that
is "deny" the client gets 503 (the guard, not the request, is at fault, so a
retry may succeed).
"""

from __future__ import annotations

from extproc.chat.client import ChatClient
from extproc.config.fields import flag, secs
from extproc.config.v1 import config_pb2 as pb
from extproc.content.texts import config_roles
from extproc.core.errors import reject
from extproc.core.events import Reject
from extproc.core.request import RequestContext
from extproc.guard.cache import VerdictCache
from extproc.guard.client import GuardClient
from extproc.processors.base import Build, Processor
from extproc.processors.upstream import DEFAULT_CHAT_PATH, resolve_upstream

DEFAULT_GUARD_MODEL = "qwen-turbo"
_USER = frozenset({"user"})


class LlmGuard(Processor):
    name = "llm_guard"
    reads_texts = True
    calls_model = "guard"

    def __init__(
        self,
        client: GuardClient,
        on_error: str,
        judge: str,
        show_reason: bool,
        roles: frozenset[str] | None = None,
    ):
        self.client = client
        self._fail_open = on_error == "allow"
        self._last_only = judge == "last_user"
        self._show_reason = show_reason
        # last_user: the user's texts of the configured roles; None: every role.
        self.roles = (roles or _USER) & _USER if self._last_only else roles

    @classmethod
    def from_proto(cls, g: pb.IntelligentGuard, path: str, b: Build) -> LlmGuard | None:
        """`llm_guard` (or the plugin's `intelligent_guard`) at field path `path`."""
        before = len(b.problems)
        up = resolve_upstream(g, path, b, default_path=DEFAULT_CHAT_PATH, key_required=True)
        on_error = g.on_error or "deny"
        if on_error not in ("deny", "allow"):
            b.err(f"{path}.on_error", f"must be 'deny' or 'allow', not {on_error!r}")
        judge = g.judge or "all"
        if judge not in ("all", "all_user", "last_user"):
            b.err(f"{path}.judge", f"must be 'all' or 'last_user', not {judge!r}")
        roles, problems = config_roles(g.roles, f"{path}.roles")
        for problem in problems:
            b.err(*problem)
        if up is None or len(b.problems) > before:
            return None
        ttl = secs(g, "cache_ttl", 60.0)
        concurrency = g.max_concurrency or 32
        client = GuardClient(
            ChatClient(up, g.model or DEFAULT_GUARD_MODEL, max_connections=concurrency),
            system_prompt=g.system_prompt or None,
            max_concurrency=concurrency,
            cache=VerdictCache(max_entries=g.cache_size or 10000, ttl_s=ttl) if ttl > 0 else None,
        )
        return cls(client, on_error, judge, flag(g, "show_reason", True), roles)

    async def process(self, ctx: RequestContext) -> Reject | None:
        texts = ctx.texts_for(self.roles)
        if not texts:
            return None
        text = texts[-1] if self._last_only else "\n".join(texts)
        verdict = await self.client.judge(text)
        ctx.annotations["guard"] = verdict.kind
        if verdict.kind == "allow":
            return None
        if verdict.kind == "deny":
            msg = "Request blocked by the intelligent guard"
            if self._show_reason and verdict.reason:
                msg += f": {verdict.reason}"
            return reject(403, msg + ".", "guard_denied", ctx.client_api)
        if self._fail_open:
            return None
        return reject(
            503,
            "The intelligent guard could not judge this request; it was not sent.",
            "guard_unavailable",
            ctx.client_api,
        )

    def call_target(self) -> tuple[str, str]:
        return self.client.chat.target()

    async def start(self) -> None:
        await self.client.start()

    async def aclose(self) -> None:
        await self.client.aclose()
