"""Prepend and append fixed messages to a chat request (Anthropic Messages and
Responses API requests too, in their own shapes)."""

from __future__ import annotations

from typing import Any

from extproc.config.v1 import config_pb2 as pb
from extproc.core.events import Reject
from extproc.core.request import ANTHROPIC_ENDPOINTS, RESPONSES, RequestContext
from extproc.processors.base import Build, Processor


class PromptDecorator(Processor):
    name = "prompt_decorator"

    def __init__(self, prepend: tuple[tuple[str, str], ...], append: tuple[tuple[str, str], ...]):
        self._prepend = prepend
        self._append = append

    @classmethod
    def from_proto(cls, d: pb.PromptDecorator, path: str, b: Build) -> PromptDecorator:
        for name, msgs in (("prepend", d.prepend), ("append", d.append)):
            for i, m in enumerate(msgs):
                if m.role not in ("system", "user", "assistant"):
                    b.err(
                        f"{path}.{name}[{i}].role",
                        f"must be system, user or assistant, not {m.role!r}",
                    )
        return cls(
            tuple((m.role, m.content) for m in d.prepend),
            tuple((m.role, m.content) for m in d.append),
        )

    async def process(self, ctx: RequestContext) -> Reject | None:
        if ctx.endpoint == RESPONSES:
            _decorate_responses(ctx, self._prepend, self._append)
            return None
        msgs = ctx.body.get("messages")
        if not isinstance(msgs, list):
            return None
        if ctx.endpoint in ANTHROPIC_ENDPOINTS:
            _decorate_anthropic(ctx, msgs, self._prepend, self._append)
            return None
        pre: list[Any] = [{"role": r, "content": c} for r, c in self._prepend]
        post: list[Any] = [{"role": r, "content": c} for r, c in self._append]
        ctx.body["messages"] = pre + msgs + post
        ctx.modified = True
        return None


def _decorate_anthropic(
    ctx: RequestContext,
    msgs: list[Any],
    prepend: tuple[tuple[str, str], ...],
    append: tuple[tuple[str, str], ...],
) -> None:
    """The Messages API has no system role: system texts join the ``system``
    field (as text blocks, so a client's block list and cache marks stay)."""
    body = ctx.body
    system = body.get("system")
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) and system else []
    blocks = list(system) if isinstance(system, list) else blocks
    pre = [{"type": "text", "text": c} for r, c in prepend if r == "system"]
    post = [{"type": "text", "text": c} for r, c in append if r == "system"]
    if pre or post:
        body["system"] = pre + blocks + post
    body["messages"] = (
        [{"role": r, "content": c} for r, c in prepend if r != "system"]
        + msgs
        + [{"role": r, "content": c} for r, c in append if r != "system"]
    )
    ctx.modified = True


def _decorate_responses(
    ctx: RequestContext,
    prepend: tuple[tuple[str, str], ...],
    append: tuple[tuple[str, str], ...],
) -> None:
    """Responses API: the messages become input items around the client's
    (a string input is the one user message it stands for)."""
    inp = ctx.body.get("input")
    items = [{"role": "user", "content": inp}] if isinstance(inp, str) else inp
    if not isinstance(items, list):
        return
    ctx.body["input"] = (
        [{"role": r, "content": c} for r, c in prepend]
        + items
        + [{"role": r, "content": c} for r, c in append]
    )
    ctx.modified = True
