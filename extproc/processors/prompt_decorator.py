"""Prepend and append fixed messages to a chat request."""

from __future__ import annotations

from typing import Any

from extproc.core.events import Reject
from extproc.core.request import RequestContext
from extproc.processors.base import Processor


class PromptDecorator(Processor):
    name = "prompt_decorator"

    def __init__(self, prepend: tuple[tuple[str, str], ...], append: tuple[tuple[str, str], ...]):
        self._prepend = prepend
        self._append = append

    def process(self, ctx: RequestContext) -> Reject | None:
        msgs = ctx.body.get("messages")
        if not isinstance(msgs, list):
            return None
        pre: list[Any] = [{"role": r, "content": c} for r, c in self._prepend]
        post: list[Any] = [{"role": r, "content": c} for r, c in self._append]
        ctx.body["messages"] = pre + msgs + post
        ctx.modified = True
        return None
