"""Inputs and failures nothing else checks for: the client always gets a JSON
error in its API's shape, never Envoy's empty 500 (issue 22, items 6 and 7)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.core.events import CONTINUE, Continue, Reject, RequestBody, RequestHeaders
from extproc.core.exchange import Exchange
from extproc.core.parse import MAX_JSON_DEPTH
from extproc.core.request import RequestContext

CONFIG = """
providers:
- {name: deepseek, type: deepseek, api_tokens: [sk-deepseek], default_model: deepseek-chat}
- {name: claude, type: claude, api_tokens: [sk-ant], default_model: claude-sonnet-4}
- {name: ollama, type: ollama, base_url: "http://ollama.internal:11434", default_model: llama3.2}
routes:
- {name: r-openai, match: {hosts: [openai.test]}, provider: deepseek}
- {name: r-claude, match: {hosts: [anthropic.test]}, provider: claude, client_api: anthropic}
- {name: r-ollama, match: {hosts: [ollama.test]}, provider: ollama, client_api: ollama}
"""

PATHS = {
    "openai.test": "/v1/chat/completions",
    "anthropic.test": "/v1/messages",
    "ollama.test": "/api/chat",
}


def nested(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth - 1):
        v = [v]
    return v


async def send(ex: Exchange, host: str, body: bytes) -> Any:
    h = {
        ":authority": host,
        ":path": PATHS[host],
        ":method": "POST",
        "content-type": "application/json",
        "x-request-id": "req-faults-1",
    }
    assert await ex.handle(RequestHeaders(h, False)) == CONTINUE
    return await ex.handle(RequestBody(body, True))


def body_with(extra: dict[str, Any], host: str = "openai.test") -> bytes:
    msgs = [{"role": "user", "content": "hi"}]
    b: dict[str, Any] = {"messages": msgs, **extra}
    if host == "anthropic.test":
        b.setdefault("max_tokens", 10)
    return orjson.dumps(b) if "deep" not in extra else _raw_deep(b)


def _raw_deep(b: dict[str, Any]) -> bytes:
    # Deeper than orjson writes, so written by hand: {"...", "deep": [[[...1...]]]}.
    depth = b.pop("deep")
    head = orjson.dumps(b)[:-1]
    return head + b',"deep":' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 1000])
async def test_a_body_nested_deeper_than_the_gateway_writes_is_a_400_naming_the_limit(
    depth: int,
) -> None:
    rt = compile_config(load_text(CONFIG))
    # No model: the leg fills the default and writes the body again.
    d = await send(Exchange(rt), "openai.test", body_with({"deep": depth}))
    assert isinstance(d, Reject), d
    assert d.status == 400
    err = orjson.loads(d.body)["error"]
    assert str(MAX_JSON_DEPTH) in err["message"] and err["code"] == "body_too_deep"


async def test_a_deep_body_is_a_400_also_where_the_leg_would_forward_it_unchanged() -> None:
    rt = compile_config(load_text(CONFIG))
    raw = body_with({"model": "deepseek-chat", "deep": 400})
    d = await send(Exchange(rt), "openai.test", raw)
    assert isinstance(d, Reject) and d.status == 400, d


async def test_many_brackets_that_do_not_nest_deep_are_served() -> None:
    rt = compile_config(load_text(CONFIG))
    raw = body_with({"model": "deepseek-chat", "wide": [[1]] * 500})
    assert isinstance(await send(Exchange(rt), "openai.test", raw), Continue)


async def test_a_body_at_the_limit_is_served() -> None:
    rt = compile_config(load_text(CONFIG))
    d = await send(Exchange(rt), "openai.test", body_with({"deep": MAX_JSON_DEPTH - 2}))
    assert isinstance(d, Continue), d


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        (7, "an integer"),
        (1.5, "a decimal"),
        (True, "a boolean"),
        ([], "an array"),
        ({}, "an object"),
    ],
)
@pytest.mark.parametrize("host", ["openai.test", "anthropic.test", "ollama.test"])
async def test_a_model_that_is_not_a_string_is_a_400(model: Any, kind: str, host: str) -> None:
    rt = compile_config(load_text(CONFIG))
    d = await send(Exchange(rt), host, body_with({"model": model}, host))
    assert isinstance(d, Reject), d
    assert d.status == 400
    err = orjson.loads(d.body)
    msg = f"Invalid type for 'model': expected a string, but got {kind} instead."
    if host == "openai.test":
        assert err["error"]["message"] == msg
        assert err["error"]["type"] == "invalid_request_error"
    elif host == "anthropic.test":
        assert err["type"] == "error" and err["error"]["message"] == msg
    else:
        assert err == {"error": msg}


async def test_a_null_model_is_the_routes_default() -> None:
    rt = compile_config(load_text(CONFIG))
    d = await send(Exchange(rt), "openai.test", body_with({"model": None}))
    assert isinstance(d, Continue), d
    assert orjson.loads(d.body or b"{}")["model"] == "deepseek-chat"


@pytest.mark.parametrize("host", ["openai.test", "anthropic.test", "ollama.test"])
async def test_an_unexpected_exception_answers_in_the_clients_shape_and_logs_the_request_id(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    rt = compile_config(load_text(CONFIG))
    done = []

    async def broken(ctx: RequestContext) -> Reject | None:
        raise KeyError("something nobody expected")

    ex = Exchange(rt, done.append, broken)
    with caplog.at_level(logging.ERROR, logger="extproc.exchange"):
        d = await send(ex, host, body_with({}, host))
    assert isinstance(d, Reject), d
    assert d.status == 500 and d.body
    err = orjson.loads(d.body)
    if host == "openai.test":
        assert err["error"]["code"] == "internal_error"
        assert "req-faults-1" in err["error"]["message"]
    elif host == "anthropic.test":
        assert err["type"] == "error" and err["error"]["type"] == "api_error"
    else:
        assert "req-faults-1" in err["error"]
    (line,) = [r.getMessage() for r in caplog.records if "exchange failed" in r.getMessage()]
    assert "req-faults-1" in line and "KeyError" in line and "request_body" in line
    # The request is reported once, as a failure.
    (rec,) = done
    assert rec.status == 500 and rec.blocked_reason == "internal_error"


# -- the provider's timeout bounds Envoy's upstream attempt (item 5) -------------

TIMEOUTS = """
providers:
- {name: fast, type: qwen, api_tokens: [sk-f], timeout: 2.5s}
- {name: slow, type: qwen, api_tokens: [sk-s], timeout: 40s}
- {name: usual, type: qwen, api_tokens: [sk-u]}
routes:
- {name: plain, match: {hosts: [plain.test]}, provider: fast}
- {name: usual, match: {hosts: [usual.test]}, provider: usual}
- {name: chain, match: {hosts: [chain.test]}, provider: fast, fallback: [slow]}
- name: bounded
  match: {hosts: [bounded.test]}
  provider: fast
  fallback: [slow]
  retry: {per_try_timeout: 7s}
"""
TIMEOUT_HEADER = "x-envoy-upstream-rq-per-try-timeout-ms"


async def sent_headers(host: str, body: bytes | None = None) -> dict[str, str]:
    rt = compile_config(load_text(TIMEOUTS))
    ex = Exchange(rt)
    h = {":authority": host, ":path": "/v1/chat/completions", ":method": "POST"}
    h["content-type"] = "application/json"
    if body is None:
        h.update({":method": "GET", ":path": "/v1/models"})
        d = await ex.handle(RequestHeaders(h, True))
    else:
        assert await ex.handle(RequestHeaders(h, False)) == CONTINUE
        d = await ex.handle(RequestBody(body, True))
    assert isinstance(d, Continue), d
    return dict(d.set_headers)


@pytest.mark.parametrize(
    ("host", "want"),
    [
        ("plain.test", "2500"),  # the provider's timeout
        ("usual.test", "120000"),  # its default, 120 s
        ("chain.test", "40000"),  # a fallback chain: the longest of its providers'
        ("bounded.test", None),  # the route's retry.per_try_timeout, in Envoy's route
    ],
)
async def test_the_upstream_attempt_gets_the_providers_timeout(host: str, want: str | None) -> None:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert (await sent_headers(host, body)).get(TIMEOUT_HEADER) == want
    # A request without a body (GET /v1/models) too.
    assert (await sent_headers(host)).get(TIMEOUT_HEADER) == want


async def test_an_attempt_after_envoys_router_sets_no_timeout_header() -> None:
    from extproc.core.attempt import Attempt

    rt = compile_config(load_text(TIMEOUTS))
    ex = Exchange(rt, attempt=Attempt("slow"))
    meta = {"llm_extproc": {"fallback": "chain", "path": "/v1/chat/completions"}}
    h = {":authority": "llm-fallback", ":path": "/v1/chat/completions"}
    h["content-type"] = "application/json"
    assert await ex.handle(RequestHeaders(h, False, meta)) == CONTINUE
    d = await ex.handle(RequestBody(b'{"messages":[{"role":"user","content":"hi"}]}', True))
    assert isinstance(d, Continue), d
    assert TIMEOUT_HEADER not in dict(d.set_headers)  # it would go to the provider
