"""Processors configured by name (`processors: [{custom: {name, config}}]`).

Adding one: write a Processor subclass with a `from_config` classmethod that
checks its config (raise ValueError naming the field), then add one line to
REGISTRY. The built-in processors with typed config (regex_guard, llm_guard,
prompt_decorator, context, llm_rewrite) are compiled in config/compile.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from extproc.processors.base import Processor
from extproc.processors.max_tokens_cap import MaxTokensCap


class ConfiguredProcessor(Protocol):
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Processor: ...


REGISTRY: dict[str, type[ConfiguredProcessor]] = {
    "max_tokens_cap": MaxTokensCap,
}
