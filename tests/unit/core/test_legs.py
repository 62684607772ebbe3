"""The upstream legs: which one a request gets, and what each does with the response."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.config.compile import compile_config
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
from extproc.core.events import BodyMode, Reject
from extproc.core.legs import (
    Leg,
    OllamaNativeLeg,
    OpenAICompatLeg,
    PassThroughLeg,
    TranslatedLeg,
    open_leg,
    passthrough,
)
from extproc.core.request import CHAT, EMBEDDINGS, OLLAMA_CHAT, OTHER

CONFIG = """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen-leg]}
- {name: claude, type: claude, api_tokens: [sk-ant-leg]}
- {name: raw, type: qwen, api_tokens: [sk-raw-leg], protocol: original}
- {name: ollama, type: ollama, base_url: "http://ollama.internal:11434"}
routes:
- {name: r-qwen, match: {hosts: [qwen.test]}, provider: qwen}
- {name: r-claude, match: {hosts: [claude.test]}, provider: claude}
- {name: r-raw, match: {hosts: [raw.test]}, provider: raw}
- {name: r-ollama, match: {hosts: [ollama.test]}, provider: ollama, client_api: ollama}
"""


@pytest.fixture(scope="module")
def rt() -> Runtime:
    return compile_config(load_text(CONFIG), env={})


def leg_for(rt: Runtime, route: str, endpoint: str, body: dict[str, Any]) -> Leg:
    r = next(r for r in rt.routes.routes if r.name == route)
    leg = open_leg(r, endpoint, r.providers[0], body)
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
    leg = passthrough(r, r.providers[0])
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
    assert passthrough(r, r.providers[0]).response_mode(403, "application/json", 1024) is (
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
    rej = open_leg(r, CHAT, r.providers[0], {"messages": [], "stream": True})
    assert isinstance(rej, Reject) and rej.status == 400
    assert rej.reason == "streaming_not_allowed"
