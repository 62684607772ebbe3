"""The ext_proc codec: protobuf to events, decisions to protobuf."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.core.events import (
    CONTINUE,
    SKIP,
    Continue,
    Reject,
    RequestBody,
    RequestHeaders,
    RequestTrailers,
    ResponseBody,
    ResponseHeaders,
)
from extproc.transport import codec
from support import pb_headers


def headers(**h: str) -> ep.HttpHeaders:
    return pb_headers(h, end_of_stream=True)


def test_decode_each_kind() -> None:
    kind, ev = codec.decode(ep.ProcessingRequest(request_headers=headers(host="a")))
    assert kind == "request_headers" and ev == RequestHeaders({"host": "a"}, True)
    kind, ev = codec.decode(
        ep.ProcessingRequest(request_body=ep.HttpBody(body=b"x", end_of_stream=True))
    )
    assert kind == "request_body" and ev == RequestBody(b"x", True)
    kind, ev = codec.decode(ep.ProcessingRequest(response_headers=headers(**{":status": "200"})))
    assert kind == "response_headers" and ev == ResponseHeaders({":status": "200"}, True)
    kind, ev = codec.decode(ep.ProcessingRequest(response_body=ep.HttpBody(body=b"y")))
    assert kind == "response_body" and ev == ResponseBody(b"y", False)


def test_old_envoys_string_values_are_read() -> None:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key="host", value="old")])
    assert codec.headers_of(hm) == {"host": "old"}


def test_request_trailers_are_an_event_response_trailers_pass_unknown_messages_raise() -> None:
    trailers = ep.HttpTrailers()
    trailers.trailers.headers.add(key="x-checksum", raw_value=b"abc")
    kind, ev = codec.decode(ep.ProcessingRequest(request_trailers=trailers))
    assert kind == "request_trailers" and ev == RequestTrailers({"x-checksum": "abc"})
    assert codec.encode(kind, CONTINUE).WhichOneof("response") == "request_trailers"
    kind, ev = codec.decode(ep.ProcessingRequest(response_trailers=ep.HttpTrailers()))
    assert ev is None
    assert codec.no_event_answer(kind).WhichOneof("response") == "response_trailers"
    kind, ev = codec.decode(ep.ProcessingRequest())
    assert ev is None
    with pytest.raises(codec.UnexpectedMessage, match="unexpected ext_proc message"):
        codec.no_event_answer(kind)


def test_common_answers_are_prebuilt_and_match_a_fresh_build() -> None:
    for kind in codec.KINDS:
        assert codec.encode(kind, CONTINUE) is codec.encode(kind, CONTINUE)
        assert (
            codec.encode_bytes(kind, CONTINUE)
            == codec.to_proto(kind, Continue()).SerializeToString()
        )
    assert (
        codec.encode_bytes("request_headers", SKIP)
        == codec.to_proto("request_headers", SKIP).SerializeToString()
    )


def test_reject_becomes_an_immediate_response() -> None:
    d = Reject(403, b"{}", (("content-type", "application/json"),), "denied")
    r = ep.ProcessingResponse.FromString(codec.encode_bytes("request_body", d))
    assert r.immediate_response.status.code == 403
    assert r.immediate_response.details == "denied"
    (h,) = r.immediate_response.headers.set_headers
    assert (h.header.key, h.header.raw_value) == ("content-type", b"application/json")


def test_mutations_and_metadata() -> None:
    d = Continue(
        set_headers=(("authorization", "Bearer k"),),
        remove_headers=("x-drop",),
        body=b"{}",
        clear_route_cache=True,
        metadata={"llm": {"model": "m", "tokens": 3, "stream": False}},
    )
    r = codec.encode("request_body", d)
    common = r.request_body.response
    assert common.header_mutation.set_headers[0].header.raw_value == b"Bearer k"
    assert list(common.header_mutation.remove_headers) == ["x-drop"]
    assert common.body_mutation.body == b"{}" and common.clear_route_cache
    fields = r.dynamic_metadata.fields["llm"].struct_value.fields
    assert fields["model"].string_value == "m" and fields["tokens"].number_value == 3
    assert fields["stream"].bool_value is False


def test_raw_values_are_utf8_with_bad_bytes_replaced() -> None:
    hm = base_pb2.HeaderMap(
        headers=[
            base_pb2.HeaderValue(key="x-ok", raw_value="账号".encode()),
            base_pb2.HeaderValue(key="x-bad", raw_value=b"a\xffb"),
        ]
    )
    assert codec.headers_of(hm) == {"x-ok": "账号", "x-bad": "a\ufffdb"}


def test_bodyless_answers_are_served_from_the_cache_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from extproc.core.events import BodyMode, Continue, ModeOverride

    built: list[str] = []
    real = codec.to_proto

    def counting(kind: str, d: Any) -> Any:
        built.append(kind)
        return real(kind, d)

    monkeypatch.setattr(codec, "to_proto", counting)
    monkeypatch.setattr(codec, "_ANSWER_CACHE", {})
    d = Continue(
        set_headers=(("x-llm-provider", "qwen"),),
        mode=ModeOverride(response_body=BodyMode.BUFFERED),
    )
    first = codec.encode_bytes("response_headers", d)
    assert first == real("response_headers", d).SerializeToString()
    assert built == ["response_headers"]
    # An equal decision built again gets the very same bytes, not a new build.
    again = Continue(
        set_headers=(("x-llm-provider", "qwen"),),
        mode=ModeOverride(response_body=BodyMode.BUFFERED),
    )
    assert codec.encode_bytes("response_headers", again) is first
    assert built == ["response_headers"]
    # Another kind gets its own answer.
    other = codec.encode_bytes("request_headers", d)
    assert ep.ProcessingResponse.FromString(other).WhichOneof("response") == "request_headers"
    assert built == ["response_headers", "request_headers"]
    # Metadata (even empty) and bodies are never cached: built every time.
    with_meta = Continue(metadata={})
    one = codec.encode_bytes("response_body", with_meta)
    assert one == real("response_body", with_meta).SerializeToString()
    codec.encode_bytes("response_body", with_meta)
    with_body = Continue(body=b"{}")
    codec.encode_bytes("response_body", with_body)
    codec.encode_bytes("response_body", with_body)
    assert built[2:] == ["response_body"] * 4


def test_header_options_are_built_once_per_name_and_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codec, "_OPTION_CACHE", {})
    a = codec.to_proto("request_body", Continue(set_headers=(("x-a", "1"),), body=b"{}"))
    b = codec.to_proto("request_body", Continue(set_headers=(("x-a", "1"),), body=b"[]"))
    assert list(codec._OPTION_CACHE) == [("x-a", "1")]
    cached = codec._OPTION_CACHE[("x-a", "1")]
    for r in (a, b):
        (opt,) = r.request_body.response.header_mutation.set_headers
        assert opt == cached
