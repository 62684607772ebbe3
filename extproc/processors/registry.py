"""Which class builds each processor of the config.

Built-in processors have typed config in the proto (`processors: [{regex_guard:
...}]`); each class's `from_proto(msg, path, build)` checks its message and
reports problems by field path. Others are configured by name (`processors:
[{custom: {name, config}}]`): a Processor subclass with a `from_config`
classmethod that checks its config (raise ValueError naming the field), plus
one line in REGISTRY.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from extproc.processors.base import Build, Processor
from extproc.processors.context import Context
from extproc.processors.llm_guard import LlmGuard
from extproc.processors.llm_rewrite import LlmRewrite
from extproc.processors.max_tokens_cap import MaxTokensCap
from extproc.processors.prompt_decorator import PromptDecorator
from extproc.processors.regex_guard import RegexGuard


class BuiltinProcessor(Protocol):
    @classmethod
    def from_proto(cls, msg: Any, path: str, b: Build) -> Processor | None: ...


class ConfiguredProcessor(Protocol):
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Processor: ...


# The proto's `Processor.kind` oneof, field name -> class.
BUILTIN: dict[str, type[BuiltinProcessor]] = {
    "regex_guard": RegexGuard,
    "llm_guard": LlmGuard,
    "prompt_decorator": PromptDecorator,
    "context": Context,
    "llm_rewrite": LlmRewrite,
}

REGISTRY: dict[str, type[ConfiguredProcessor]] = {
    "max_tokens_cap": MaxTokensCap,
}
