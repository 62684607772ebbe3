"""How `llm-extproc serve` was asked to serve."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.transport import DEFAULT_TRANSPORT
from extproc.transport.base import DEFAULT_MAX_MESSAGE_BYTES, Listen


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 50051
    unix_socket: str = ""
    grace_s: float = 10.0
    workers: int = 1
    metrics_port: int = 0  # 0: no metrics endpoint
    metrics_host: str = "127.0.0.1"
    transport: str = DEFAULT_TRANSPORT
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def listen(self) -> Listen:
        return Listen(
            host=self.host,
            port=self.port,
            unix_socket=self.unix_socket,
            reuse_port=self.workers > 1,
            max_message_bytes=self.max_message_bytes,
            grace_s=self.grace_s,
        )
