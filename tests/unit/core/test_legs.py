"""The upstream legs: which one a request gets, and what each does with the response."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from extproc.client_apis.registry import OPENAI
from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
from extproc.core.events import BodyMode, Reject
from extproc.core.legs import (
    Leg,
    OllamaNativeLeg,
    OpenAICompatLeg,
    PassThroughLeg,
    TranslatedLeg,
    passthrough,
)
from extproc.core.pick import open_leg
from extproc.core.request import CHAT, EMBEDDINGS, OLLAMA_CHAT, OTHER, RequestContext
from extproc.translators.base import ProviderSpec
from extproc.translators.openai_compat import OpenAICompatTranslator
from support import provider_routes, runtime
from support import route as route_named

CONFIG = (
    """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen-leg]}
- {name: claude, type: claude, api_tokens: [sk-ant-leg]}
- {name: raw, type: qwen, api_tokens: [sk-raw-leg], protocol: original}
- {name: ollama, type: ollama, base_url: "http://ollama.internal:11434"}
routes:
"""
    + provider_routes("qwen", "claude", "raw")
    + """
- {name: r-ollama, match: {hosts: [ollama.test]}, provider: ollama, client_api: ollama}
"""
)


@pytest.fixture(scope="module")
def rt() -> Runtime:
    return runtime(CONFIG)


def leg_for(rt: Runtime, route: str, endpoint: str, body: dict[str, Any]) -> Leg:
    r = route_named(rt, route)
    leg = open_leg(RequestContext(r, {}, endpoint, body), r.providers[0])
    assert isinstance(leg, Leg), leg
    return leg


@pytest.mark.parametrize(
    ("route", "endpoint", "kind"),
    [
        ("r-qwen", CHAT, OpenAICompatLeg),
        ("r-qwen", EMBEDDINGS, TranslatedLeg),
        ("r-qwen", OTHER, PassThroughLeg),
        ("r-claude", CHAT, TranslatedLeg),
        ("r-raw", CHAT, PassThroughLeg),
        ("r-ollama", OLLAMA_CHAT, OllamaNativeLeg),
    ],
)
def test_one_leg_per_request_by_endpoint_and_provider(
    rt: Runtime, route: str, endpoint: str, kind: type[Leg]
) -> None:
    assert type(leg_for(rt, route, endpoint, {"messages": []})) is kind


def test_embeddings_leg_reads_embeddings_responses(rt: Runtime) -> None:
    leg = leg_for(rt, "r-qwen", EMBEDDINGS, {"input": "x"})
    assert isinstance(leg, TranslatedLeg) and leg.embeddings


def test_a_provider_error_is_mapped_once_by_the_leg(rt: Runtime) -> None:
    # A vendor error shape becomes OpenAI's; the translator only handles success.
    leg = leg_for(rt, "r-qwen", CHAT, {"messages": []})
    out = leg.response(500, b'{"msg":"x"}')
    assert out.usage is None
    assert orjson.loads(out.body)["error"]["type"] == "server_error"


def test_an_echoed_provider_key_is_redacted(rt: Runtime) -> None:
    leg = leg_for(rt, "r-claude", CHAT, {"messages": []})
    body = (
        b'{"type":"error","error":{"type":"authentication_error","message":"bad key sk-ant-leg"}}'
    )
    out = leg.response(401, body)
    assert b"sk-ant-leg" not in out.body
    assert b"[redacted]" in out.body


def test_ollama_native_errors_keep_ollamas_shape(rt: Runtime) -> None:
    leg = leg_for(rt, "r-ollama", OLLAMA_CHAT, {"messages": []})
    out = leg.response(404, b'{"error":"model \\"x\\" not found"}')
    assert orjson.loads(out.body) == {"error": 'model "x" not found'}


def test_passthrough_streams_the_answer_with_the_providers_keys_replaced(rt: Runtime) -> None:
    # Issue 18: a provider that echoes its key in a relayed answer must not
    # show it to the client, so pass-through answers are read (streamed).
    r = next(r for r in rt.routes.routes if r.name == "r-qwen")
    key = r.providers[0].tokens.pick()  # type: ignore[union-attr]
    leg = passthrough(r, r.providers[0], OPENAI)
    assert isinstance(leg, PassThroughLeg)
    assert leg.response_mode(200, "application/json", 1024) is BodyMode.STREAMED
    st = leg.stream
    assert st is not None and st.content_type == "application/json"
    data = b'{"data":[{"id":"m","owner":"' + key.encode() + b'"}]}'
    # Split inside the key: the tap holds back what may be its start.
    cut = data.index(key.encode()) + 3
    out = st.feed(data[:cut]) + st.feed(data[cut:]) + st.finish()
    assert key.encode() not in out and b"[redacted]" in out
    assert out.replace(b"[redacted]", key.encode()) == data
    # Errors are buffered: their body says whether the key is refused.
    assert passthrough(r, r.providers[0], OPENAI).response_mode(403, "application/json", 1024) is (
        BodyMode.BUFFERED
    )


def test_a_stream_is_opened_only_for_a_streamed_success(rt: Runtime) -> None:
    leg = leg_for(rt, "r-qwen", CHAT, {"messages": [], "stream": True})
    assert leg.response_mode(429, "application/json", 1024) is BodyMode.BUFFERED
    assert leg.stream is None
    assert leg.response_mode(200, "text/event-stream", 1024) is BodyMode.STREAMED
    assert leg.stream is not None


def test_streaming_policy_is_checked_when_the_leg_is_picked() -> None:
    rt = compile_config(
        load_text(CONFIG.replace("provider: qwen}", "provider: qwen, allow_streaming: false}")),
        env={},
    )
    r = next(r for r in rt.routes.routes if r.name == "r-qwen")
    rej = open_leg(RequestContext(r, {}, CHAT, {"messages": [], "stream": True}), r.providers[0])
    assert isinstance(rej, Reject) and rej.status == 400
    assert rej.reason == "streaming_not_allowed"


@pytest.mark.parametrize("provider_type", ["deepseek", "claude"])
def test_embeddings_to_a_provider_without_them_is_a_400_in_the_clients_shape(
    provider_type: str,
) -> None:
    rt = compile_config(
        load_text(
            f"providers: [{{name: p, type: {provider_type}, api_tokens: [sk-emb]}}]\n"
            "routes: [{name: r, match: {hosts: [emb.test]}, provider: p}]\n"
        ),
        env={},
    )
    r = rt.routes.routes[0]
    rej = open_leg(RequestContext(r, {}, EMBEDDINGS, {"input": "hi", "model": "m"}))
    assert isinstance(rej, Reject) and rej.status == 400
    assert rej.reason == "embeddings_unsupported"
    err = orjson.loads(rej.body)["error"]  # OpenAI's shape: the client's
    assert err["code"] == "embeddings_unsupported" and "'p'" in err["message"]
    assert err["type"] == "invalid_request_error"


def test_ollama_streams_ndjson_whatever_its_content_type_says(rt: Runtime) -> None:
    leg = leg_for(rt, "r-ollama", OLLAMA_CHAT, {"model": "m", "messages": []})
    assert leg.response_mode(200, "application/json", 1024) is BodyMode.STREAMED
    qwen = leg_for(rt, "r-qwen", CHAT, {"messages": [], "stream": True})
    assert qwen.response_mode(200, "application/json", 1024) is BodyMode.BUFFERED


class FakeSigner:
    """A provider that signs each request (as SigV4 does): headers from the final body."""

    optional = False
    header_names = ("x-signature",)

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes | None]] = []

    def headers(self, api_key: str) -> tuple[tuple[str, str], ...]:
        return ()

    def sign(
        self, target: Any, path: str, headers: tuple[tuple[str, str], ...], body: bytes | None
    ) -> tuple[tuple[str, str], ...]:
        self.seen.append((path, body))
        return (("x-signature", f"sig-{len(body or b'')}"),)


def test_a_signing_provider_signs_the_final_request(rt: Runtime) -> None:
    signer = FakeSigner()
    spec = ProviderSpec(
        type="signed",
        translator=OpenAICompatTranslator("signed"),
        wire="openai",
        host="signed.test",
        base_path="/v1",
        auth=signer,
        native_apis=frozenset({"openai"}),
        embeddings=True,
    )
    r = route_named(rt, "r-qwen")
    prov = dataclasses.replace(r.providers[0], spec=spec, host="signed.test", base_path="/v1")
    leg = open_leg(RequestContext(r, {}, CHAT, {"messages": [], "stream": True}), prov)
    assert isinstance(leg, OpenAICompatLeg)
    d = leg.request(RequestContext(r, {}, CHAT, {"messages": [], "stream": True}), b"{}")
    # Signed last: the body it saw is the one sent (stream_options added).
    assert d.body is not None and b"include_usage" in d.body
    assert signer.seen == [("/v1/chat/completions", d.body)]
    assert ("x-signature", f"sig-{len(d.body)}") in d.set_headers
    assert not any(k == "authorization" for k, _ in d.set_headers)
