"""The intelligent guard as a processor: an LLM judges the user's text.

Only an explicit "allow" verdict passes. A deny is 403 with the guard's reason
(unless show_reason is off); a guard failure follows on_error, and when that
is "deny" the client gets 503 (the guard, not the request, is at fault, so a
retry may succeed).
"""

from __future__ import annotations

from extproc.core.errors import reject
from extproc.core.events import Reject
from extproc.core.request import RequestContext
from extproc.guard.client import GuardClient
from extproc.processors.base import Processor


class LlmGuard(Processor):
    name = "llm_guard"

    def __init__(self, client: GuardClient, on_error: str, judge: str, show_reason: bool):
        self.client = client
        self._fail_open = on_error == "allow"
        self._last_only = judge == "last_user"
        self._show_reason = show_reason

    async def process(self, ctx: RequestContext) -> Reject | None:
        texts = ctx.user_texts()
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

    async def aclose(self) -> None:
        await self.client.aclose()
