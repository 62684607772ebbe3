"""RE2 compilation: every pattern from configuration goes through here.

RE2 runs in linear time, so a hostile input cannot make a pattern backtrack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import re2

__all__ = ["compile_any", "compile_re2", "searcher"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # we raise a ValueError ourselves; keep stderr quiet


def compile_re2(pattern: str, what: str = "pattern") -> Any:
    """Compile ``pattern`` with RE2 or raise a ``ValueError`` naming it.

    ``what`` says where the pattern came from (e.g. ``"model mapping '~gpt-(.*)'"``) and
    prefixes the message; an empty ``what`` leaves the prefix out (the caller names the
    field itself).
    """
    try:
        return re2.compile(pattern, _OPTIONS)
    except Exception as exc:  # re2.error is not a ValueError subclass
        detail: object = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        prefix = f"{what}: " if what else ""
        raise ValueError(f"{prefix}RE2 cannot compile pattern {pattern!r}: {detail}") from None


def compile_any(patterns: Sequence[str], what: str = "patterns") -> Any:
    """One RE2 program matching where any of ``patterns`` matches: one scan per text."""
    return compile_re2("|".join(f"(?:{p})" for p in patterns), what)


def searcher(rx: Any) -> Callable[[str], bool]:
    """Whether `rx` matches anywhere in a text, for the per-request checks.

    google-re2's `search` converts offsets between str and UTF-8 in Python on
    every call (about 2.5 of its 4 us); a yes/no check needs none of that, so
    this calls the compiled program directly when the binding offers it
    (checked once, against `search`) and falls back to `search` otherwise.
    """
    program = getattr(rx, "_regexp", None)
    anchor = getattr(getattr(getattr(re2, "_re2", None), "RE2", None), "Anchor", None)
    if program is not None and anchor is not None:
        unanchored = anchor.UNANCHORED

        def fast(text: str) -> bool:
            b = text.encode()
            return bool(program.Match(unanchored, b, 0, len(b))[0][0] != -1)

        try:
            if all(fast(t) == bool(rx.search(t)) for t in _PROBES):
                return fast
        except Exception:  # another binding version: use its public API
            pass
    return lambda text: rx.search(text) is not None


_PROBES = ("", "a", "账号 x", "password: 1234567812345678")
