"""Model name mapping (Higress ai-proxy ``modelMapping`` semantics, plus regex keys).

Keys of the mapping, in declaration (insertion) order:

* ``"gpt-4o"`` - exact model name;
* ``"gpt-4-*"`` - prefix: every model starting with ``gpt-4-``;
* ``"~gpt-(.+)-preview"`` - RE2 regex (after the ``~``), matched against the whole model
  name; the target may refer to capture groups as ``$1`` .. ``$9`` (``$$`` is a literal ``$``);
* ``"*"`` - fallback for every model nothing else matched.

Precedence: exact, then prefix keys (longest prefix wins; on equal length the first
declared), then regex keys (the first declared that matches), then ``*``. An empty target
keeps the model the client asked for. A model no key matches is kept as well.

Everything is compiled at construction; ``map`` does a dict lookup, a scan of the
prefix keys and a scan of the regex keys, and remembers recent answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.providers.regex import compile_re2

__all__ = ["ModelMapper"]

_MEMO_MAX = 4096

# A compiled target template: literal strings and capture-group numbers, in order.
_Template = tuple[str | int, ...]


def _compile_template(target: str, groups: int, key: str) -> _Template:
    parts: list[str | int] = []
    literal: list[str] = []
    i = 0
    n = len(target)
    while i < n:
        ch = target[i]
        if ch == "$" and i + 1 < n:
            nxt = target[i + 1]
            if nxt == "$":
                literal.append("$")
                i += 2
                continue
            if "1" <= nxt <= "9":
                group = int(nxt)
                if group > groups:
                    raise ValueError(
                        f"model mapping {key!r}: target {target!r} refers to ${group} but the "
                        f"pattern has {groups} capture group(s)"
                    )
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(group)
                i += 2
                continue
        literal.append(ch)
        i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _expand(template: _Template, match: Any) -> str:
    out: list[str] = []
    for part in template:
        if isinstance(part, int):
            out.append(match.group(part) or "")
        else:
            out.append(part)
    return "".join(out)


class ModelMapper:
    """Maps a requested model name to the provider's model name."""

    __slots__ = ("_exact", "_fallback", "_memo", "_prefixes", "_regexes")

    def __init__(self, mapping: Mapping[str, str]) -> None:
        exact: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        regexes: list[tuple[Any, _Template]] = []
        fallback: str | None = None
        for key, target in mapping.items():
            if not isinstance(key, str) or not isinstance(target, str):
                raise ValueError(f"model mapping {key!r}: keys and targets must be strings")
            if key == "":
                raise ValueError("model mapping: empty key")
            if key == "*":
                fallback = target
            elif key.startswith("~"):
                pattern = key[1:]
                if not pattern:
                    raise ValueError(f"model mapping {key!r}: empty regex")
                compiled = compile_re2(pattern, f"model mapping {key!r}")
                template = _compile_template(target, compiled.groups, key)
                regexes.append((compiled, template))
            elif key.endswith("*"):
                prefix = key[:-1]
                if "*" in prefix:
                    raise ValueError(
                        f"model mapping {key!r}: '*' is only allowed at the end of a key "
                        "(use a '~regex' key for other patterns)"
                    )
                prefixes.append((prefix, target))
            else:
                if "*" in key:
                    raise ValueError(
                        f"model mapping {key!r}: '*' is only allowed at the end of a key "
                        "(use a '~regex' key for other patterns)"
                    )
                exact[key] = target
        # Longest prefix first; sort is stable so equal lengths keep declaration order.
        prefixes.sort(key=lambda item: len(item[0]), reverse=True)
        self._exact = exact
        self._prefixes = tuple(prefixes)
        self._regexes = tuple(regexes)
        self._fallback = fallback
        self._memo: dict[str, str] = {}

    def __repr__(self) -> str:
        return (
            f"ModelMapper(exact={len(self._exact)}, prefixes={len(self._prefixes)}, "
            f"regexes={len(self._regexes)}, fallback={self._fallback is not None})"
        )

    def map(self, model: str) -> str:
        """The provider model for ``model`` (``model`` itself when the target is empty)."""
        cached = self._memo.get(model)
        if cached is not None:
            return cached
        result = self._resolve(model)
        if len(self._memo) >= _MEMO_MAX:
            self._memo.clear()
        self._memo[model] = result
        return result

    def _resolve(self, model: str) -> str:
        target = self._exact.get(model)
        if target is not None:
            return target or model
        for prefix, target in self._prefixes:
            if model.startswith(prefix):
                return target or model
        for compiled, template in self._regexes:
            match = compiled.fullmatch(model)
            if match is not None:
                return _expand(template, match) or model
        if self._fallback is not None:
            return self._fallback or model
        return model
