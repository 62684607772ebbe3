"""Cloud legs: SigV4 over the final request, cached tokens, hosted Claude."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
from extproc.core.events import BodyMode, Continue, Reject
from extproc.core.legs import Leg, TranslatedLeg
from extproc.core.legs_anthropic import AnthropicHostedLeg, AnthropicTranslatedLeg
from extproc.core.pick import open_leg as pick
from extproc.core.request import ANTHROPIC_MESSAGES, CHAT, EMBEDDINGS, RequestContext
from fake_cloud import verify_sigv4

AK, SK = "AKIDLEG", "leg-secret"
CONFIG = f"""
providers:
- name: br
  type: bedrock
  options: {{region: us-east-1}}
  aws: {{access_key_id: {AK}, secret_access_key: {SK}}}
  default_model: "us.anthropic.claude-3-haiku-20240307-v1:0"
  custom_settings: [{{name: max_tokens, value: 77}}]
- name: vx
  type: vertex
  options: {{project: proj-1, region: us-east5}}
  default_model: gemini-2.0-flash
routes:
- {{name: br, match: {{hosts: [br.test]}}, provider: br, client_api: auto}}
- {{name: br-keep, match: {{hosts: [keep.test]}}, provider: br, rewrite: false}}
- {{name: vx, match: {{hosts: [vx.test]}}, provider: vx, client_api: auto}}
"""


@pytest.fixture(scope="module")
def rt() -> Runtime:
    return compile_config(load_text(CONFIG), env={})


def _route(rt: Runtime, name: str) -> Any:
    return next(r for r in rt.routes.routes if r.name == name)


def open_leg(route: Any, endpoint: str, prov: Any, body: dict[str, Any]) -> Any:
    return pick(RequestContext(route, {}, endpoint, body), prov)


open_anthropic_leg = open_leg


def _ctx(route: Any, endpoint: str, body: dict[str, Any], authority: str, path: str) -> Any:
    headers = {
        ":method": "POST",
        ":authority": authority,
        ":path": path,
        "authorization": "Bearer ck",
    }
    return RequestContext(route, headers, endpoint, body)


CHAT_BODY = {"messages": [{"role": "user", "content": "hi"}]}


def _headers(d: Continue) -> dict[str, str]:
    return dict(d.set_headers)


def test_bedrock_request_is_signed_over_the_final_body_authority_and_path(rt: Runtime) -> None:
    route = _route(rt, "br")
    leg = open_leg(route, CHAT, route.providers[0], CHAT_BODY)
    assert isinstance(leg, TranslatedLeg)
    d = leg.request(_ctx(route, CHAT, CHAT_BODY, "br.test", "/v1/chat/completions"), b"")
    h = _headers(d)
    assert h[":authority"] == "bedrock-runtime.us-east-1.amazonaws.com"
    assert h[":path"] == "/model/us.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert d.body is not None
    # Custom settings were applied before signing: the signature covers them.
    max_tokens = orjson.loads(d.body)["inferenceConfig"]["maxTokens"]
    assert max_tokens == 77 and isinstance(max_tokens, int)  # not 77.0: Converse wants an integer
    got = {"host": h[":authority"], **h}
    assert verify_sigv4("POST", h[":path"], got, d.body, AK, SK, "us-east-1") == ""
    assert "authorization" not in d.remove_headers  # replaced by the signature, not removed


def test_without_rewrite_the_clients_authority_and_path_are_signed(rt: Runtime) -> None:
    route = _route(rt, "br-keep")
    leg = open_leg(route, CHAT, route.providers[0], CHAT_BODY)
    assert isinstance(leg, Leg)
    d = leg.request(_ctx(route, CHAT, CHAT_BODY, "keep.test", "/v1/chat/completions"), b"")
    h = _headers(d)
    assert ":authority" not in h and d.body is not None
    got = {"host": "keep.test", **h}
    assert verify_sigv4("POST", "/v1/chat/completions", got, d.body, AK, SK, "us-east-1") == ""


def test_bedrock_embeddings_are_signed(rt: Runtime) -> None:
    route = _route(rt, "br")
    body = {"model": "amazon.titan-embed-text-v2:0", "input": "x"}
    leg = open_leg(route, EMBEDDINGS, route.providers[0], body)
    assert isinstance(leg, TranslatedLeg)
    d = leg.request(_ctx(route, EMBEDDINGS, body, "br.test", "/v1/embeddings"), b"")
    h = _headers(d)
    assert d.body is not None
    assert (
        verify_sigv4(
            "POST", h[":path"], {"host": h[":authority"], **h}, d.body, AK, SK, "us-east-1"
        )
        == ""
    )


def test_event_stream_answers_are_streamed(rt: Runtime) -> None:
    route = _route(rt, "br")
    leg = open_leg(route, CHAT, route.providers[0], {**CHAT_BODY, "stream": True})
    assert isinstance(leg, Leg)
    assert (
        leg.response_mode(200, "application/vnd.amazon.eventstream", 1 << 20) == BodyMode.STREAMED
    )
    assert leg.stream is not None and leg.stream.content_type == "text/event-stream"


def test_anthropic_client_to_claude_on_bedrock_is_hosted_else_composed(rt: Runtime) -> None:
    route = _route(rt, "br")
    prov = route.providers[0]
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    assert isinstance(open_anthropic_leg(route, ANTHROPIC_MESSAGES, prov, body), AnthropicHostedLeg)
    other = {**body, "model": "meta.llama3-1-8b-instruct-v1:0"}
    assert isinstance(
        open_anthropic_leg(route, ANTHROPIC_MESSAGES, prov, other), AnthropicTranslatedLeg
    )


def test_vertex_without_a_token_is_a_503_in_the_clients_shape(rt: Runtime) -> None:
    route = _route(rt, "vx")
    prov = route.providers[0]
    rej = open_leg(route, CHAT, prov, CHAT_BODY)
    assert isinstance(rej, Reject) and rej.status == 503
    assert orjson.loads(rej.body)["error"]["code"] == "no_upstream_credentials"
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    rej = open_anthropic_leg(route, ANTHROPIC_MESSAGES, prov, body)
    assert isinstance(rej, Reject) and rej.status == 503
    assert orjson.loads(rej.body)["type"] == "error"


def test_vertex_token_from_the_cache_goes_in_as_bearer(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = _route(rt, "vx")
    prov = route.providers[0]
    monkeypatch.setattr(prov.upstream_auth.source, "current", lambda: "ya29.cached")  # type: ignore[union-attr]
    leg = open_leg(route, CHAT, prov, CHAT_BODY)
    assert isinstance(leg, Leg)
    d = leg.request(_ctx(route, CHAT, CHAT_BODY, "vx.test", "/v1/chat/completions"), b"")
    assert _headers(d)["authorization"] == "Bearer ya29.cached"
    # A provider echoing the token in an error never shows it to the client.
    out = leg.response(401, b'{"error":{"message":"bad token ya29.cached","code":401}}')
    assert b"ya29.cached" not in out.body
