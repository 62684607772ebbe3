"""Config errors name the field path and the problem, never a secret value."""

from __future__ import annotations


class ConfigError(Exception):
    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))

    def __str__(self) -> str:
        return "\n".join(f"{path}: {msg}" for path, msg in self.problems)
