"""gRPC framing over ASGI: messages in, messages and a status out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from extproc.transport.asgi_grpc import (
    INTERNAL,
    RESOURCE_EXHAUSTED,
    UNIMPLEMENTED,
    Disconnected,
    GrpcError,
    GrpcStream,
)


def frame(payload: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + len(payload).to_bytes(4, "big") + payload


def receiver(*chunks: bytes, disconnect: bool = False) -> Callable[[], Awaitable[dict[str, Any]]]:
    msgs: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or disconnect}
        for i, c in enumerate(chunks)
    ]
    if disconnect:
        msgs.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        return msgs.pop(0)

    return receive


class Sent:
    def __init__(self) -> None:
        self.msgs: list[dict[str, Any]] = []

    async def __call__(self, m: dict[str, Any]) -> None:
        self.msgs.append(m)

    def trailers(self) -> dict[bytes, bytes]:
        (t,) = [m for m in self.msgs if m["type"] == "http.response.trailers"]
        return dict(t["headers"])


async def read_all(stream: GrpcStream) -> list[bytes]:
    out = []
    while (m := await stream.read()) is not None:
        out.append(m)
    return out


async def test_messages_split_and_joined_across_chunks() -> None:
    wire = frame(b"first") + frame(b"") + frame(b"third" * 1000)
    chunks = [wire[:3], wire[3:12], wire[12:4000], wire[4000:]]
    s = GrpcStream(receiver(*chunks), Sent(), 1 << 20)
    assert await read_all(s) == [b"first", b"", b"third" * 1000]


async def test_two_messages_in_one_chunk() -> None:
    s = GrpcStream(receiver(frame(b"a") + frame(b"bc")), Sent(), 1 << 20)
    assert await read_all(s) == [b"a", b"bc"]


async def test_a_message_over_the_limit_is_refused_before_it_is_buffered() -> None:
    s = GrpcStream(receiver(frame(b"x" * 11)[:7]), Sent(), 10)
    with pytest.raises(GrpcError) as e:
        await s.read()
    assert e.value.code == RESOURCE_EXHAUSTED and "11 vs. 10" in e.value.message


@pytest.mark.parametrize(("flag", "code"), [(1, UNIMPLEMENTED), (2, INTERNAL)])
async def test_compressed_or_unknown_flags_are_refused(flag: int, code: int) -> None:
    s = GrpcStream(receiver(frame(b"x", flag)), Sent(), 100)
    with pytest.raises(GrpcError) as e:
        await s.read()
    assert e.value.code == code


async def test_a_request_ending_inside_a_message_is_an_error() -> None:
    s = GrpcStream(receiver(frame(b"abcdef")[:-2]), Sent(), 100)
    with pytest.raises(GrpcError) as e:
        await s.read()
    assert e.value.code == INTERNAL


async def test_disconnect_is_reported() -> None:
    s = GrpcStream(receiver(frame(b"a"), disconnect=True), Sent(), 100)
    assert await s.read() == b"a"
    with pytest.raises(Disconnected):
        await s.read()


async def test_write_starts_the_response_once_and_frames_messages() -> None:
    sent = Sent()
    s = GrpcStream(receiver(), sent, 100)
    await s.write(b"one")
    await s.write(b"two")
    await s.finish()
    start, m1, m2, end, _ = sent.msgs
    assert start["type"] == "http.response.start" and start["trailers"] is True
    assert (b"content-type", b"application/grpc") in start["headers"]
    assert [m1["body"], m2["body"]] == [frame(b"one"), frame(b"two")]
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}
    assert sent.trailers() == {b"grpc-status": b"0"}


async def test_an_error_without_messages_still_starts_the_response() -> None:
    sent = Sent()
    await GrpcStream(receiver(), sent, 100).finish(9, "unexpected 50% été\n")
    assert sent.msgs[0]["type"] == "http.response.start"
    t = sent.trailers()
    assert t[b"grpc-status"] == b"9"
    # Percent-encoded: "%", non-ASCII and control characters.
    assert t[b"grpc-message"] == b"unexpected 50%25 %C3%A9t%C3%A9%0A"


async def test_finish_after_the_client_left_is_quiet() -> None:
    tried: list[str] = []

    async def gone(m: dict[str, Any]) -> None:
        tried.append(m["type"])
        raise OSError("client disconnected")

    # No exception escapes, and after the first send failed nothing more is sent.
    assert await GrpcStream(receiver(), gone, 100).finish(13, "internal error") is None
    assert tried == ["http.response.start"]
