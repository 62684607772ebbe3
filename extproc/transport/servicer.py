"""gRPC ExternalProcessor servicer: protobuf <-> core events/decisions, nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2 as pm
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from google.protobuf import struct_pb2

from extproc.config.runtime import Runtime
from extproc.core.events import (
    CONTINUE,
    SKIP,
    BodyMode,
    Continue,
    Decision,
    ModeOverride,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, ExchangeRecord, PhaseError
from extproc.core.request import RequestContext

log = logging.getLogger("extproc.transport")

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_SEND, _SKIP = pm.ProcessingMode.SEND, pm.ProcessingMode.SKIP
_BODY_MODE = {
    BodyMode.NONE: pm.ProcessingMode.NONE,
    BodyMode.STREAMED: pm.ProcessingMode.STREAMED,
    BodyMode.BUFFERED: pm.ProcessingMode.BUFFERED,
}

# Which ProcessingResponse field answers which ProcessingRequest field.
_ANSWER = {
    "request_headers": "request_headers",
    "request_body": "request_body",
    "response_headers": "response_headers",
    "response_body": "response_body",
}


def headers_of(hm: Any) -> dict[str, str]:
    # Envoy sends raw_value (bytes) by default now; older versions use value.
    return {
        h.key: (h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value)
        for h in hm.headers
    }


def _fill_mode(mode: pm.ProcessingMode, m: ModeOverride) -> None:
    mode.request_header_mode = _SEND
    mode.response_header_mode = _SKIP if m.response_headers_skip else _SEND
    if m.request_body is not None:
        mode.request_body_mode = _BODY_MODE[m.request_body]
    if m.response_body is not None:
        mode.response_body_mode = _BODY_MODE[m.response_body]


# Header options are built once per (name, value) and copied into responses:
# most values repeat (provider key, host, path, content type), and building a
# HeaderValueOption from keyword arguments costs more than copying one.
_OPTION_CACHE: dict[tuple[str, str], base_pb2.HeaderValueOption] = {}
_OPTION_CACHE_MAX = 4096


def _option(kv: tuple[str, str]) -> base_pb2.HeaderValueOption:
    o = _OPTION_CACHE.get(kv)
    if o is None:
        if len(_OPTION_CACHE) >= _OPTION_CACHE_MAX:
            _OPTION_CACHE.clear()
        o = _OPTION_CACHE[kv] = base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=kv[0], raw_value=kv[1].encode()),
            append_action=_OVERWRITE,
        )
    return o


def _fill_headers(
    hm: ep.HeaderMutation, set_headers: tuple[tuple[str, str], ...], remove: tuple[str, ...]
) -> None:
    if set_headers:
        hm.set_headers.extend([_option(kv) for kv in set_headers])
    if remove:
        hm.remove_headers.extend(remove)


def _fill_struct(s: struct_pb2.Struct, meta: Any) -> None:
    # Field by field: Struct.update() is pure Python and several times slower.
    for ns, fields in meta.items():
        out = s.fields[ns].struct_value.fields
        for k, v in fields.items():
            if isinstance(v, str):
                out[k].string_value = v
            elif isinstance(v, bool):
                out[k].bool_value = v
            elif isinstance(v, int | float):
                out[k].number_value = v
            else:
                out[k].string_value = str(v)


def to_proto(kind: str, d: Decision) -> ep.ProcessingResponse:
    resp = ep.ProcessingResponse()
    if isinstance(d, Reject):
        imm = resp.immediate_response
        imm.status.code = d.status  # type: ignore[assignment]
        _fill_headers(imm.headers, d.headers, ())
        imm.body = d.body
        imm.details = d.reason
    else:
        answer = getattr(resp, _ANSWER[kind])
        answer.SetInParent()
        if d.set_headers or d.remove_headers or d.body is not None or d.clear_route_cache:
            common = answer.response
            if d.set_headers or d.remove_headers:
                _fill_headers(common.header_mutation, d.set_headers, d.remove_headers)
            if d.body is not None:
                common.body_mutation.body = d.body
            if d.clear_route_cache:
                common.clear_route_cache = True
        if d.mode is not None:
            _fill_mode(resp.mode_override, d.mode)
    if d.metadata:
        _fill_struct(resp.dynamic_metadata, d.metadata)
    return resp


# The two answers most requests get, built once.
_SKIP_RESPONSE = to_proto("request_headers", SKIP)
_EMPTY = {k: to_proto(k, Continue()) for k in _ANSWER}


class ExternalProcessor(ep_grpc.ExternalProcessorServicer):
    def __init__(
        self,
        runtime: Runtime,
        on_done: Callable[[ExchangeRecord], None] | None = None,
        authenticate: Callable[[RequestContext], Awaitable[Reject | None]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.on_done = on_done
        self.authenticate = authenticate

    async def Process(
        self,
        request_iterator: AsyncIterator[ep.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ep.ProcessingResponse]:
        ex = Exchange(self.runtime, self.on_done, self.authenticate)
        try:
            async for req in request_iterator:
                kind = req.WhichOneof("request")
                if kind == "request_headers":
                    m = req.request_headers
                    d = await ex.handle(RequestHeaders(headers_of(m.headers), m.end_of_stream))
                elif kind == "request_body":
                    d = await ex.handle(
                        RequestBody(req.request_body.body, req.request_body.end_of_stream)
                    )
                elif kind == "response_headers":
                    m = req.response_headers
                    d = await ex.handle(ResponseHeaders(headers_of(m.headers), m.end_of_stream))
                elif kind == "response_body":
                    d = await ex.handle(
                        ResponseBody(req.response_body.body, req.response_body.end_of_stream)
                    )
                elif kind in ("request_trailers", "response_trailers"):
                    yield ep.ProcessingResponse(**{kind: ep.TrailersResponse()})
                    continue
                else:
                    continue
                if d is CONTINUE:
                    yield _EMPTY[kind]
                elif d is SKIP:
                    yield _SKIP_RESPONSE
                else:
                    yield to_proto(kind, d)
        except PhaseError as e:
            log.error("ext_proc protocol error: %s", e)
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        finally:
            ex.close()
