"""Round-robin pool of provider API tokens with a cooldown for tokens the provider rejected.

``pick()`` hands out the next token that is not cooling down. ``report(token, status)``
feeds the upstream status back: 401/429 set the token aside for ``cooldown_s`` (a
429 may carry the provider's ``Retry-After`` seconds instead), a 2xx clears any cooldown,
other statuses change nothing. A 403 cools the key only through ``set_aside``, which
callers use when the body says the error is about the key (``key_errors.py``): a 403
may be a content-policy refusal any client can trigger.

Tokens never appear in ``repr``/``str`` or in exception messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["NoTokenAvailable", "TokenPool"]

_SET_ASIDE = frozenset({401, 429})


class NoTokenAvailable(Exception):
    """Every token in the pool is cooling down."""

    def __init__(self, size: int, retry_in_s: float) -> None:
        self.size = size
        self.retry_in_s = retry_in_s
        noun = "token is" if size == 1 else f"{size} tokens are"
        super().__init__(
            f"no provider token available: {'the' if size == 1 else 'all'} {noun} cooling down; "
            f"the first returns in {retry_in_s:.1f}s"
        )


class TokenPool:
    """Hands out tokens round robin, skipping those set aside after 401/429 (or a key 403)."""

    __slots__ = ("_clock", "_cooldown_s", "_index", "_lock", "_next", "_tokens", "_until")

    def __init__(
        self,
        tokens: Sequence[str],
        cooldown_s: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(tokens, str):
            raise TypeError("TokenPool needs a sequence of tokens, not a single string")
        unique: list[str] = []
        seen: set[str] = set()
        for position, token in enumerate(tokens):
            if not isinstance(token, str) or not token:
                raise ValueError(f"token #{position} is empty or not a string")
            if token not in seen:
                seen.add(token)
                unique.append(token)
        if not unique:
            raise ValueError("TokenPool needs at least one token")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self._tokens: tuple[str, ...] = tuple(unique)
        self._index: dict[str, int] = {token: i for i, token in enumerate(unique)}
        self._until: list[float] = [0.0] * len(unique)  # clock value when usable again
        self._next = 0
        self._cooldown_s = float(cooldown_s)
        self._clock = clock
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        now = self._clock()
        cooling = sum(1 for until in self._until if until > now)
        return f"TokenPool(size={len(self._tokens)}, cooling={cooling})"

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self._tokens)

    def pick(self) -> str:
        """The next usable token (round robin); ``NoTokenAvailable`` when all cool down."""
        now = self._clock()
        with self._lock:
            size = len(self._tokens)
            start = self._next
            for step in range(size):
                i = (start + step) % size
                if self._until[i] <= now:
                    self._next = (i + 1) % size
                    return self._tokens[i]
            retry_in = min(self._until) - now
        raise NoTokenAvailable(size, max(retry_in, 0.0))

    def soonest(self) -> str:
        """The token whose cooldown ends first (usable or not)."""
        with self._lock:
            return self._tokens[self._until.index(min(self._until))]

    def report(self, token: str, status: int, retry_after: float | None = None) -> None:
        """Feed back the upstream ``status`` for a request made with ``token``.

        401/429 set the token aside for the cooldown (``retry_after`` seconds instead,
        for a 429 when given); 2xx clears a cooldown; 403 changes nothing (see
        ``set_aside``). Unknown tokens are ignored.
        """
        i = self._index.get(token)
        if i is None:
            return
        if 200 <= status < 300:
            if self._until[i]:
                with self._lock:
                    self._until[i] = 0.0
            return
        if status not in _SET_ASIDE:
            return
        cooldown = self._cooldown_s
        if status == 429 and retry_after is not None and retry_after >= 0:
            cooldown = float(retry_after)
        self._cool(i, cooldown)

    def set_aside(self, token: str) -> None:
        """The provider said the key itself is refused (a 403 of its auth error type)."""
        i = self._index.get(token)
        if i is not None:
            self._cool(i, self._cooldown_s)

    def _cool(self, i: int, cooldown: float) -> None:
        until = self._clock() + cooldown
        with self._lock:
            # Concurrent failures keep the longest cooldown.
            if until > self._until[i]:
                self._until[i] = until

    def available(self) -> int:
        """How many tokens are usable right now."""
        now = self._clock()
        return sum(1 for until in self._until if until <= now)
