"""Cap how many tokens a request may ask the provider to generate.

A platform guard rail: `max_tokens` (and `max_completion_tokens`, Ollama's
`options.num_predict`, the Responses API's `max_output_tokens`) above the cap is lowered to it; a request without one
gets the cap when `fill: true`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.core.events import Reject
from extproc.core.request import OLLAMA_CHAT, OLLAMA_GENERATE, RESPONSES, RequestContext
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
        if ctx.endpoint in (OLLAMA_CHAT, OLLAMA_GENERATE):
            opts = body.get("options")
            holder: dict[str, Any] = opts if isinstance(opts, dict) else {}
            keys: tuple[str, ...] = ("num_predict",)
        elif ctx.endpoint == RESPONSES:
            holder, keys = body, ("max_output_tokens",)
        else:
            holder, keys = body, ("max_tokens", "max_completion_tokens")
        present = [k for k in keys if isinstance(holder.get(k), int)]
        for k in present:
            if holder[k] > self.cap:
                holder[k] = self.cap
                ctx.modified = True
        if not present and self.fill:
            if holder is not body and not isinstance(body.get("options"), dict):
                body["options"] = holder
            holder[keys[0]] = self.cap
            ctx.modified = True
        return None
