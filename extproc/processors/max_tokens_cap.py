"""Cap how many tokens a request may ask the provider to generate.

A platform guard rail: `max_tokens` (and `max_completion_tokens`, Ollama's
`options.num_predict`) above the cap is lowered to it; a request without one
gets the cap when `fill: true`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.client_apis.registry import endpoint_named
from extproc.core.events import Reject
from extproc.core.request import RequestContext
from extproc.processors.base import Processor


class MaxTokensCap(Processor):
    name = "max_tokens_cap"

    def __init__(self, cap: int, fill: bool) -> None:
        self.cap = cap
        self.fill = fill

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MaxTokensCap:
        unknown = set(config) - {"max_tokens", "fill"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}; expected max_tokens, fill")
        cap = config.get("max_tokens")
        # Struct numbers arrive as floats.
        if not isinstance(cap, int | float) or cap != int(cap) or cap < 1:
            raise ValueError("max_tokens must be a whole number of at least 1")
        fill = config.get("fill", False)
        if not isinstance(fill, bool):
            raise ValueError("fill must be true or false")
        return cls(int(cap), fill)

    async def process(self, ctx: RequestContext) -> Reject | None:
        body = ctx.body
        # Where the client's API puts the limit (Ollama: options.num_predict).
        ep = endpoint_named(ctx.endpoint)
        keys = ep.max_tokens_keys
        holder: dict[str, Any] = body
        for name in ep.max_tokens_in:
            inner = holder.get(name)
            if not isinstance(inner, dict):
                if not self.fill:
                    return None  # no limit there to lower, none to add
                inner = holder[name] = {}
            holder = inner
        present = [k for k in keys if isinstance(holder.get(k), int)]
        for k in present:
            if holder[k] > self.cap:
                holder[k] = self.cap
                ctx.modified = True
        if not present and self.fill:
            holder[keys[0]] = self.cap
            ctx.modified = True
        return None
