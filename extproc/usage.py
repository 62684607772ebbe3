"""Token usage, the one shape every translator reports back in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def of(
        cls, input_tokens: int, output_tokens: int, total: int | None = None, **extra: int
    ) -> Usage:
        return cls(
            input_tokens,
            output_tokens,
            total if total is not None else input_tokens + output_tokens,
            **extra,
        )
