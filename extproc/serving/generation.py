"""One config's hooks for new streams, swapped whole on reload."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from extproc.budget import Budget
from extproc.cache.service import ResponseCache
from extproc.config.runtime import Runtime
from extproc.consumers.auth import Authenticator, AuthHook, make_authenticator
from extproc.core.attempt import Attempt
from extproc.core.events import Reject
from extproc.core.exchange import Exchange
from extproc.core.record import ExchangeRecord
from extproc.core.request import RequestContext
from extproc.observability.logs import PromptCapture

# What to do with a finished exchange: (its prompts capture, its record).
Report = Callable[[PromptCapture | None, ExchangeRecord], None]


@dataclass(frozen=True, slots=True)
class Generation:
    """Everything a new stream takes from the config, as one value.

    The server holds one reference and replaces it on reload, so a stream
    reads its runtime, authenticator, prompt capture and on_done together:
    never the new runtime with the old hooks. Streams in flight keep the
    generation they started with."""

    runtime: Runtime
    authenticate: AuthHook | None
    on_done: Callable[[ExchangeRecord], None]
    prompts: PromptCapture | None = None
    cache: ResponseCache | None = None

    def exchange(self, provider: str = "", traceparent: str = "") -> Exchange:
        ex = (
            # One attempt of a fallback route (core/attempt.py).
            Exchange(self.runtime, self.on_done, attempt=Attempt(provider))
            if provider
            else Exchange(self.runtime, self.on_done, self.authenticate, cache=self.cache)
        )
        if traceparent and self.runtime.tracing is not None:
            ex.record.traceparent = traceparent
        return ex


def build_generation(
    runtime: Runtime, budget: Budget | None, report: Report, cache: ResponseCache | None = None
) -> Generation:
    prompts = (
        PromptCapture(k for k, _ in runtime.consumer_keys) if runtime.debug_log_prompts else None
    )
    return Generation(
        runtime,
        _authenticate(prompts, make_authenticator(runtime, budget)),
        partial(report, prompts),
        prompts,
        # Only a config with a cached route gives its exchanges the cache.
        cache if any(r.cache is not None for r in runtime.routes.routes) else None,
    )


def _authenticate(
    prompts: PromptCapture | None, authenticator: Authenticator | None
) -> AuthHook | None:
    if prompts is None:
        return authenticator  # no wrapper on the hot path

    async def authenticate(ctx: RequestContext) -> Reject | None:
        # Before the authenticator: it removes a body key, never a user text.
        prompts.capture(ctx)
        return await authenticator(ctx) if authenticator is not None else None

    return authenticate
