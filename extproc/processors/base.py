"""What a request processor is.

A processor looks at the parsed request and either passes (returns None),
changes `ctx.body` (and sets `ctx.modified`), or stops the request with a
Reject. `process` is a coroutine for every processor, so the exchange has one
calling convention; one that does no I/O simply never suspends. A processor
that needs connections or background tasks opens them in `start()` and closes
them in `aclose()`, never when it is built: compiling a config (check-config, a
reload that fails) must leave nothing open. Writing a new one is one class plus
one line in `extproc/processors/registry.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from extproc.core.events import Reject
from extproc.core.request import RequestContext

if TYPE_CHECKING:
    from extproc.config.runtime import ProviderRuntime


class Build(Protocol):
    """What a built-in processor's `from_proto` gets from the config compiler:
    where to report problems (by field path), secrets, durations, providers."""

    problems: list[tuple[str, str]]

    @property
    def providers(self) -> Mapping[str, ProviderRuntime]: ...

    def err(self, path: str, msg: str) -> None: ...

    def secret(self, value: str, env: str, file: str, path: str, required: bool = False) -> str: ...

    def positive(self, msg: Any, field: str, default: float, path: str) -> float:
        """A duration field that must be more than zero, in seconds."""
        ...


class Processor:
    name: ClassVar[str] = "processor"
    # Reads `ctx.texts` (a check): the exchange answers 400 for content it
    # cannot read instead of forwarding it unchecked.
    reads_texts: ClassVar[bool] = False
    # Calls a model ("guard", "rewrite"): the exchange times each call for the
    # request's trace and leaves it out of the gateway's own overhead.
    calls_model: ClassVar[str] = ""

    def call_target(self) -> tuple[str, str]:
        """(model, upstream authority) of the model it calls; for traces."""
        return "", ""

    async def process(self, ctx: RequestContext) -> Reject | None:
        raise NotImplementedError

    async def start(self) -> None:
        """Called once before the processor serves (open pools, warm caches)."""

    async def aclose(self) -> None:
        """Called once when the processor's config is retired or at shutdown."""
