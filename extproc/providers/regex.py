"""RE2 compilation helper: every pattern from configuration goes through here."""

from __future__ import annotations

from typing import Any

import re2

__all__ = ["compile_re2"]


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # we raise a ValueError ourselves; keep stderr quiet
    return options


def compile_re2(pattern: str, what: str = "pattern") -> Any:
    """Compile ``pattern`` with RE2 or raise a ``ValueError`` naming it.

    ``what`` says where the pattern came from (e.g. ``"model mapping '~gpt-(.*)'"``) and
    prefixes the message.
    """
    try:
        return re2.compile(pattern, _options())
    except Exception as exc:  # re2.error is not a ValueError subclass
        detail: object = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"{what}: RE2 cannot compile pattern {pattern!r}: {detail}") from None
