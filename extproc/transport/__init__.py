"""Transports: how ext_proc streams reach the exchange.

One codec (`codec`: protobuf <-> core events and decisions) and one small
module per gRPC server: `h2corn` (a hand-written gRPC handler on the h2corn
ASGI server, the default) and `grpcio` (grpc.aio). Each implements
`Transport`; `make_transport` picks one by name and imports only that one.
"""

from __future__ import annotations

import importlib

from extproc.transport.base import ExchangeFactory, Listen, ListenError, Transport

TRANSPORTS = {"h2corn": "H2cornTransport", "grpcio": "GrpcioTransport"}
DEFAULT_TRANSPORT = "h2corn"

__all__ = [
    "DEFAULT_TRANSPORT",
    "TRANSPORTS",
    "ExchangeFactory",
    "Listen",
    "ListenError",
    "Transport",
    "make_transport",
]


def make_transport(name: str, new_exchange: ExchangeFactory, listen: Listen) -> Transport:
    """The named transport, serving one Exchange from `new_exchange()` per stream."""
    if name not in TRANSPORTS:
        raise ValueError(f"unknown transport {name!r}; choose one of {', '.join(TRANSPORTS)}")
    # Imported on use: the h2corn process never loads grpc's core, and back.
    module = importlib.import_module(f"extproc.transport.{name}")
    cls: type[Transport] = getattr(module, TRANSPORTS[name])
    return cls(new_exchange, listen)
