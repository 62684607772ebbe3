"""How many tokens a request may use, estimated at admission (no tokenizer).

Input: the request body's size in bytes / 4 (about 4 bytes a token for
English; media in the body count too, so the estimate errs high there).
Output: the request's own cap (`max_tokens`, `max_completion_tokens`,
`max_output_tokens`, Ollama's `options.num_predict`), else the budgets'
`default_output_tokens`. Embeddings and `count_tokens` produce no output;
a bodyless request (GET /v1/models) is estimated at 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.core.endpoints import ANTHROPIC_COUNT_TOKENS, EMBEDDINGS

BYTES_PER_TOKEN = 4
_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def _count(v: Any) -> int | None:
    return v if type(v) is int and v >= 0 else None


def output_cap(body: Mapping[str, Any]) -> int | None:
    """The request's own limit on output tokens, or None."""
    for name in _CAPS:
        n = _count(body.get(name))
        if n is not None:
            return n
    opts = body.get("options")
    if isinstance(opts, dict):
        return _count(opts.get("num_predict"))  # -1 (unbounded) is no cap
    return None


def estimate_tokens(
    endpoint: str, body: Mapping[str, Any], body_bytes: int, default_output: int
) -> int:
    if body_bytes <= 0 and not body:
        return 0
    if endpoint == ANTHROPIC_COUNT_TOKENS:
        return 0  # a count costs no tokens
    inp = -(-max(0, body_bytes) // BYTES_PER_TOKEN)
    if endpoint == EMBEDDINGS:
        return inp
    cap = output_cap(body)
    return inp + (default_output if cap is None else cap)
