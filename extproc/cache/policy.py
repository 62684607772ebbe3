"""A route's compiled `cache:` settings."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TTL_S = 300.0
DEFAULT_MAX_ENTRY_BYTES = 1 << 20
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_LOOKUP_TIMEOUT_S = 0.020
BACKENDS = ("memory", "redis")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    ttl_s: float = DEFAULT_TTL_S
    backend: str = "memory"  # "memory" | "redis"
    redis_url: str = ""
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    # Request headers (lower-case) whose values join the key (anthropic-beta, a tenant header).
    key_includes: tuple[str, ...] = ()
    # Entries shared across consumers (default: each consumer has its own).
    shared: bool = False
    # Requests carrying a tool result are cached too (default: never).
    cache_tool_results: bool = False
    # The memory backend's bounds (per route).
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_bytes: int = DEFAULT_MAX_BYTES
    # The longest a lookup may take before the request goes to the provider.
    lookup_timeout_s: float = DEFAULT_LOOKUP_TIMEOUT_S
