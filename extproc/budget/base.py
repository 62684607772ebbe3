"""What every budget backend shares: windows, usage, and the client's answers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from extproc.core.errors import reject
from extproc.core.events import Reject


class BudgetUnavailable(Exception):
    """The budget store cannot be reached (the message names no secret)."""


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    used: int  # tokens charged (and reserved) in the current window
    reset_in_s: float  # seconds until the window ends


@dataclass(frozen=True, slots=True)
class Reservation:
    """Tokens set aside for one admitted request, in the window it was admitted in.

    Settled once when the exchange ends: the reservation is replaced by the
    real usage (0 when the request failed or gave no usage)."""

    consumer: str
    window_start: float
    tokens: int


class Budget(Protocol):
    """A budget backend: every call is a coroutine, whatever the store."""

    window_s: float
    fail_open: bool  # store unreachable: let requests through instead of 503

    async def usage(self, consumer: str) -> BudgetUsage: ...

    async def charge(self, consumer: str, tokens: int) -> int:
        """Add tokens to the consumer's current window; the window's new total."""
        ...

    async def reserve(self, consumer: str, tokens: int, limit: int) -> Reservation | BudgetUsage:
        """Atomically: when the window has room (used + tokens <= limit), add
        `tokens` to it and return the Reservation; else the usage (refused)."""
        ...

    async def settle(self, reservation: Reservation, used: int) -> None:
        """Replace a reservation by the real usage, in the reservation's window."""
        ...

    async def aclose(self) -> None: ...


def window_of(now: float, window_s: float) -> tuple[float, float]:
    """(start, end) of the fixed window holding `now` (wall-clock seconds).

    Windows are aligned to the epoch, so every process and replica agrees on
    them without talking to each other."""
    start = math.floor(now / window_s) * window_s
    return start, start + window_s


def window_label(start: float) -> str:
    return str(int(start)) if start == int(start) else f"{start:.3f}"


def retry_after(reset_in_s: float) -> int:
    return max(1, math.ceil(reset_in_s))


def reservation_size(estimate: int, limit: int) -> int:
    """What a request reserves: its estimate, at most the whole budget (so a
    request larger than the budget still runs, alone, in an empty window)."""
    return max(0, min(estimate, limit))


def budget_reject(
    consumer: str,
    limit: int,
    window_s: float,
    usage: BudgetUsage,
    client_api: str,
    wanted: int = 0,
) -> Reject:
    secs = retry_after(usage.reset_in_s)
    if usage.used >= limit:
        what = f"has used its token budget of {limit} tokens per {window_s:g}s window"
    else:
        # Room is left, but not for this request's estimate (input + max output).
        what = (
            f"has {limit - usage.used} of its {limit} tokens per {window_s:g}s window left, "
            f"and this request may use up to {wanted} (lower max_tokens to fit)"
        )
    return reject(
        429,
        f"Consumer {consumer!r} {what}; retry in {secs}s.",
        "token_budget_exceeded",
        client_api,
        headers=(("retry-after", str(secs)),),
    )


def unavailable_reject(client_api: str) -> Reject:
    return reject(
        503,
        "The token budget store is unreachable, so the request was not sent upstream; retry later.",
        "budget_unavailable",
        client_api,
        headers=(("retry-after", "1"),),
    )
