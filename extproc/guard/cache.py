"""A bounded LRU cache of guard verdicts with a time-to-live.

Entries are keyed by a salted blake2b digest of (judged text, model, system prompt): the
cache never holds the text, a guard key or anything else from the request. Only ``allow``
and ``deny`` verdicts are cached; ``error`` verdicts are always retried.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable

from extproc.guard.verdict import Verdict

__all__ = ["VerdictCache"]


class VerdictCache:
    __slots__ = ("_clock", "_entries", "_max_entries", "_salt", "_ttl_s", "hits", "misses")

    def __init__(
        self,
        max_entries: int = 10000,
        ttl_s: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self._max_entries = max_entries
        self._ttl_s = float(ttl_s)
        self._clock = clock
        # A per-process salt: digests cannot be checked against guessed texts elsewhere.
        self._salt = os.urandom(16)
        self._entries: OrderedDict[bytes, tuple[float, Verdict]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"VerdictCache(entries={len(self._entries)}, max_entries={self._max_entries})"

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, text: str, model: str, system_prompt: str) -> bytes:
        """The cache key for judging ``text`` with ``model`` and ``system_prompt``."""
        digest = hashlib.blake2b(digest_size=20, key=self._salt)
        for part in (model, system_prompt, text):
            data = part.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        return digest.digest()

    def get(self, key: bytes) -> Verdict | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        expires, verdict = entry
        if expires <= self._clock():
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return verdict

    def put(self, key: bytes, verdict: Verdict) -> None:
        if verdict.kind not in ("allow", "deny"):
            return
        self._entries[key] = (self._clock() + self._ttl_s, verdict)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
