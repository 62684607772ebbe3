"""Events into the exchange state machine and decisions out of it.

Plain frozen values: the gRPC servicer maps protobuf to these and back, so the
core never sees protobuf and is testable without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Headers = Mapping[str, str]  # lower-case names; pseudo-headers keep their ':'


@dataclass(frozen=True, slots=True)
class RequestHeaders:
    headers: Headers
    end_of_stream: bool
    # Envoy's dynamic metadata forwarded with the message (namespace -> fields);
    # only upstream ext_proc filters forward any (see envoy_fallback.py).
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RequestBody:
    body: bytes
    end_of_stream: bool


@dataclass(frozen=True, slots=True)
class RequestTrailers:
    """HTTP/2 (or chunked) request trailers: they end the request's body. In
    BUFFERED mode Envoy then sends the whole body without end_of_stream, and
    the trailers after it (request_trailer_mode SEND)."""

    headers: Headers


@dataclass(frozen=True, slots=True)
class ResponseHeaders:
    headers: Headers
    end_of_stream: bool


@dataclass(frozen=True, slots=True)
class ResponseBody:
    body: bytes
    end_of_stream: bool


Event = RequestHeaders | RequestBody | RequestTrailers | ResponseHeaders | ResponseBody


class BodyMode(Enum):
    """Mirrors Envoy's ProcessingMode.BodySendMode values we use."""

    NONE = 0
    STREAMED = 1
    BUFFERED = 2


@dataclass(frozen=True, slots=True)
class ModeOverride:
    """Processing mode for the rest of the exchange (Envoy's mode_override)."""

    request_body: BodyMode | None = None
    response_headers_skip: bool = False
    response_body: BodyMode | None = None


# Skip every later phase: the request is not ours.
SKIP_REST = ModeOverride(
    request_body=BodyMode.NONE, response_headers_skip=True, response_body=BodyMode.NONE
)


@dataclass(frozen=True, slots=True)
class Continue:
    """Let the message go on, with these changes."""

    set_headers: tuple[tuple[str, str], ...] = ()
    remove_headers: tuple[str, ...] = ()
    body: bytes | None = None  # None: unchanged
    clear_route_cache: bool = False
    mode: ModeOverride | None = None
    metadata: Mapping[str, Any] | None = None  # dynamic metadata for Envoy


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer the client now; the request never reaches the upstream."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    reason: str = ""  # machine-readable, for logs/metrics/details
    metadata: Mapping[str, Any] | None = field(default=None)


Decision = Continue | Reject

CONTINUE = Continue()
# The answer to a request that is not ours (singleton: the transport has it prebuilt).
SKIP = Continue(mode=SKIP_REST)
