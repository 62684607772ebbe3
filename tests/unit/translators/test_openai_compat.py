from __future__ import annotations

import orjson
import pytest

from extproc.translators.base import ProviderTarget
from extproc.translators.registry import PROVIDER_CATALOG, spec_of
from extproc.usage import Usage


def _t(type_: str = "openai", **kw: object) -> ProviderTarget:
    spec = PROVIDER_CATALOG[type_]
    base = {
        "type": type_,
        "host": spec.host or "h",
        "base_path": spec.base_path,
        "api_key": "k",
        "model": "m",
        "stream": False,
    }
    base.update(kw)
    return ProviderTarget(**base)  # type: ignore[arg-type]


def test_request_from_fixture(load, make_target) -> None:
    fx = load("openai", "chat_request.json")
    req = spec_of("openai").translator.chat_request(fx["openai_request"], make_target(fx["target"]))
    assert req.path == "/v1/chat/completions"
    assert ("authorization", "Bearer sk-test") in req.headers
    assert orjson.loads(req.body) == fx["expected_upstream"]
    assert fx["openai_request"]["model"] == "gpt"  # caller's dict not mutated


@pytest.mark.parametrize(
    ("type_", "path"),
    [
        ("qwen", "/compatible-mode/v1/chat/completions"),
        ("dashscope", "/compatible-mode/v1/chat/completions"),
        ("deepseek", "/chat/completions"),
        ("groq", "/openai/v1/chat/completions"),
        ("zhipuai", "/api/paas/v4/chat/completions"),
        ("openrouter", "/api/v1/chat/completions"),
        ("fireworks", "/inference/v1/chat/completions"),
        ("moonshot", "/v1/chat/completions"),
    ],
)
def test_compat_paths(type_: str, path: str) -> None:
    req = spec_of(type_).translator.chat_request({"messages": []}, _t(type_))
    assert req.path == path
    assert spec_of(type_).translator.name == type_


def test_no_key_means_no_auth_header_and_model_kept() -> None:
    req = spec_of("vllm").translator.chat_request(
        {"model": "mine", "messages": []}, _t("vllm", api_key="", model="")
    )
    assert not any(k == "authorization" for k, _ in req.headers)
    assert orjson.loads(req.body)["model"] == "mine"


def test_include_usage_setting_off_and_non_stream() -> None:
    tr = spec_of("openai").translator
    off = tr.chat_request({"messages": []}, _t(stream=True, settings={"include_usage": False}))
    assert "stream_options" not in orjson.loads(off.body)
    plain = tr.chat_request({"messages": [], "stream": True}, _t(stream=False))
    body = orjson.loads(plain.body)
    assert body["stream"] is False
    assert "stream_options" not in body


def test_client_stream_options_kept_and_forced_on() -> None:
    req = spec_of("openai").translator.chat_request(
        {"messages": [], "stream_options": {"include_usage": False, "x": 1}}, _t(stream=True)
    )
    assert orjson.loads(req.body)["stream_options"] == {"include_usage": True, "x": 1}


def test_response_passthrough_and_usage(load) -> None:
    fx = load("openai", "chat_response.json")
    body = orjson.dumps(fx["body"])
    res = spec_of("openai").translator.chat_response(200, body, _t())
    assert res.body is body
    assert res.usage == Usage(*fx["expected"]["usage"])
    assert res.model == fx["expected"]["model"]


@pytest.mark.parametrize("seed", [None, 1, 2, 3, 4, 5])
def test_stream_passthrough_is_byte_identical(load, feed_split, seed) -> None:
    raw = load("openai", "stream.sse")
    st = spec_of("openai").translator.chat_stream(_t(stream=True), include_usage=True)
    assert feed_split(st, raw, seed) == raw
    assert st.usage == Usage(9, 4, 13)
    assert st.model == "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize("seed", [None, 7, 8, 9])
def test_stream_drops_usage_chunk_client_did_not_ask_for(load, feed_split, events, seed) -> None:
    raw = load("openai", "stream.sse")
    st = spec_of("openai").translator.chat_stream(_t(stream=True), include_usage=False)
    out = feed_split(st, raw, seed)
    evs = events(out)
    assert evs[-1] == "[DONE]"
    assert len(evs) == 4  # 3 content chunks + [DONE]; the usage-only chunk is gone
    assert all("usage" not in e or e["usage"] is None for e in evs[:-1])
    assert evs[1]["choices"][0]["delta"]["content"] == "Héllo 世界"
    assert st.usage == Usage(9, 4, 13)  # still metered


def test_stream_not_dropped_when_usage_not_requested_upstream(load) -> None:
    raw = load("openai", "stream.sse")
    st = spec_of("openai").translator.chat_stream(
        _t(stream=True, settings={"include_usage": False}), include_usage=False
    )
    assert st.feed(raw) == raw


def test_error_already_openai_shape_kept(load) -> None:
    fx = load("openai", "error.json")
    body = orjson.dumps(fx["body"])
    assert spec_of("openai").translator.error_response(429, body) == body


def test_error_foreign_shape_normalised() -> None:
    out = orjson.loads(spec_of("zhipuai").translator.error_response(401, b'{"message":"bad key"}'))
    assert out["error"]["message"] == "bad key"
    assert out["error"]["type"] == "authentication_error"
    text = orjson.loads(spec_of("groq").translator.error_response(502, b"Bad Gateway"))
    assert text["error"] == {
        "message": "Bad Gateway",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_error_response_maps_a_vendor_shape_to_openai() -> None:
    out = orjson.loads(spec_of("deepseek").translator.error_response(500, b'{"msg":"x"}'))
    assert out["error"]["type"] == "server_error"


def test_embeddings_passthrough() -> None:
    tr = spec_of("mistral").translator
    req = tr.embeddings_request({"model": "x", "input": "hi"}, _t("mistral", model="mistral-embed"))
    assert req.path == "/v1/embeddings"
    assert orjson.loads(req.body) == {"model": "mistral-embed", "input": "hi"}
    body = (
        b'{"object":"list","data":[],"model":"mistral-embed",'
        b'"usage":{"prompt_tokens":3,"total_tokens":3}}'
    )
    res = tr.embeddings_response(200, body, _t("mistral"))
    assert res.usage == Usage(3, 0, 3)
    assert res.body == body
