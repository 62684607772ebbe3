"""Consumer authentication for routes with `auth`, plus the budget check.

The key is read from the route's `key_sources` in order (`authorization`
Bearer, `x-api-key`, `header:<name>`, `body:key`); the first source that
carries one wins. It is compared against every configured key in constant
time: both sides are hashed (SHA-256, so lengths leak nothing) and every
digest is compared with `hmac.compare_digest`, without stopping at a match.

Answers: no key on a route that requires one, or an unknown key: 401.
A known consumer on a route or model it may not use: 403. Its token budget
has no room for this request's estimate (`budget/estimate.py`): 429 with
retry-after; else the estimate is reserved (atomically, so concurrent
requests see each other) and left in `ctx.annotations[RESERVATION]` for the
exchange to settle. Budget store unreachable: 503 (fail closed).
Ollama routes answer in Ollama's shape; a 401 there is exactly
`{"error": "Invalid or missing API key"}`, as the Python Ollama key proxy
answered. No message ever holds a key.

The client's key never goes upstream: `body:key` is deleted from the body
here; key headers (including `header:<name>` sources) are removed by the
exchange, which also puts the provider's key in place.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from extproc.budget import (
    Budget,
    BudgetUnavailable,
    BudgetUsage,
    budget_reject,
    reservation_size,
    unavailable_reject,
)
from extproc.budget.estimate import estimate_tokens
from extproc.client_apis.registry import ENDPOINTS, OLLAMA, api_named
from extproc.config.runtime import ConsumerRuntime, RouteRuntime, Runtime
from extproc.core.errors import reject
from extproc.core.events import Reject
from extproc.core.request import RESERVATION, RequestContext

OLLAMA_AUTH_MESSAGE = OLLAMA.auth_message
# Every endpoint a client API models names a model (or the provider's default applies).
_MODEL_ENDPOINTS = frozenset(n for n, e in ENDPOINTS.items() if e.has_body)  # a model named
_MAX_ECHO = 100  # longest client-sent model name repeated in a message

# The exchange's authenticate hook: a coroutine, whatever the budget store.
AuthHook = Callable[[RequestContext], Awaitable[Reject | None]]


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def key_from(ctx: RequestContext, sources: tuple[str, ...]) -> str | None:
    """The client's key from the first source that has one (None: no key)."""
    h = ctx.headers
    for src in sources:
        value: Any = None
        if src == "authorization":
            auth = h.get("authorization", "")
            scheme, _, rest = auth.strip().partition(" ")
            if scheme.lower() == "bearer":
                value = rest.strip()
        elif src == "x-api-key":
            value = h.get("x-api-key", "").strip()
        elif src.startswith("header:"):
            value = h.get(src[7:].lower(), "").strip()
        elif src == "body:key":
            value = ctx.body.get("key")
        if isinstance(value, str) and value:
            return value
    return None


def strip_body_key(ctx: RequestContext, sources: tuple[str, ...]) -> None:
    """Delete the client's `key` body field so it never goes upstream."""
    if "body:key" in sources and "key" in ctx.body:
        del ctx.body["key"]
        ctx.modified = True


class Authenticator:
    """`await authenticate(ctx)` for the exchange: a Reject, or None to go on."""

    def __init__(self, runtime: Runtime, budget: Budget | None = None) -> None:
        self.runtime = runtime
        self.budget = budget
        self._keys: tuple[tuple[bytes, ConsumerRuntime], ...] = tuple(
            (_digest(k), c) for k, c in runtime.consumer_keys
        )

    # -- identity ------------------------------------------------------------

    def identify(self, key: str) -> ConsumerRuntime | None:
        """The consumer owning `key`; every configured key is compared."""
        d = _digest(key.encode("utf-8", "surrogatepass"))
        found: ConsumerRuntime | None = None
        for k, consumer in self._keys:
            # No early exit: the time taken does not depend on which key matched.
            if hmac.compare_digest(d, k) and found is None:
                found = consumer
        return found

    # -- the hook ------------------------------------------------------------

    async def __call__(self, ctx: RequestContext) -> Reject | None:
        route = ctx.route
        auth = route.auth
        if auth is None:
            return None
        api = ctx.client_api
        sources = auth.key_sources
        key = key_from(ctx, sources)
        strip_body_key(ctx, sources)
        if key is None:
            if not auth.required:
                return None  # anonymous use of a route with optional auth
            return self._unauthorized(api, missing=True)
        consumer = self.identify(key)
        del key
        if consumer is None:
            return self._unauthorized(api, missing=False)
        ctx.consumer = consumer.name
        if consumer.allowed_routes and route.name not in consumer.allowed_routes:
            return reject(
                403,
                f"Consumer {consumer.name!r} may not use route {route.name!r}.",
                "route_not_allowed",
                api,
            )
        denied = self._model_denied(ctx, consumer, route)
        if denied is not None:
            return reject(
                403,
                f"Consumer {consumer.name!r} may not use model {denied[:_MAX_ECHO]!r}.",
                "model_not_allowed",
                api,
            )
        if consumer.token_budget > 0 and self.budget is not None:
            return await self._reserve(ctx, consumer, api)
        return None

    @staticmethod
    def _unauthorized(api: str, missing: bool) -> Reject:
        code = "missing_api_key" if missing else "invalid_api_key"
        return reject(401, api_named(api).unauthorized(missing), code, api)

    @staticmethod
    def _model_denied(
        ctx: RequestContext, consumer: ConsumerRuntime, route: RouteRuntime
    ) -> str | None:
        """The model the consumer may not use, or None."""
        allowed = consumer.allowed_models
        if not allowed:
            return None
        model = ctx.body.get("model")
        if isinstance(model, str) and model:
            return None if model in allowed else model
        if ctx.endpoint not in _MODEL_ENDPOINTS:
            return None  # no model involved (GET /v1/models, ...)
        # No model named: the provider's default is used; every one must be allowed.
        for p in route.providers:
            if p.default_model and p.default_model not in allowed:
                return p.default_model
        return None

    # -- budgets -------------------------------------------------------------

    async def _reserve(
        self, ctx: RequestContext, consumer: ConsumerRuntime, api: str
    ) -> Reject | None:
        budget = self.budget
        assert budget is not None
        limit = consumer.token_budget
        estimate = estimate_tokens(
            ctx.endpoint, ctx.body, ctx.body_bytes, self.runtime.budget_default_output
        )
        try:
            got = await budget.reserve(consumer.name, reservation_size(estimate, limit), limit)
        except BudgetUnavailable:
            if budget.fail_open:
                return None
            return unavailable_reject(api)
        if isinstance(got, BudgetUsage):
            return budget_reject(consumer.name, limit, budget.window_s, got, api, estimate)
        ctx.annotations[RESERVATION] = got
        return None


def make_authenticator(runtime: Runtime, budget: Budget | None = None) -> Authenticator | None:
    """The hook, or None when no route asks for consumer keys."""
    if not any(r.auth is not None for r in runtime.routes.routes):
        return None
    return Authenticator(runtime, budget)
