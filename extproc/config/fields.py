"""Reading the config proto's wrapper fields, shared by the compiler and the
processors' `from_proto`."""

from __future__ import annotations

from typing import Any

# What an OpenAI chat endpoint's path ends with; a provider's base path plus this
# is where processors send their own chat calls.
CHAT_SUFFIX = "/chat/completions"


def secs(msg: Any, field: str, default: float) -> float:
    """A google.protobuf.Duration field in seconds: its value when set ("0s" included)."""
    return getattr(msg, field).ToTimedelta().total_seconds() if msg.HasField(field) else default


def flag(msg: Any, field: str, default: bool) -> bool:
    """A google.protobuf.BoolValue field: its value when set (false included)."""
    return bool(getattr(msg, field).value) if msg.HasField(field) else default
