"""The client's Cache-Control: `no-cache` skips the lookup, `no-store` the store."""

from __future__ import annotations

from collections.abc import Mapping


def client_directives(headers: Mapping[str, str]) -> tuple[bool, bool]:
    """(may look up, may store) for this request."""
    cc = headers.get("cache-control", "")
    words = {d.strip().split("=", 1)[0].lower() for d in cc.split(",")} if cc else set()
    no_cache = "no-cache" in words or "no-cache" in headers.get("pragma", "").lower()
    return not no_cache, "no-store" not in words
