"""What a request processor is.

A processor looks at the parsed request and either passes (returns None),
changes `ctx.body` (and sets `ctx.modified`), or stops the request with a
Reject. Synchronous processors implement `process`; ones that do I/O set
`is_async = True` and implement `aprocess`. Writing a new one is one class
here plus one line in `extproc/processors/registry.py`.
"""

from __future__ import annotations

from typing import ClassVar

from extproc.core.events import Reject
from extproc.core.request import RequestContext


class Processor:
    name: ClassVar[str] = "processor"
    is_async: ClassVar[bool] = False

    def process(self, ctx: RequestContext) -> Reject | None:
        raise NotImplementedError

    async def aprocess(self, ctx: RequestContext) -> Reject | None:
        return self.process(ctx)

    async def start(self) -> None:
        """Called once when the server starts (open pools, warm caches)."""

    async def aclose(self) -> None:
        """Called once at shutdown."""
