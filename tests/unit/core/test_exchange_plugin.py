"""The ASM plugin's behaviour, on the sans-IO exchange (no gRPC, no Envoy)."""

from __future__ import annotations

import orjson
import pytest

from extproc.config.runtime import Runtime
from extproc.core.events import (
    SKIP,
    BodyMode,
    Continue,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, ExchangeRecord, Phase, PhaseError
from support import request_headers, send_request
from support import runtime as compile_runtime

KEY = "sk-plugin-SECRET-1"
PLUGIN = f"""
hosts: ["dashscope.aliyuncs.com", "127.0.0.1:18000", "api.example.com"]
api_key: "{KEY}"
allow_patterns: []
deny_patterns: [".*账号.*", "(a+)+$"]
default_model: qwen-turbo
"""


def runtime(text: str = PLUGIN) -> Runtime:
    return compile_runtime(text)


def headers(
    host: str = "dashscope.aliyuncs.com", path: str = "/v1/chat/completions", **extra: str
) -> dict[str, str]:
    return request_headers(host, path, **extra)


async def send(
    rt: Runtime, body: bytes | dict, h: dict[str, str] | None = None
) -> tuple[Exchange, object]:
    ex = Exchange(rt)
    return ex, await send_request(ex, h or headers(), body)


def chat(*contents: object, **fields: object) -> dict:
    return {"messages": [{"role": "user", "content": c} for c in contents], **fields}


async def test_unmatched_host_is_refused_in_the_apis_shape() -> None:
    ex = Exchange(runtime())
    d = await ex.handle(RequestHeaders(headers(host="other.com"), False))
    assert isinstance(d, Reject) and d.status == 404 and d.reason == "no_route"
    assert orjson.loads(d.body)["error"]["code"] == "no_route"
    assert ex.phase is Phase.DONE


async def test_unmatched_host_skips_every_later_phase_when_configured() -> None:
    ex = Exchange(runtime(PLUGIN + "---\nunmatched: pass_through\n"))
    d = await ex.handle(RequestHeaders(headers(host="other.com"), False))
    assert d is SKIP
    assert d.mode is not None and d.mode.response_headers_skip
    assert d.mode.request_body is BodyMode.NONE and d.mode.response_body is BodyMode.NONE
    assert ex.phase is Phase.DONE


@pytest.mark.parametrize(
    "host",
    [
        "dashscope.aliyuncs.com",
        "DashScope.Aliyuncs.com",
        "dashscope.aliyuncs.com:443",
        "dashscope.aliyuncs.com:80",
        # A host listed without a port matches on any port (issue #11).
        "dashscope.aliyuncs.com:8443",
        "127.0.0.1:18000",
    ],
)
async def test_host_match_exact_with_port_and_any_port(host: str) -> None:
    ex = Exchange(runtime())
    assert await ex.handle(RequestHeaders(headers(host=host), False)) is not SKIP


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:18001", "x.dashscope.aliyuncs.com", "dashscope.aliyuncs.com.evil"],
)
async def test_host_must_match_exactly(host: str) -> None:
    ex = Exchange(runtime())
    d = await ex.handle(RequestHeaders(headers(host=host), False))
    assert isinstance(d, Reject) and d.reason == "no_route"


async def test_key_injected_replacing_the_clients_and_model_filled() -> None:
    _, d = await send(runtime(), chat("hello"), headers(authorization="Bearer client-key"))
    assert isinstance(d, Continue)
    hs = dict(d.set_headers)
    assert hs["authorization"] == f"Bearer {KEY}"
    assert orjson.loads(d.body or b"") == {
        "messages": [{"role": "user", "content": "hello"}],
        "model": "qwen-turbo",
    }
    assert hs["content-length"] == str(len(d.body or b""))
    # The plugin never rewrote where the request goes.
    assert ":authority" not in hs and ":path" not in hs and not d.clear_route_cache


TIMEOUT = {"x-envoy-upstream-rq-per-try-timeout-ms": "120000"}


async def test_body_kept_byte_identical_when_nothing_changes() -> None:
    raw = b'{ "model" : "qwen-max",   "messages":[{"role":"user","content":"hi"}] }'
    _, d = await send(runtime(), raw)
    assert isinstance(d, Continue)
    assert d.body is None  # unchanged: Envoy forwards the client's exact bytes
    # The key, and the provider's timeout (default 120 s) for Envoy's attempt.
    assert dict(d.set_headers) == {"authorization": f"Bearer {KEY}", **TIMEOUT}


async def test_deny_pattern_blocks_with_403_openai_error() -> None:
    _, d = await send(runtime(), chat("fine", "我的账号是多少"))
    assert isinstance(d, Reject) and d.status == 403
    err = orjson.loads(d.body)["error"]
    assert err["code"] == "content_denied" and "deny_patterns" in err["message"]
    assert KEY not in d.body.decode()


async def test_deny_applies_to_text_parts_of_multimodal_content() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "data:,x"}},
        {"type": "text", "text": "账号"},
    ]
    _, d = await send(runtime(), chat(content))
    assert isinstance(d, Reject) and d.status == 403


@pytest.mark.parametrize("role", ["system", "assistant", "tool", "developer", "SYSTEM"])
async def test_deny_reads_every_message_role(role: str) -> None:
    # The plugin read only user messages: a client could hide the text in a
    # system message (issue #11). Every role the model reads is checked now.
    body = {"messages": [{"role": role, "content": "账号"}, {"role": "user", "content": "hi"}]}
    _, d = await send(runtime(), body)
    assert isinstance(d, Reject) and d.status == 403
    assert orjson.loads(d.body)["error"]["code"] == "content_denied"


async def test_roles_user_keeps_the_plugins_own_behaviour() -> None:
    rt = runtime(PLUGIN + "roles: [user]\n")
    body = {
        "messages": [
            {"role": "system", "content": "账号"},
            {"role": "assistant", "content": "账号"},
            {"role": "user", "content": "hi"},
        ]
    }
    _, d = await send(rt, body)
    assert isinstance(d, Continue)
    _, d = await send(rt, chat("账号"))
    assert isinstance(d, Reject) and d.status == 403


async def test_allow_patterns_every_user_message_must_match_one() -> None:
    rt = runtime('hosts: [a.com]\napi_key: k\nallow_patterns: ["^weather", "^news"]\n')
    h = headers(host="a.com")
    _, ok = await send(rt, chat("weather today", "news please"), h)
    assert isinstance(ok, Continue)
    _, d = await send(rt, chat("weather today", "tell me secrets"), h)
    assert isinstance(d, Reject) and d.status == 403
    assert orjson.loads(d.body)["error"]["code"] == "content_not_allowed"


async def test_deny_wins_over_allow() -> None:
    rt = runtime('hosts: [a.com]\napi_key: k\nallow_patterns: [".*"]\ndeny_patterns: ["secret"]\n')
    _, d = await send(rt, chat("a secret"), headers(host="a.com"))
    assert isinstance(d, Reject) and d.status == 403


async def test_catastrophic_backtracking_pattern_is_linear_in_re2() -> None:
    hostile = "a" * 200_000 + "!"
    # (a+)+$ against a long run of a's followed by '!' never finishes in a
    # backtracking engine; RE2 answers in linear time. No timing assertion:
    # without RE2 this test hangs rather than fails slowly.
    _, d = await send(runtime(), chat(hostile))
    assert isinstance(d, Continue)


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "empty_body"),
        (b"   ", 400, "empty_body"),
        (b"[1,2]", 400, "invalid_body"),
        (b'{"model":"x"}', 400, "missing_messages"),
        (b'{"messages":"hi"}', 400, "invalid_messages"),
        (b'{"messages":["hi"]}', 400, "invalid_messages"),
    ],
)
async def test_bad_bodies_get_400_with_a_clear_openai_error(
    raw: bytes, status: int, code: str
) -> None:
    _, d = await send(runtime(), raw)
    assert isinstance(d, Reject) and d.status == status
    err = orjson.loads(d.body)["error"]
    assert err["code"] == code and err["type"] == "invalid_request_error" and err["message"]
    assert dict(d.headers)["content-type"] == "application/json"


async def test_non_json_content_type_gets_415() -> None:
    _, d = await send(runtime(), chat("hi"), headers(**{"content-type": "text/plain"}))
    assert isinstance(d, Reject) and d.status == 415
    assert orjson.loads(d.body)["error"]["code"] == "unsupported_media_type"


async def test_curl_default_form_content_type_is_accepted_for_json_bodies() -> None:
    _, d = await send(
        runtime(), chat("hi"), headers(**{"content-type": "application/x-www-form-urlencoded"})
    )
    assert isinstance(d, Continue)


async def test_body_over_the_limit_gets_413() -> None:
    rt = runtime(PLUGIN + "---\nlimits: {max_request_bytes: 100}\nroutes: []\n")
    _, d = await send(rt, chat("x" * 200))
    assert isinstance(d, Reject) and d.status == 413


async def test_response_is_tapped_for_usage_and_metadata_emitted() -> None:
    done: list[ExchangeRecord] = []
    ex = Exchange(runtime(), on_done=done.append)
    await ex.handle(RequestHeaders(headers(**{"x-request-id": "rid-1"}), False))
    await ex.handle(RequestBody(orjson.dumps(chat("hi")), True))
    d = await ex.handle(
        ResponseHeaders({":status": "200", "content-type": "application/json"}, False)
    )
    assert (
        isinstance(d, Continue) and d.mode is not None and d.mode.response_body is BodyMode.BUFFERED
    )
    body = orjson.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "model": "qwen-turbo-0919",
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }
    )
    d = await ex.handle(ResponseBody(body, True))
    assert isinstance(d, Continue) and d.body is None
    meta = d.metadata["llm_extproc"]  # type: ignore[index]
    assert meta["total_tokens"] == 7 and meta["model_served"] == "qwen-turbo-0919"
    (rec,) = done
    assert (
        rec.request_id == "rid-1"
        and rec.status == 200
        and rec.usage is not None
        and rec.usage.input_tokens == 3
    )


async def test_phase_out_of_order_is_a_named_error() -> None:
    ex = Exchange(runtime())
    with pytest.raises(PhaseError, match="unexpected request_body message in phase start"):
        await ex.handle(RequestBody(b"{}", True))
    ex = Exchange(runtime())
    await ex.handle(RequestHeaders(headers(), False))
    await ex.handle(RequestBody(orjson.dumps(chat("hi")), True))
    with pytest.raises(PhaseError):
        await ex.handle(RequestHeaders(headers(), False))


async def test_rejected_exchange_takes_no_more_messages() -> None:
    ex, d = await send(runtime(), b"{bad")
    assert isinstance(d, Reject)
    with pytest.raises(PhaseError):
        await ex.handle(ResponseHeaders({":status": "200"}, True))


async def test_bodyless_request_gets_the_key_only() -> None:
    ex = Exchange(runtime())
    d = await ex.handle(RequestHeaders(headers(path="/v1/models", **{":method": "GET"}), True))
    assert isinstance(d, Continue)
    assert dict(d.set_headers) == {"authorization": f"Bearer {KEY}", **TIMEOUT}


async def test_provider_error_echoing_the_key_is_redacted() -> None:
    ex = Exchange(runtime())
    await ex.handle(RequestHeaders(headers(), False))
    await ex.handle(RequestBody(orjson.dumps(chat("hi")), True))
    await ex.handle(ResponseHeaders({":status": "401", "content-type": "application/json"}, False))
    upstream = orjson.dumps(
        {
            "error": {
                "message": f"Incorrect API key provided: {KEY}",
                "type": "invalid_request_error",
            }
        }
    )
    d = await ex.handle(ResponseBody(upstream, True))
    assert isinstance(d, Continue) and d.body is not None
    assert KEY.encode() not in d.body
    assert orjson.loads(d.body)["error"]["message"] == "Incorrect API key provided: [redacted]"
    assert dict(d.set_headers)["content-length"] == str(len(d.body))


async def test_pass_through_never_forwards_a_consumer_key() -> None:
    text = PLUGIN + "---\nunmatched: pass_through\nconsumers:\n- name: c\n  keys: [ck-secret-1]\n"
    ex = Exchange(runtime(text))
    h = headers(host="other.com", authorization="Bearer ck-secret-1", **{"x-api-key": "own-key"})
    d = await ex.handle(RequestHeaders(h, False))
    assert isinstance(d, Continue) and d.remove_headers == ("authorization",)
    assert d.mode is not None and d.mode.response_headers_skip
    # The client's own provider key (not a consumer key) passes.
    ex = Exchange(runtime(text))
    d = await ex.handle(
        RequestHeaders(headers(host="other.com", authorization="Bearer own"), False)
    )
    assert d is SKIP
