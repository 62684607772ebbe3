"""The h2corn transport's ASGI app, without a server: routing and health."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.core.exchange import Exchange
from extproc.transport.h2corn import HEALTH_CHECK, GrpcApp

RUNTIME = compile_config(load_text('hosts: ["api.test"]\napi_key: "k"\n'), {})


def frame(payload: bytes) -> bytes:
    return b"\0" + len(payload).to_bytes(4, "big") + payload


async def call(app: GrpcApp, path: str, body: bytes) -> list[dict[str, Any]]:
    msgs = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return msgs.pop(0)

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    await app({"type": "http", "path": path}, receive, send)
    return sent


def status(sent: list[dict[str, Any]]) -> bytes:
    return dict(sent[-1]["headers"])[b"grpc-status"]


async def test_health_check_follows_the_serving_flag() -> None:
    app = GrpcApp(lambda provider="", traceparent="": Exchange(RUNTIME), 1 << 20)
    req = frame(
        health_pb2.HealthCheckRequest(
            service="envoy.service.ext_proc.v3.ExternalProcessor"
        ).SerializeToString()
    )
    for serving, want in (
        (True, health_pb2.HealthCheckResponse.SERVING),
        (False, health_pb2.HealthCheckResponse.NOT_SERVING),
    ):
        app.serving = serving
        sent = await call(app, HEALTH_CHECK, req)
        body = next(m["body"] for m in sent if m["type"] == "http.response.body" and m["body"])
        assert health_pb2.HealthCheckResponse.FromString(body[5:]).status == want
        assert status(sent) == b"0"


async def test_other_paths_are_unimplemented() -> None:
    app = GrpcApp(lambda provider="", traceparent="": Exchange(RUNTIME), 1 << 20)
    for path in ("/grpc.health.v1.Health/Watch", "/x.Y/Z"):
        assert status(await call(app, path, b"")) == b"12"


async def test_an_undecodable_request_fails_the_stream_not_the_server() -> None:
    app = GrpcApp(lambda provider="", traceparent="": Exchange(RUNTIME), 1 << 20)
    sent = await call(
        app, "/envoy.service.ext_proc.v3.ExternalProcessor/Process", frame(b"\xff\xff")
    )
    assert status(sent) == b"13"
