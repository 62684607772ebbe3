"""Consumer authentication: every key source, 401/401/403 in both error shapes."""

from __future__ import annotations

import hmac
from typing import Any

import orjson
import pytest

from extproc.budget import MemoryBudget
from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
from extproc.consumers import auth as auth_mod
from extproc.consumers.auth import Authenticator, make_authenticator
from extproc.core.events import Reject
from extproc.core.request import RequestContext, endpoint_of
from support import runtime as compile_runtime

ALICE = "ck-alice-SECRET-1111"
BOB = "ck-bob-SECRET-2222"
PROVIDER = "sk-provider-SECRET-3333"

CONFIG = f"""
providers:
- name: qwen
  type: qwen
  api_tokens: [{PROVIDER}]
  default_model: qwen-turbo
- name: ollama
  type: ollama
  base_url: http://127.0.0.1:11434
routes:
- name: chat
  match: {{hosts: ["api.test"]}}
  provider: qwen
  auth:
    required: true
    key_sources: [authorization, x-api-key, "header:X-Team-Key", "body:key"]
- name: ollama
  match: {{hosts: ["ollama.test"]}}
  provider: ollama
  client_api: ollama
  auth: {{required: true, key_sources: ["body:key"]}}
- name: optional
  match: {{hosts: ["opt.test"]}}
  provider: qwen
  auth: {{required: false}}
- name: open
  match: {{hosts: ["open.test"]}}
  provider: qwen
consumers:
- name: alice
  keys: [{ALICE}]
- name: bob
  keys: [{BOB}]
  allowed_models: [qwen-max]
  allowed_routes: [chat, ollama]
"""


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return compile_runtime(CONFIG)


def ctx_for(
    rt: Runtime,
    host: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
) -> RequestContext:
    h = {":authority": host, ":path": path, **(headers or {})}
    route = rt.routes.match(host, path, h)
    assert route is not None
    return RequestContext(route, h, endpoint_of(path, route.client_api), dict(body or {}))


def _err(rej: object) -> Any:
    assert isinstance(rej, Reject)
    return orjson.loads(rej.body)


MSG = {"messages": [{"role": "user", "content": "hi"}]}


def test_no_auth_route_means_no_authenticator() -> None:
    rt = compile_config(
        load_text(
            "providers: [{name: q, type: qwen, api_tokens: [x]}]\n"
            "routes: [{name: r, provider: q}]\n"
        )
    )
    assert make_authenticator(rt) is None


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"authorization": f"Bearer {ALICE}"}, MSG),
        ({"authorization": f"bearer  {ALICE} "}, MSG),
        ({"x-api-key": ALICE}, MSG),
        ({"x-team-key": ALICE}, MSG),
        ({}, {**MSG, "key": ALICE}),
    ],
)
async def test_every_source(
    runtime: Runtime, headers: dict[str, str], body: dict[str, Any]
) -> None:
    a = make_authenticator(runtime)
    assert a is not None
    ctx = ctx_for(runtime, "api.test", body, headers)
    assert await a(ctx) is None
    assert ctx.consumer == "alice"
    assert "key" not in ctx.body


async def test_sources_in_order(runtime: Runtime) -> None:
    a = Authenticator(runtime)
    # authorization comes first: bob's key there wins over alice's in x-api-key.
    ctx = ctx_for(runtime, "api.test", MSG, {"authorization": f"Bearer {BOB}", "x-api-key": ALICE})
    await a(ctx)
    assert ctx.consumer == "bob"


async def test_non_bearer_authorization_is_no_key(runtime: Runtime) -> None:
    a = Authenticator(runtime)
    rej = await a(ctx_for(runtime, "api.test", MSG, {"authorization": f"Basic {ALICE}"}))
    assert isinstance(rej, Reject) and rej.status == 401 and rej.reason == "missing_api_key"


async def test_body_key_stripped_and_marked_modified(runtime: Runtime) -> None:
    a = Authenticator(runtime)
    ctx = ctx_for(runtime, "api.test", {**MSG, "key": ALICE})
    assert await a(ctx) is None
    assert ctx.modified and "key" not in ctx.body
    # Stripped even when another source carried the key, and on a rejection.
    ctx = ctx_for(runtime, "api.test", {**MSG, "key": "junk"}, {"x-api-key": ALICE})
    assert await a(ctx) is None and "key" not in ctx.body
    ctx = ctx_for(runtime, "api.test", {**MSG, "key": "junk"})
    assert isinstance(await a(ctx), Reject) and "key" not in ctx.body


async def test_openai_shapes(runtime: Runtime) -> None:
    a = Authenticator(runtime)
    missing = await a(ctx_for(runtime, "api.test", MSG))
    assert isinstance(missing, Reject) and missing.status == 401
    e = _err(missing)["error"]
    assert e["type"] == "authentication_error" and e["code"] == "missing_api_key"
    unknown = await a(ctx_for(runtime, "api.test", MSG, {"x-api-key": "sk-guess-SECRET"}))
    assert isinstance(unknown, Reject) and unknown.status == 401
    assert _err(unknown)["error"]["code"] == "invalid_api_key"
    assert b"sk-guess-SECRET" not in unknown.body
    forbidden = await a(
        ctx_for(runtime, "api.test", {**MSG, "model": "qwen-turbo"}, {"x-api-key": BOB})
    )
    assert isinstance(forbidden, Reject) and forbidden.status == 403
    e = _err(forbidden)["error"]
    assert e["type"] == "permission_error" and e["code"] == "model_not_allowed"
    assert "'bob'" in e["message"] and "'qwen-turbo'" in e["message"]


async def test_route_not_allowed(runtime: Runtime) -> None:
    a = Authenticator(runtime)
    rej = await a(ctx_for(runtime, "opt.test", {**MSG, "model": "qwen-max"}, {"x-api-key": BOB}))
    assert isinstance(rej, Reject) and rej.status == 403 and rej.reason == "route_not_allowed"
    assert "'optional'" in _err(rej)["error"]["message"]


async def test_model_default_checked_when_absent(runtime: Runtime) -> None:
    a = Authenticator(runtime)
    # bob may use qwen-max only; with no model the provider default qwen-turbo is used.
    rej = await a(ctx_for(runtime, "api.test", MSG, {"x-api-key": BOB}))
    assert isinstance(rej, Reject) and rej.status == 403
    assert (
        await a(ctx_for(runtime, "api.test", {**MSG, "model": "qwen-max"}, {"x-api-key": BOB}))
        is None
    )
    # Bodyless requests (GET /v1/models) involve no model.
    assert (
        await a(ctx_for(runtime, "api.test", None, {"x-api-key": BOB}, path="/v1/models")) is None
    )


@pytest.mark.parametrize("key", [None, "wrong", "", 7, ["x"]])
@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
async def test_ollama_seed_shape(runtime: Runtime, key: object, path: str) -> None:
    body: dict[str, Any] = {"model": "llama3", "prompt": "Why is the sky blue?"}
    if key is not None:
        body["key"] = key
    rej = await Authenticator(runtime)(ctx_for(runtime, "ollama.test", body, path=path))
    assert isinstance(rej, Reject) and rej.status == 401
    assert orjson.loads(rej.body) == {"error": "Invalid or missing API key"}


async def test_ollama_forbidden_shape(runtime: Runtime) -> None:
    body = {"model": "llama3", "prompt": "hi", "key": BOB}
    rej = await Authenticator(runtime)(ctx_for(runtime, "ollama.test", body, path="/api/generate"))
    assert isinstance(rej, Reject) and rej.status == 403
    assert set(orjson.loads(rej.body)) == {"error"}


async def test_ollama_good_key(runtime: Runtime) -> None:
    ctx = ctx_for(
        runtime, "ollama.test", {"model": "llama3", "prompt": "p", "key": ALICE}, path="/api/chat"
    )
    assert await Authenticator(runtime)(ctx) is None
    assert ctx.consumer == "alice" and ctx.body == {"model": "llama3", "prompt": "p"}


async def test_optional_auth(runtime: Runtime) -> None:
    a = Authenticator(runtime)
    ctx = ctx_for(runtime, "opt.test", MSG)
    assert await a(ctx) is None and ctx.consumer is None
    ctx = ctx_for(runtime, "opt.test", MSG, {"authorization": f"Bearer {ALICE}"})
    assert await a(ctx) is None and ctx.consumer == "alice"
    # A wrong key is still wrong where a key is optional.
    rej = await a(ctx_for(runtime, "opt.test", MSG, {"authorization": "Bearer bad"}))
    assert isinstance(rej, Reject) and rej.status == 401
    # No auth on the route: nothing is checked.
    assert await a(ctx_for(runtime, "open.test", MSG)) is None


def test_every_key_compared_constant_time(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_mod.hmac, "compare_digest", spy)
    a = Authenticator(runtime)
    n = len(runtime.consumer_keys)
    for key in (ALICE, BOB, "unknown"):
        calls.clear()
        a.identify(key)
        # No early exit on the first match; digests of equal length only.
        assert len(calls) == n
        assert all(len(x) == len(y) == 32 for x, y in calls)


async def test_no_secret_in_any_message(runtime: Runtime) -> None:
    a = Authenticator(runtime, MemoryBudget(60))
    cases = [
        ctx_for(runtime, "api.test", {**MSG, "key": ALICE + "x"}),
        ctx_for(runtime, "api.test", MSG, {"authorization": f"Bearer {BOB}x"}),
        ctx_for(runtime, "api.test", {**MSG, "model": "m"}, {"x-api-key": BOB}),
        ctx_for(runtime, "opt.test", {**MSG, "model": "qwen-max"}, {"x-api-key": BOB}),
        ctx_for(runtime, "ollama.test", {"prompt": "p", "key": "nope"}, path="/api/generate"),
    ]
    for ctx in cases:
        rej = await a(ctx)
        assert isinstance(rej, Reject)
        text = rej.body.decode() + repr(rej.headers) + rej.reason
        for s in (ALICE, BOB, PROVIDER, "nope"):
            assert s not in text


BUDGET_CONFIG = CONFIG.replace(
    "- name: alice\n  keys:", "- name: alice\n  token_budget: 100\n  keys:"
)


async def test_budget_check_memory() -> None:
    rt = compile_runtime(BUDGET_CONFIG)
    now = [1000.0]
    budget = MemoryBudget(60, clock=lambda: now[0])
    a = Authenticator(rt, budget)
    h = {"x-api-key": ALICE}
    assert await a(ctx_for(rt, "api.test", MSG, h)) is None
    await budget.charge("alice", 100)
    rej = await a(ctx_for(rt, "api.test", MSG, h))
    assert isinstance(rej, Reject) and rej.status == 429
    assert dict(rej.headers)["retry-after"] == "20"  # window [960, 1020)
    assert _err(rej)["error"]["type"] == "rate_limit_error"
    # Ollama shape on an Ollama route.
    rej = await a(ctx_for(rt, "ollama.test", {"prompt": "p", "key": ALICE}, path="/api/generate"))
    assert isinstance(rej, Reject) and rej.status == 429
    assert set(orjson.loads(rej.body)) == {"error"}
    # bob has no budget: never limited.
    assert (
        await a(ctx_for(rt, "api.test", {**MSG, "model": "qwen-max"}, {"x-api-key": BOB})) is None
    )
    now[0] = 1020.0
    assert await a(ctx_for(rt, "api.test", MSG, h)) is None


class _FakeStoreBudget:
    """The RedisBudget interface, in memory, optionally unreachable."""

    window_s = 60.0

    def __init__(self, used: int = 0, down: bool = False, fail_open: bool = False) -> None:
        self.used, self.down, self.fail_open = used, down, fail_open

    async def usage(self, consumer: str) -> Any:
        from extproc.budget import BudgetUnavailable, BudgetUsage

        if self.down:
            raise BudgetUnavailable("budget store unreachable (ConnectionError)")
        return BudgetUsage(self.used, 12.5)

    async def reserve(self, consumer: str, tokens: int, limit: int) -> Any:
        from extproc.budget import Reservation

        usage = await self.usage(consumer)
        if usage.used >= limit or usage.used + tokens > limit:
            return usage
        self.used += tokens
        return Reservation(consumer, 0.0, tokens)


async def test_budget_check_against_a_store() -> None:
    rt = compile_runtime(BUDGET_CONFIG)
    h = {"x-api-key": ALICE}

    async def run(budget: Any) -> Any:
        return await Authenticator(rt, budget)(ctx_for(rt, "api.test", MSG, h))

    # MSG sets no max_tokens: its estimate is its size plus the default 1024,
    # capped at the whole budget (100), so it needs an empty window.
    assert await run(_FakeStoreBudget(used=0)) is None
    rej = await run(_FakeStoreBudget(used=1))
    assert isinstance(rej, Reject) and rej.status == 429
    assert b"1 of its" not in rej.body and b"99 of its 100" in rej.body
    assert await run(_FakeStoreBudget(used=99)) is not None
    rej = await run(_FakeStoreBudget(used=100))
    assert isinstance(rej, Reject) and rej.status == 429
    assert dict(rej.headers)["retry-after"] == "13"
    rej = await run(_FakeStoreBudget(down=True))
    assert isinstance(rej, Reject) and rej.status == 503 and rej.reason == "budget_unavailable"
    assert await run(_FakeStoreBudget(down=True, fail_open=True)) is None
