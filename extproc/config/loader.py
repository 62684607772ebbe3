"""YAML/JSON documents -> one GatewayConfig proto, strictly.

Parsing goes through protobuf's json_format.ParseDict, so unknown fields are
errors and both snake_case and lowerCamelCase names work. Each document is one
of: the ASM plugin's config, the native config, an ASM LLMProvider or LLMRoute.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.message import Message

from extproc.config.errors import ConfigError
from extproc.config.v1 import config_pb2 as pb

NATIVE_KEYS = frozenset(
    {"providers", "routes", "consumers", "limits", "observability", "budgets", "unmatched"}
)
ASM_KINDS = {"LLMProvider": pb.LLMProvider, "LLMRoute": pb.LLMRoute}


class LoadedConfig:
    """The parsed documents, grouped by shape, before compilation."""

    def __init__(self) -> None:
        self.native: list[tuple[str, pb.GatewayConfig]] = []
        self.plugins: list[tuple[str, pb.PluginConfig]] = []
        self.llm_providers: list[tuple[str, pb.LLMProvider]] = []
        self.llm_routes: list[tuple[str, pb.LLMRoute]] = []


def load_file(path: str | Path) -> LoadedConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([(str(path), f"cannot read config file: {e.strerror}")]) from None
    return load_text(text, source=str(path))


def load_text(text: str, source: str = "config") -> LoadedConfig:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError([(source, f"{problem}{where}")]) from None
    if not docs:
        raise ConfigError([(source, "no document found")])
    out = LoadedConfig()
    problems: list[tuple[str, str]] = []
    for i, doc in enumerate(docs):
        where = source if len(docs) == 1 else f"{source}[doc {i}]"
        try:
            _load_document(doc, where, out)
        except ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise ConfigError(problems)
    return out


def _load_document(doc: Any, where: str, out: LoadedConfig) -> None:
    if not isinstance(doc, dict):
        raise ConfigError([(where, f"a document must be a mapping, got {type(doc).__name__}")])
    kind = doc.get("kind")
    if kind is not None:
        cls = ASM_KINDS.get(kind)
        if cls is None:
            raise ConfigError(
                [(f"{where}.kind", f"unknown kind {kind!r} (expected one of {sorted(ASM_KINDS)})")]
            )
        msg = _parse(doc, cls(), where)
        if isinstance(msg, pb.LLMProvider):
            out.llm_providers.append((where, msg))
        else:
            assert isinstance(msg, pb.LLMRoute)
            out.llm_routes.append((where, msg))
    elif NATIVE_KEYS.intersection(doc):
        out.native.append((where, _parse(_normalise_native(doc), pb.GatewayConfig(), where)))
    else:
        out.plugins.append((where, _parse(doc, pb.PluginConfig(), where)))


def _normalise_native(doc: dict[str, Any]) -> dict[str, Any]:
    """Accept model_mapping as a YAML mapping; keep its declaration order."""
    providers = doc.get("providers")
    if not isinstance(providers, list):
        return doc
    fixed = []
    for p in providers:
        if isinstance(p, dict):
            for key in ("model_mapping", "modelMapping"):
                mm = p.get(key)
                if isinstance(mm, dict):
                    p = {
                        **p,
                        key: [
                            {"from": str(k), "to": "" if v is None else str(v)}
                            for k, v in mm.items()
                        ],
                    }
        fixed.append(p)
    return {**doc, "providers": fixed}


def _parse(doc: dict[str, Any], msg: Message, where: str) -> Any:
    try:
        return json_format.ParseDict(doc, msg, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        raise ConfigError([(where, _clean_parse_error(str(e), doc))]) from None


_SECRET_KEY_WORDS = ("key", "token", "secret", "password")


def _secret_values(node: Any, secret: bool = False) -> set[str]:
    """Every string under a key that names a credential (api_key, api_tokens, keys, ...)."""
    out: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            name = str(k).lower()
            out |= _secret_values(v, secret or any(w in name for w in _SECRET_KEY_WORDS))
    elif isinstance(node, list):
        for v in node:
            out |= _secret_values(v, secret)
    elif secret and node is not None:
        out.add(str(node))
    return out


def _clean_parse_error(text: str, doc: dict[str, Any]) -> str:
    # ParseDict messages can quote the offending value ("... which is <value>"),
    # and a value under a credential field is a secret: redact those.
    # Whole values only: a short value must not cut words of the message apart
    # ("parse" -> "pa[redacted]se" for the value "r").
    for value in sorted(_secret_values(doc), key=len, reverse=True):
        if value:
            text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", "[redacted]", text)
    return text.replace("extproc.config.v1.", "")
