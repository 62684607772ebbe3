"""What a transport is given and what it offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from extproc.core.exchange import Exchange


class ExchangeFactory(Protocol):
    """One Exchange per ext_proc stream; the caller decides which config it uses."""

    def __call__(self, provider: str = "", traceparent: str = "") -> Exchange:
        """`provider`: the one the stream's gRPC metadata names
        (core.attempt.stream_origin): the stream is one attempt of a
        fallback route, in that provider cluster's upstream filter.
        `traceparent`: the metadata's (Envoy's span of the ext_proc call)."""


EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
# Services the gRPC health service answers for ("" is the whole server).
HEALTH_SERVICES = ("", EXT_PROC_SERVICE)
# Largest ext_proc message taken, on both transports (grpc's own default is
# 4 MiB). Above the config's largest default body limit
# (limits.max_response_bytes, 16 MiB) plus headroom, so that the config's
# limits, which answer the client in its API's error shape, apply first.
DEFAULT_MAX_MESSAGE_BYTES = 20 << 20


class ListenError(Exception):
    """A transport could not listen where it was asked to (the message says
    where and why)."""


@dataclass(frozen=True, slots=True)
class Listen:
    """Where and how a transport listens."""

    host: str = "0.0.0.0"  # "" or port < 0: no TCP listener
    port: int = 50051  # 0: any free port (see Transport.bound_port)
    unix_socket: str = ""
    reuse_port: bool = False  # several worker processes share the TCP port
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grace_s: float = 10.0  # in-flight streams get this long on stop

    @property
    def tcp(self) -> bool:
        return bool(self.host) and self.port >= 0


class Transport(Protocol):
    """A gRPC server for ext_proc and the gRPC health service."""

    bound_port: int  # the TCP port after start (0 without TCP)

    def __init__(self, new_exchange: ExchangeFactory, listen: Listen) -> None: ...

    async def start(self) -> None:
        """Listen and serve; health reports SERVING. ListenError if it cannot."""

    async def stop(self) -> None:
        """Health reports NOT_SERVING, new streams are refused, streams in
        flight get `grace_s` to finish."""

    async def wait(self) -> None:
        """Until the server has stopped."""
