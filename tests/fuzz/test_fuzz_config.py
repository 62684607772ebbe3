"""Fuzz: any YAML through the loader and the compiler: only ConfigError comes out.

Documents are generated from the config proto's descriptors. Well-typed ones
use plausible values for the fields that tie a config together (names,
provider types, hosts), so that many compile and reach the deeper checks;
messy ones put a wrong type anywhere; and any text at all goes to the loader.
"""

from __future__ import annotations

from typing import Any

import yaml
from fuzzing import FUZZ, json_values
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import given
from hypothesis import strategies as st

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text
from extproc.config.v1 import config_pb2 as pb
from extproc.translators.registry import PROVIDER_CATALOG

ENV = {"KEY": "sk-env", "EMPTY": ""}
WORDS = [
    "deny", "allow", "all", "last_user", "user", "system", "authorization", "body:key",
    "header:x-k", "redis", "memory", "openai", "original", "http://127.0.0.1:1/v1",
    "/v1/chat/completions", "/compatible-mode/v1/chat/completions", "x", "${KEY}", "${NOPE}",
    "${EMPTY}", "^a+$", "(", "~gpt-(.*)", "gpt-*", "*", "max_tokens_cap", "a.com", "",
]  # fmt: skip
NAMES = st.sampled_from(["p", "q", "r", "a.com", "a.com@rule"])
HOSTS = st.sampled_from(
    ["a.com", "A.com:8080", "*.a.com", "[::1]:80", "127.0.0.1", "b.com:0", "*.a.com:1", "a*b"]
)
_known = st.sampled_from(WORDS)
words = st.one_of(_known, _known, _known, st.text(max_size=12))
_T = FieldDescriptor
_P = "extproc.config.v1."
# Fields whose values tie a config together: drawn from small pools.
OVERRIDES: dict[str, st.SearchStrategy[Any]] = {
    _P + "Provider.name": NAMES,
    _P + "Provider.type": st.sampled_from([*sorted(PROVIDER_CATALOG), "nope"]),
    _P + "Route.provider": NAMES,
    _P + "WeightedProvider.provider": NAMES,
    _P + "IntelligentGuard.provider": NAMES,
    _P + "LlmRewrite.provider": NAMES,
    _P + "LLMBackendRef.provider_host": NAMES,
    _P + "LLMProviderSpec.host": NAMES,
    _P + "LLMRouteSpec.host": HOSTS,
    _P + "PluginConfig.hosts": HOSTS,
    _P + "RouteMatch.hosts": HOSTS,
    _P + "Route.client_api": st.sampled_from(["openai", "ollama", "x"]),
    _P + "Route.name": NAMES,
    _P + "Consumer.name": st.sampled_from(["alice", "bob", ""]),
    _P + "Consumer.allowed_routes": NAMES,
    _P + "CustomProcessor.name": st.sampled_from(["max_tokens_cap", "nope"]),
}
# Present in every well-typed document (the compiler requires them).
REQUIRED = {
    _P + n
    for n in (
        "Provider.name",
        "PluginConfig.hosts",
        "LLMProvider.spec",
        "LLMProviderSpec.host",
        "LLMRoute.spec",
        "LLMRouteSpec.host",
        "LLMRouteRule.backend_refs",
        "Consumer.name",
        "Consumer.keys",
    )
}
VALID_DURATION = st.sampled_from(["10s", "0.5s", "0s", "-3s"])


def _scalar(f: FieldDescriptor, messy: bool) -> st.SearchStrategy[Any]:
    if f.type == _T.TYPE_STRING:
        return words
    if f.type == _T.TYPE_BOOL:
        return st.booleans()
    if messy:
        return st.integers(min_value=-5, max_value=2**33)
    return st.integers(min_value=0, max_value=70000)


def _value(f: FieldDescriptor, depth: int, messy: bool) -> st.SearchStrategy[Any]:
    v: st.SearchStrategy[Any]
    if f.full_name in OVERRIDES:
        v = OVERRIDES[f.full_name]
    elif f.message_type is not None:
        name = f.message_type.full_name
        if name == "google.protobuf.Duration":
            v = VALID_DURATION | st.sampled_from(["1h", 5]) if messy else VALID_DURATION
        elif name == "google.protobuf.BoolValue":
            v = st.booleans()
        elif name.startswith("google.protobuf."):
            v = json_values(8)
        else:
            v = message(f.message_type, depth + 1, messy)
    else:
        v = _scalar(f, messy)
    return st.one_of(v, v, v, json_values(4)) if messy else v


def message(d: Descriptor, depth: int = 0, messy: bool = False) -> st.SearchStrategy[Any]:
    if depth > 3:
        return st.just({})
    fields: dict[str, st.SearchStrategy[Any]] = {}
    required: dict[str, st.SearchStrategy[Any]] = {}
    oneof: dict[str, st.SearchStrategy[Any]] = {}
    for f in d.fields:
        need = not messy and f.full_name in REQUIRED
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            v = st.dictionaries(words, _value(f.message_type.fields[1], depth, messy), max_size=3)
        elif f.is_repeated:
            v = st.lists(_value(f, depth, messy), min_size=int(need), max_size=3)
        else:
            v = _value(f, depth, messy)
        # Both spellings are accepted: use both.
        key = f.name if depth % 2 == 0 else f.json_name
        if need:
            required[key] = v
        elif f.containing_oneof is not None and not messy:
            oneof[key] = v
        else:
            fields[key] = v
    out = st.fixed_dictionaries(required, optional=fields)
    if oneof:
        # One member of a oneof (messy documents may set several).
        out = st.tuples(out, st.sampled_from(sorted(oneof))).flatmap(
            lambda t: oneof[t[1]].map(lambda v, t=t: {**t[0], t[1]: v})
        )
    return out


def documents(messy: bool) -> st.SearchStrategy[Any]:
    return st.one_of(
        message(pb.PluginConfig.DESCRIPTOR, 0, messy),
        message(pb.GatewayConfig.DESCRIPTOR, 0, messy),
        message(pb.LLMProvider.DESCRIPTOR, 0, messy).map(lambda d: {**d, "kind": "LLMProvider"}),
        message(pb.LLMRoute.DESCRIPTOR, 0, messy).map(lambda d: {**d, "kind": "LLMRoute"}),
    )


def _compile(text: str) -> None:
    try:
        compile_config(load_text(text, "cfg"), ENV)
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) and isinstance(m, str) for p, m in e.problems)


@FUZZ
@given(st.lists(documents(messy=False), min_size=1, max_size=3))
def test_well_typed_documents(docs: list[Any]) -> None:
    _compile(yaml.safe_dump_all(docs, allow_unicode=True))


@FUZZ
@given(st.lists(st.one_of(documents(messy=True), json_values(10)), min_size=1, max_size=3))
def test_messy_documents(docs: list[Any]) -> None:
    _compile(yaml.safe_dump_all(docs, allow_unicode=True))


@FUZZ
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    _compile(text)
