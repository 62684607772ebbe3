"""Helpers the unit tests share: compile a config, build request headers, drive
an `Exchange` through the events Envoy sends, read its decisions.

Imported by name (tests/conftest.py puts tests/ on sys.path): `from support import ...`.
"""

from __future__ import annotations

from typing import Any

import orjson
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.config.runtime import RouteRuntime, Runtime
from extproc.core.events import (
    CONTINUE,
    BodyMode,
    Continue,
    Decision,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange

# The consumer key the unit tests' clients send (a key no provider takes).
CLIENT_KEY = "sk-client-gateway-key"


def provider_routes(*names: str) -> str:
    """Config lines of one route per provider: `r-<name>` on host `<name>.test`."""
    return "".join(
        f"- {{name: r-{n}, match: {{hosts: [{n}.test]}}, provider: {n}}}\n" for n in names
    )


# One provider of each kind and a route (host "<kind>.test") to each.
PROVIDERS = """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen]}
- {name: deepseek, type: deepseek, api_tokens: [sk-deepseek], default_model: deepseek-chat}
- name: azure
  type: azure
  host: myres.openai.azure.com
  api_tokens: [az-key]
  options: {deployment: gpt4o-prod, api_version: "2024-06-01"}
- {name: claude, type: claude, api_tokens: [sk-ant], default_model: claude-sonnet-4}
- {name: gemini, type: gemini, api_tokens: [g-key], default_model: gemini-2.0-flash}
- {name: ollama, type: ollama, base_url: "http://ollama.internal:11434", default_model: llama3.2}
routes:
""" + provider_routes("qwen", "deepseek", "azure", "claude", "gemini", "ollama")

# Providers with `protocol: original`: the client's body goes on untouched.
ORIGINAL = """
providers:
- {name: q, type: qwen, api_tokens: [sk-q], protocol: original, default_model: qwen-max}
- {name: c, type: claude, api_tokens: [sk-ant], protocol: original}
- {name: g, type: gemini, api_tokens: [g-key], protocol: original}
routes:
- {name: rq, match: {hosts: [q.test]}, provider: q}
- {name: rc, match: {hosts: [c.test]}, provider: c}
- {name: rg, match: {hosts: [g.test]}, provider: g}
"""

# An OpenAI chat body with a system and a user message.
CHAT: dict[str, Any] = {
    "model": "m-client",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello?"},
    ],
}


def runtime(text: str, env: dict[str, str] | None = None) -> Runtime:
    """The compiled config (no process environment: `env` only)."""
    return compile_config(load_text(text), env=env or {})


def route(rt: Runtime, name: str) -> RouteRuntime:
    return next(r for r in rt.routes.routes if r.name == name)


def request_headers(host: str, path: str = "/v1/chat/completions", **extra: str) -> dict[str, str]:
    """A client's POST with a JSON body (no key: add one in `extra`)."""
    return {
        ":authority": host,
        ":path": path,
        ":method": "POST",
        "content-type": "application/json",
        **extra,
    }


def req_headers(host: str, path: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """`request_headers` with the client's Bearer key and a request id."""
    return request_headers(
        host,
        path,
        **{":scheme": "http", "authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "req-1"},
        **(extra or {}),
    )


async def send_request(ex: Exchange, headers: dict[str, str], body: Any) -> Decision:
    """Request headers (which must be answered CONTINUE), then the whole body."""
    d = await ex.handle(RequestHeaders(headers, False))
    assert d == CONTINUE, d
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return await ex.handle(RequestBody(raw, True))


async def send(
    ex: Exchange,
    host: str,
    body: Any,
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
) -> Decision:
    """A request with the client's Bearer key to `host`."""
    return await send_request(ex, req_headers(host, path, headers), body)


def hdrs(d: Decision) -> dict[str, str]:
    """The headers a Continue sets."""
    assert isinstance(d, Continue), d
    return dict(d.set_headers)


def upstream_body(d: Decision, sent: Any) -> Any:
    """The JSON body the provider receives after this decision."""
    assert isinstance(d, Continue), d
    raw = d.body if d.body is not None else orjson.dumps(sent)
    return orjson.loads(raw)


async def answer(
    ex: Exchange,
    status: int,
    body: bytes,
    ctype: str = "application/json",
    parts: int = 1,
    extra: dict[str, str] | None = None,
) -> tuple[Decision, Decision]:
    """Response headers then a buffered body (optionally in several parts)."""
    hd = await ex.handle(
        ResponseHeaders({":status": str(status), "content-type": ctype, **(extra or {})}, False)
    )
    assert isinstance(hd, Continue)
    assert hd.mode is not None and hd.mode.response_body is BodyMode.BUFFERED, hd
    step = max(1, -(-len(body) // parts))
    pieces = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    last: Decision = CONTINUE
    for i, p in enumerate(pieces):
        last = await ex.handle(ResponseBody(p, i == len(pieces) - 1))
        if i < len(pieces) - 1:
            assert last == CONTINUE
    return hd, last


def client_body(d: Decision, upstream: bytes) -> Any:
    """The JSON body the client receives after this decision."""
    assert isinstance(d, Continue), d
    return orjson.loads(d.body if d.body is not None else upstream)


def error_of(d: Decision) -> dict[str, Any]:
    """The `error` object of a Reject's JSON body (OpenAI's or Anthropic's shape)."""
    assert isinstance(d, Reject), d
    body = orjson.loads(d.body)
    return body["error"]  # type: ignore[no-any-return]


def pb_headers(headers: dict[str, str], end_of_stream: bool = False) -> ep.HttpHeaders:
    """Headers as Envoy sends them over ext_proc (raw_value bytes)."""
    return ep.HttpHeaders(
        headers=base_pb2.HeaderMap(
            headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items()]
        ),
        end_of_stream=end_of_stream,
    )
