"""RE2 compilation: every pattern from configuration goes through here.

RE2 runs in linear time, so a hostile input cannot make a pattern backtrack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import re2

__all__ = ["compile_any", "compile_re2"]

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
