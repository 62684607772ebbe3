"""Provider ``customSettings`` (Higress ai-proxy semantics) applied to a request body.

Each setting has a ``name``, a ``value`` (any JSON value), a ``mode`` and ``overwrite``:

* ``mode="raw"`` sets ``name`` as a top-level key of the body, exactly as given;
* ``mode="auto"`` (the default) knows ``max_tokens``, ``temperature``, ``top_p``,
  ``top_k`` and ``seed`` and writes each under the provider protocol's own name and place
  (for example gemini ``generationConfig.maxOutputTokens``, ollama ``options.num_predict``).
  A setting the protocol has no place for - or a name auto mode does not know - is skipped;
* ``overwrite=True`` (the default) replaces what the client sent; ``overwrite=False`` only
  fills the value in when the client did not send one.

Each provider module's spec says where auto settings go (``settings_paths``); placing
them is done once at compile (``resolve_custom_settings``), and applying the result to a
body is a few dict operations (``apply_resolved``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from extproc.translators.base import SettingPaths

Mode = Literal["auto", "raw"]


@dataclass(frozen=True, slots=True)
class CustomSetting:
    name: str
    value: Any
    mode: Mode = "auto"
    overwrite: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("custom setting: empty name")
        if self.mode not in ("auto", "raw"):
            raise ValueError(
                f"custom setting {self.name!r}: mode must be 'auto' or 'raw', not {self.mode!r}"
            )


@dataclass(frozen=True, slots=True)
class ResolvedSetting:
    """A setting placed for one protocol: ``path`` is where to write, ``aliases`` other
    paths that also count as a value sent by the client."""

    path: tuple[str, ...]
    value: Any
    overwrite: bool
    aliases: tuple[tuple[str, ...], ...] = ()


def resolve_custom_settings(
    table: SettingPaths, settings: Iterable[CustomSetting]
) -> tuple[ResolvedSetting, ...]:
    """Place ``settings`` in a wire API's body (``table``: the provider spec's
    ``settings_paths``); auto settings without a place are dropped."""
    out: list[ResolvedSetting] = []
    for setting in settings:
        if setting.mode == "raw":
            out.append(ResolvedSetting((setting.name,), setting.value, setting.overwrite))
            continue
        paths = table.get(setting.name)
        if paths is None:
            continue
        out.append(ResolvedSetting(paths[0], setting.value, setting.overwrite, paths[1:]))
    return tuple(out)


def _present(body: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = body
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _fresh(value: Any) -> Any:
    # Containers are copied so a request handler cannot mutate the configured value.
    if isinstance(value, dict | list):
        return copy.deepcopy(value)
    return value


def apply_resolved(body: dict[str, Any], resolved: Iterable[ResolvedSetting]) -> dict[str, Any]:
    """Apply pre-resolved settings to ``body`` in place and return it."""
    for setting in resolved:
        if not setting.overwrite and (
            _present(body, setting.path) or any(_present(body, a) for a in setting.aliases)
        ):
            continue
        node = body
        for part in setting.path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[setting.path[-1]] = _fresh(setting.value)
    return body
