"""The real server on loopback, on each transport (h2corn, grpc.aio), driven
by grpcio's client as Envoy would drive it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import orjson
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2 as pm
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.core.record import ExchangeRecord
from extproc.serving.options import ServeOptions
from extproc.serving.server import Server
from extproc.transport import TRANSPORTS
from support import pb_headers, request_headers

KEY = "sk-component-SECRET"
CONFIG = f'hosts: ["api.test"]\napi_key: "{KEY}"\ndeny_patterns: ["forbidden"]\ndefault_model: m1\n'
# Unmatched requests are skipped here (the cheapest answer, the transport's
# prebuilt one); the default, refusing them, has its own test.
CONFIG += "---\nunmatched: pass_through\n"


def req_headers(host: str, eos: bool = False) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(request_headers=pb_headers(request_headers(host), eos))


def req_body(body: bytes) -> ep.ProcessingRequest:
    return ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True))


@pytest.fixture(params=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def options(transport: str, **kw: object) -> ServeOptions:
    return ServeOptions(
        **{"host": "127.0.0.1", "port": 0, "grace_s": 1, "transport": transport, **kw}
    )  # type: ignore[arg-type]


@pytest.fixture
async def server(transport: str) -> AsyncIterator[Server]:
    rt = compile_config(load_text(CONFIG), {})
    s = Server(rt, options(transport))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def exchange(port: int, *msgs: ep.ProcessingRequest) -> list[ep.ProcessingResponse]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = ep_grpc.ExternalProcessorStub(ch)
        call = stub.Process()
        out = []
        for m in msgs:
            await call.write(m)
            out.append(await call.read())
        await call.done_writing()
        return out


async def test_health_service_reports_serving(server: Server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for svc in ("", "envoy.service.ext_proc.v3.ExternalProcessor"):
            r = await stub.Check(health_pb2.HealthCheckRequest(service=svc))
            assert r.status == health_pb2.HealthCheckResponse.SERVING


async def test_unmatched_host_gets_a_mode_override_that_skips_the_rest(server: Server) -> None:
    (r,) = await exchange(server.bound_port, req_headers("elsewhere.test"))
    assert r.WhichOneof("response") == "request_headers"
    assert not r.request_headers.response.HasField("header_mutation")
    assert r.mode_override.response_header_mode == pm.ProcessingMode.SKIP
    assert r.mode_override.request_body_mode == pm.ProcessingMode.NONE
    assert r.mode_override.response_body_mode == pm.ProcessingMode.NONE


async def test_unmatched_host_is_refused_by_default(transport: str) -> None:
    s = Server(compile_config(load_text(CONFIG.split("---")[0]), {}), options(transport))
    await s.start()
    try:
        (r,) = await exchange(s.bound_port, req_headers("elsewhere.test"))
        assert r.WhichOneof("response") == "immediate_response"
        assert r.immediate_response.status.code == 404
        assert b"no_route" in r.immediate_response.body
    finally:
        await s.stop()


async def test_matched_request_gets_key_model_and_body_mutation(server: Server) -> None:
    body = orjson.dumps({"messages": [{"role": "user", "content": "hi"}]})
    r1, r2 = await exchange(server.bound_port, req_headers("api.test"), req_body(body))
    assert r1.WhichOneof("response") == "request_headers"
    assert r2.WhichOneof("response") == "request_body"
    common = r2.request_body.response
    set_h = {h.header.key: h.header.raw_value.decode() for h in common.header_mutation.set_headers}
    assert set_h["authorization"] == f"Bearer {KEY}"
    assert all(
        h.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
        for h in common.header_mutation.set_headers
    )
    assert orjson.loads(common.body_mutation.body)["model"] == "m1"


async def test_blocked_request_gets_an_immediate_403(server: Server) -> None:
    body = orjson.dumps({"messages": [{"role": "user", "content": "this is forbidden"}]})
    _, r = await exchange(server.bound_port, req_headers("api.test"), req_body(body))
    assert r.WhichOneof("response") == "immediate_response"
    imm = r.immediate_response
    assert imm.status.code == 403
    assert orjson.loads(imm.body)["error"]["code"] == "content_denied"
    assert imm.details == "content_denied"
    assert KEY.encode() not in imm.body


async def test_out_of_order_message_fails_the_stream_not_hangs(server: Server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as ch:
        call = ep_grpc.ExternalProcessorStub(ch).Process()
        await call.write(req_body(b"{}"))
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await asyncio.wait_for(call.read(), 5)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "unexpected request_body" in (e.value.details() or "")


async def test_graceful_stop_lets_in_flight_stream_finish(transport: str) -> None:
    rt = compile_config(load_text(CONFIG), {})
    s = Server(rt, options(transport, grace_s=5))
    await s.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{s.bound_port}") as ch:
        call = ep_grpc.ExternalProcessorStub(ch).Process()
        await call.write(req_headers("api.test"))
        await call.read()
        stopping = asyncio.create_task(s.stop())
        await asyncio.sleep(0.2)
        # The open stream still works during the grace period.
        await call.write(req_body(orjson.dumps({"messages": [{"role": "user", "content": "hi"}]})))
        r = await call.read()
        assert r.WhichOneof("response") == "request_body"
        await call.done_writing()
        await stopping


async def test_during_the_drain_health_says_not_serving_and_new_streams_are_refused_at_once(
    transport: str,
) -> None:
    """SIGTERM's stop(): Envoy must learn at once (health check, refused
    streams) to use another replica, while an open stream finishes."""
    rt = compile_config(load_text(CONFIG), {})
    s = Server(rt, options(transport, grace_s=5))
    await s.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{s.bound_port}") as ch:
        open_call = ep_grpc.ExternalProcessorStub(ch).Process()
        await open_call.write(req_headers("api.test"))
        await open_call.read()
        stopping = asyncio.create_task(s.stop())
        await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        health = health_pb2_grpc.HealthStub(ch)
        with contextlib.suppress(grpc.aio.AioRpcError):  # or refused: either is at once
            r = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            assert r.status == health_pb2.HealthCheckResponse.NOT_SERVING
        # A new call is answered before its first message.
        new_call = ep_grpc.ExternalProcessorStub(ch).Process()
        assert await asyncio.wait_for(new_call.code(), 2) == grpc.StatusCode.UNAVAILABLE
        assert loop.time() - t0 < 1.0  # not at the end of the 5 s grace period
        # The stream that was open goes on and finishes.
        await open_call.write(
            req_body(orjson.dumps({"messages": [{"role": "user", "content": "hi"}]}))
        )
        r2 = await open_call.read()
        assert r2.WhichOneof("response") == "request_body"
        await open_call.done_writing()
        await asyncio.wait_for(stopping, 5)


async def test_serves_on_a_unix_socket_only(tmp_path, transport: str) -> None:  # type: ignore[no-untyped-def]
    sock = tmp_path / "extproc.sock"
    rt = compile_config(load_text(CONFIG), {})
    s = Server(rt, options(transport, host="", unix_socket=str(sock)))
    await s.start()
    try:
        assert s.bound_port == 0 and sock.exists()
        async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
            r = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service="")
            )
            assert r.status == health_pb2.HealthCheckResponse.SERVING
            call = ep_grpc.ExternalProcessorStub(ch).Process()
            await call.write(req_headers("elsewhere.test"))
            resp = await call.read()
            assert resp.mode_override.response_header_mode == pm.ProcessingMode.SKIP
            await call.done_writing()
    finally:
        await s.stop()


async def test_reload_applies_to_new_streams_and_in_flight_ones_finish_on_the_old(
    transport: str,
) -> None:
    s = Server(compile_config(load_text(CONFIG), {}), options(transport))
    await s.start()
    try:
        body = orjson.dumps({"messages": [{"role": "user", "content": "hi"}]})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.bound_port}") as ch:
            stub = ep_grpc.ExternalProcessorStub(ch)
            in_flight = stub.Process()
            await in_flight.write(req_headers("api.test"))
            await in_flight.read()
            new_config = 'hosts: ["new.test"]\napi_key: "k2"\n---\nunmatched: pass_through\n'
            await s.reload(compile_config(load_text(new_config), {}))
            # The stream that started before the reload finishes on the old config.
            await in_flight.write(req_body(body))
            old = await in_flight.read()
            set_h = {
                h.header.key: h.header.raw_value
                for h in old.request_body.response.header_mutation.set_headers
            }
            assert set_h["authorization"] == f"Bearer {KEY}".encode()
            await in_flight.done_writing()
        (skipped,) = await exchange(s.bound_port, req_headers("api.test"))
        assert skipped.mode_override.response_header_mode == pm.ProcessingMode.SKIP
        _, new = await exchange(s.bound_port, req_headers("new.test"), req_body(body))
        set_h = {
            h.header.key: h.header.raw_value
            for h in new.request_body.response.header_mutation.set_headers
        }
        assert set_h["authorization"] == b"Bearer k2"
    finally:
        await s.stop()


async def test_unknown_health_service_is_not_found(server: Server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service="no.such.Service")
            )
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_message_over_the_limit_fails_with_resource_exhausted(transport: str) -> None:
    s = Server(compile_config(load_text(CONFIG), {}), options(transport, max_message_bytes=4096))
    await s.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.bound_port}") as ch:
            call = ep_grpc.ExternalProcessorStub(ch).Process()
            await call.write(req_headers("api.test"))
            await call.read()
            await call.write(req_body(b"x" * 8192))
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await asyncio.wait_for(call.read(), 5)
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # A message under the limit still passes, on a new stream.
        body = orjson.dumps({"messages": [{"role": "user", "content": "hi"}]})
        _, r = await exchange(s.bound_port, req_headers("api.test"), req_body(body))
        assert r.WhichOneof("response") == "request_body"
    finally:
        await s.stop()


async def test_client_cancel_mid_stream_closes_the_exchange_quietly(
    transport: str, capfd: pytest.CaptureFixture[str]
) -> None:
    records: list[ExchangeRecord] = []
    s = Server(compile_config(load_text(CONFIG), {}), options(transport), on_done=records.append)
    await s.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.bound_port}") as ch:
            call = ep_grpc.ExternalProcessorStub(ch).Process()
            await call.write(req_headers("api.test"))
            await call.read()
            call.cancel()  # as Envoy resets the stream when its request ends
            for _ in range(100):
                if records:
                    break
                await asyncio.sleep(0.05)
        assert [r.route for r in records] == ["plugin-0"]
        # The server goes on serving.
        (r,) = await exchange(s.bound_port, req_headers("elsewhere.test"))
        assert r.mode_override.response_header_mode == pm.ProcessingMode.SKIP
    finally:
        await s.stop()
    assert "Traceback" not in capfd.readouterr().err


async def test_unknown_method_is_unimplemented(server: Server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as ch:
        unknown = ch.unary_unary(
            "/envoy.service.ext_proc.v3.ExternalProcessor/Nope",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await unknown(b"")
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_health_reports_not_serving_once_draining(transport: str) -> None:
    s = Server(compile_config(load_text(CONFIG), {}), options(transport, grace_s=5))
    await s.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{s.bound_port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        req = health_pb2.HealthCheckRequest(service="")
        assert (await stub.Check(req)).status == health_pb2.HealthCheckResponse.SERVING
        # An open stream keeps the drain going while we ask again.
        call = ep_grpc.ExternalProcessorStub(ch).Process()
        await call.write(req_headers("api.test"))
        await call.read()
        stopping = asyncio.create_task(s.stop())
        await asyncio.sleep(0.2)
        try:
            status = (await stub.Check(req, timeout=2)).status
        except grpc.aio.AioRpcError as e:
            status = None  # new calls refused: not serving either
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert status in (None, health_pb2.HealthCheckResponse.NOT_SERVING)
        await call.done_writing()
        await stopping


async def test_h2corn_refuses_compressed_messages() -> None:
    s = Server(compile_config(load_text(CONFIG), {}), options("h2corn"))
    await s.start()
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{s.bound_port}", compression=grpc.Compression.Gzip
        ) as ch:
            call = ep_grpc.ExternalProcessorStub(ch).Process()
            # grpc sends a message uncompressed unless compressing makes it smaller.
            await call.write(req_body(b"a" * 10000))
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await asyncio.wait_for(call.read(), 5)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "compressed" in (e.value.details() or "")
    finally:
        await s.stop()


FALLBACK_CONFIG = """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-qwen-comp]}
- {name: claude, type: claude, api_tokens: [sk-ant-comp]}
routes: [{name: chat, match: {hosts: [chat.test]}, provider: qwen, fallback: [claude]}]
"""


async def test_a_stream_naming_a_provider_is_an_attempt(transport: str) -> None:
    """The upstream filter's gRPC initial metadata names the provider; the
    forwarded dynamic metadata names the route (envoy_fallback.py)."""
    from google.protobuf import struct_pb2

    rt = compile_config(load_text(FALLBACK_CONFIG), {})
    s = Server(rt, options(transport))
    await s.start()
    try:
        msg = req_headers("llm-fallback")
        meta = struct_pb2.Struct()
        meta.update({"fallback": "chat", "path": "/v1/chat/completions"})
        msg.metadata_context.filter_metadata["llm_extproc"].CopyFrom(meta)
        body = req_body(b'{"messages":[{"role":"user","content":"hi"}]}')
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.bound_port}") as ch:
            stub = ep_grpc.ExternalProcessorStub(ch)
            call = stub.Process(metadata=(("x-llm-extproc-provider", "claude"),))
            await call.write(msg)
            await call.read()
            await call.write(body)
            r = await call.read()
            await call.done_writing()
        sets = {
            h.header.key: h.header.raw_value.decode()
            for h in r.request_body.response.header_mutation.set_headers
        }
        assert sets[":path"] == "/v1/messages" and sets["x-api-key"] == "sk-ant-comp"
        # Without the route's metadata the same stream gets no key.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.bound_port}") as ch:
            stub = ep_grpc.ExternalProcessorStub(ch)
            call = stub.Process(metadata=(("x-llm-extproc-provider", "claude"),))
            await call.write(req_headers("llm-fallback"))
            r = await call.read()
            await call.done_writing()
        assert r.immediate_response.status.code == 500
        assert b"sk-" not in r.immediate_response.body
    finally:
        await s.stop()
