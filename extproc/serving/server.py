"""One process's server: the current Generation, budget, metrics, a transport."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any

from extproc.budget import Budget, BudgetUnavailable, Reservation, make_budget
from extproc.cache.service import ResponseCache
from extproc.config.runtime import Runtime, Service
from extproc.consumers.auth import AuthHook
from extproc.core.exchange import Exchange
from extproc.core.record import ExchangeRecord
from extproc.observability.logs import PromptCapture, log_attempt, log_exchange
from extproc.observability.metrics import Metrics, MetricsEndpoint, multiprocess_dir
from extproc.observability.tracing import Tracing
from extproc.serving.generation import Generation, build_generation
from extproc.serving.options import ServeOptions
from extproc.transport import make_transport

log = logging.getLogger("extproc.server")


class Server:
    """`start`, then `wait` or `stop`; `reload` serves a new config.

    Each ext_proc stream gets an Exchange from the current Generation, whose
    hooks are `authenticate` (prompt capture, consumer keys, token budget)
    and `on_done` (the request's log line, metrics, budget charge)."""

    def __init__(
        self,
        runtime: Runtime,
        opts: ServeOptions,
        on_done: Callable[[ExchangeRecord], None] | None = None,
        budget: Budget | None = None,
    ):
        self.opts = opts
        self.budget = budget if budget is not None else make_budget(runtime)
        self.metrics = Metrics(runtime)
        # Outlives config reloads: entries stay valid while a route's policy does.
        self.cache = ResponseCache(self.metrics.observe_cache)
        # Traces: set up once per process (a reload keeps the exporter).
        self.tracing = Tracing(runtime.tracing) if runtime.tracing is not None else None
        self._on_done_override = on_done
        self.generation = self._build(runtime)
        self.transport = make_transport(opts.transport, self.new_exchange, opts.listen())
        self._metrics_endpoint: MetricsEndpoint | None = None
        self.metrics_port = 0
        self._charges: set[asyncio.Task[None]] = set()  # budget charges
        self._closers: set[asyncio.Task[None]] = set()  # a replaced config's processors
        self._started = False

    def new_exchange(self, provider: str = "", traceparent: str = "") -> Exchange:
        """The transport's handler factory: one read of the current generation."""
        return self.generation.exchange(provider, traceparent)

    @property
    def runtime(self) -> Runtime:
        return self.generation.runtime

    @property
    def authenticate(self) -> AuthHook | None:
        return self.generation.authenticate

    @property
    def on_done(self) -> Callable[[ExchangeRecord], None]:
        return self.generation.on_done

    @property
    def bound_port(self) -> int:
        return self.transport.bound_port

    # -- hooks ---------------------------------------------------------------

    def _build(self, runtime: Runtime) -> Generation:
        gen = build_generation(runtime, self.budget, self._report, self.cache)
        if self._on_done_override is not None:
            return dataclasses.replace(gen, on_done=self._on_done_override)
        return gen

    def _report(self, prompts: PromptCapture | None, rec: ExchangeRecord) -> None:
        """Once per exchange: log line, metrics, budget charge. Never raises."""
        if rec.attempt:
            # One attempt of a fallback route: the request's own record (in the
            # router-level exchange) charges the budget for the answer only.
            self._report_attempt(rec)
            return
        try:
            log_exchange(rec, prompts.pop(rec) if prompts is not None else None)
        except Exception:
            log.exception("request log failed")
        if self.tracing is not None:
            self.tracing.export(rec, self.runtime.providers)
        try:
            self.metrics.observe(rec)
        except Exception:
            log.exception("metrics failed")
        self._charge(rec)

    def _report_attempt(self, rec: ExchangeRecord) -> None:
        try:
            log_attempt(rec)
            self.metrics.observe(rec)
        except Exception:
            log.exception("attempt log or metrics failed")
        if self.tracing is not None:
            self.tracing.export(rec, self.runtime.providers)

    def _charge(self, rec: ExchangeRecord) -> None:
        """Settle the request's budget reservation to its real usage (0 when it
        failed or reported none); without a reservation, charge the usage."""
        budget = self.budget
        tokens = rec.usage.total_tokens if rec.usage is not None else 0
        if rec.cache == "hit":
            tokens = 0  # a cache hit spent no tokens (its usage is what it saved)
        if budget is None or not rec.consumer:
            return
        if rec.reservation is not None:
            self._background(self._settle_async(rec.reservation, tokens))
        elif tokens > 0:
            self._background(self._charge_async(rec.consumer, tokens))

    async def _settle_async(self, reservation: Reservation, tokens: int) -> None:
        assert self.budget is not None
        try:
            await self.budget.settle(reservation, tokens)
        except BudgetUnavailable as e:
            log.warning(
                "budget settlement lost",
                extra={
                    "fields": {
                        "consumer": reservation.consumer,
                        "reserved": reservation.tokens,
                        "tokens": tokens,
                        "error": str(e),
                    }
                },
            )

    async def _charge_async(self, consumer: str, tokens: int) -> None:
        assert self.budget is not None
        try:
            await self.budget.charge(consumer, tokens)
        except BudgetUnavailable as e:
            log.warning(
                "budget charge lost",
                extra={"fields": {"consumer": consumer, "tokens": tokens, "error": str(e)}},
            )

    def _background(
        self, coro: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]] | None = None
    ) -> None:
        tasks = self._charges if tasks is None else tasks
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        for p in self.runtime.services:
            await p.start()
        await self.cache.warm(self.runtime.routes.routes)
        if self.opts.metrics_port > 0 and not multiprocess_dir():
            # With --workers the parent serves every worker's metrics.
            ep = MetricsEndpoint(
                self.metrics.registry, self.opts.metrics_host or "127.0.0.1", self.opts.metrics_port
            )
            ep.start()
            self._metrics_endpoint, self.metrics_port = ep, ep.bound_port
        try:
            await self.transport.start()
        except BaseException:
            await self._release()
            raise
        self._started = True
        log.info(
            "serving",
            extra={
                "fields": {
                    "transport": self.opts.transport,
                    "port": self.bound_port,
                    "unix_socket": self.opts.unix_socket,
                    "metrics_port": self.metrics_port,
                    "pid": os.getpid(),
                }
            },
        )

    async def reload(self, runtime: Runtime) -> None:
        """Serve a new config: streams that start from now on use it; streams in
        flight finish on the old one, whose processors are closed after the
        grace period. Budget counters carry over (same backend)."""
        if not self._started:
            raise RuntimeError("reload before start")
        old = self.runtime
        if (runtime.budget_backend, runtime.redis_url) != (old.budget_backend, old.redis_url):
            log.warning("budgets backend changed: restart to apply it; keeping the current one")
        if runtime.tracing != old.tracing:
            log.warning("observability.tracing changed: restart to apply it")
        try:
            for p in runtime.services:
                await p.start()
            generation = self._build(runtime)
        except BaseException:
            # The new config never serves: close what it opened; the old one stays.
            current = {id(p) for p in old.services}
            for p in runtime.services:
                if id(p) not in current:
                    with contextlib.suppress(Exception):
                        await p.aclose()
            raise
        await self.cache.warm(runtime.routes.routes)  # best effort: never fails a reload
        self.metrics.use_runtime(runtime)
        # One assignment: a new stream sees the old generation or the new one.
        self.generation = generation
        self._background(self._close_later(old.services), self._closers)
        log.info(
            "config reloaded",
            extra={
                "fields": {
                    "routes": len(runtime.routes.routes),
                    "providers": len(runtime.providers),
                }
            },
        )

    async def _close_later(self, processors: tuple[Service, ...]) -> None:
        try:
            await asyncio.sleep(self.opts.grace_s)
        finally:  # also when stop() ends the wait early
            current = {id(p) for p in self.runtime.services}
            for p in processors:
                if id(p) not in current:
                    with contextlib.suppress(Exception):
                        await p.aclose()

    async def stop(self) -> None:
        """Stop accepting, let in-flight streams finish within the grace period."""
        if not self._started:
            return
        self._started = False
        await self.transport.stop()
        for t in set(self._closers):
            t.cancel()
        await asyncio.gather(*self._closers, return_exceptions=True)
        await self._release()
        log.info("stopped")

    async def _release(self) -> None:
        """Close what start() opened, apart from the transport."""
        for p in self.runtime.services:
            with contextlib.suppress(Exception):
                await p.aclose()
        if self._charges:
            await asyncio.wait(set(self._charges), timeout=self.opts.grace_s or None)
        if self.budget is not None:
            with contextlib.suppress(Exception):
                await self.budget.aclose()
        with contextlib.suppress(Exception):
            await self.cache.aclose(self.opts.grace_s or None)
        if self._metrics_endpoint is not None:
            self._metrics_endpoint.stop()
            self._metrics_endpoint = None
        if self.tracing is not None:
            # Pending spans go out now (the SDK bounds the wait), off the loop.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.tracing.shutdown)
            self.tracing = None

    async def wait(self) -> None:
        await self.transport.wait()
