"""ASM and plugin documents -> native config messages, before compiling.

The ASM wasm plugin's config becomes one provider (`plugin-<n>`, the plugin's
key, no host: Envoy's own route picks the upstream) and one route that keeps
host and path (`rewrite: false`) and runs the plugin's checks first. An ASM
`LLMProvider` becomes a provider named after its host, plus one variant
`<host>@<rule>` per `routeSpecificConfigs` entry; an `LLMRoute` becomes one
route per rule and match, picking a rule's variant when there is one.

Every route comes with the field path of each of its processors, so errors
point at what the user wrote (`cfg.deny_patterns[0]`, not a synthetic
`processors[0].regex_guard`).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Protocol

from extproc.config.fields import CHAT_SUFFIX
from extproc.config.runtime import canonical_host
from extproc.config.v1 import config_pb2 as pb
from extproc.translators.registry import DEFAULT_TYPE, PROVIDER_CATALOG


class Sink(Protocol):
    """Where desugaring reports problems and resolves the plugin's key."""

    def err(self, path: str, msg: str) -> None: ...

    def secret(self, value: str, env: str, file: str, path: str, required: bool = False) -> str: ...


@dataclass(frozen=True, slots=True)
class RouteSpec:
    route: pb.Route
    path: str
    # The field path of each of route.processors' settings (of the kind set, if any).
    processor_paths: tuple[str, ...]


def native_route(r: pb.Route, path: str) -> RouteSpec:
    return RouteSpec(
        r,
        path,
        tuple(processor_path(p, f"{path}.processors[{i}]") for i, p in enumerate(r.processors)),
    )


def processor_path(p: pb.Processor, path: str) -> str:
    kind = p.WhichOneof("kind")
    return f"{path}.{kind}" if kind else path


def plugin(
    plug: pb.PluginConfig, where: str, index: int, sink: Sink
) -> tuple[pb.Provider, RouteSpec]:
    """The plugin's provider and route; `index` numbers the plugin documents."""
    if not plug.hosts:
        sink.err(f"{where}.hosts", "is required: the plugin acts only on these hosts")
    hosts = []
    for i, h in enumerate(plug.hosts):
        problem = canonical_host(h)[1]
        if not h or "/" in h or " " in h:
            problem = f"{h!r} is not a host or host:port"
        if problem:
            sink.err(f"{where}.hosts[{i}]", problem)
        else:
            hosts.append(h)
    key = sink.secret(plug.api_key, plug.api_key_env, plug.api_key_file, f"{where}.api_key")
    name = f"plugin-{index}"
    prov = pb.Provider(name=name, type=DEFAULT_TYPE, default_model=plug.default_model)
    if key:
        prov.api_tokens.append(key)
    route = pb.Route(name=name, provider=name)
    route.match.hosts.extend(hosts)
    # The plugin never rewrote host or path: Envoy's own route picks the upstream.
    route.rewrite.value = False
    if plug.HasField("auth"):
        route.auth.CopyFrom(plug.auth)
    # The plugin's own checks come first; their errors point at the plugin's fields.
    paths: list[str] = []
    if plug.allow_patterns or plug.deny_patterns or plug.roles:
        route.processors.add().regex_guard.CopyFrom(
            pb.RegexGuard(
                allow_patterns=plug.allow_patterns,
                deny_patterns=plug.deny_patterns,
                roles=plug.roles,
            )
        )
        paths.append(where)
    if plug.HasField("intelligent_guard"):
        route.processors.add().llm_guard.CopyFrom(plug.intelligent_guard)
        paths.append(f"{where}.intelligent_guard")
    for i, p in enumerate(plug.processors):
        route.processors.add().CopyFrom(p)
        paths.append(processor_path(p, f"{where}.processors[{i}]"))
    return prov, RouteSpec(route, where, tuple(paths))


def asm_type(host: str) -> str:
    """The provider type whose catalog host is `host` (generic when none is)."""
    for name, entry in PROVIDER_CATALOG.items():
        if entry.host and entry.host == host:
            return name
    return DEFAULT_TYPE


def llm_provider(lp: pb.LLMProvider, where: str, sink: Sink) -> list[tuple[pb.Provider, str]]:
    """The providers of an LLMProvider document, each with its field path."""
    spec = lp.spec
    if not spec.host:
        sink.err(f"{where}.spec.host", "is required")
        return []
    base_path = ""
    if spec.path:
        if not spec.path.endswith(CHAT_SUFFIX):
            sink.err(f"{where}.spec.path", f"must end with {CHAT_SUFFIX!r}")
        base_path = spec.path[: -len(CHAT_SUFFIX)]
    ptype = spec.type or asm_type(spec.host)

    def make(name: str, cfg: pb.OpenAIConfig) -> pb.Provider:
        p = pb.Provider(
            name=name, type=ptype, host=spec.host, base_path=base_path, default_model=cfg.model
        )
        p.default_stream.value = cfg.stream
        if cfg.api_key:
            p.api_tokens.append(cfg.api_key)
        return p

    out = [(make(spec.host, spec.configs.default_config.open_ai_config), where)]
    for rule, cfg in sorted(spec.configs.route_specific_configs.items()):
        out.append(
            (
                make(f"{spec.host}@{rule}", cfg.open_ai_config),
                f"{where}.spec.configs.routeSpecificConfigs[{rule!r}]",
            )
        )
    return out


def llm_route(
    lr: pb.LLMRoute, where: str, sink: Sink, providers: Container[str]
) -> list[RouteSpec]:
    """The routes of an LLMRoute document; `providers` are the names defined so far."""
    spec = lr.spec
    if not spec.host:
        sink.err(f"{where}.spec.host", "is required")
    out = []
    for j, rule in enumerate(spec.rules):
        path = f"{where}.spec.rules[{j}]"
        if not rule.backend_refs:
            sink.err(f"{path}.backendRefs", "needs at least one backend")
            continue
        for m in list(rule.matches) or [pb.LLMRouteMatch()]:
            r = pb.Route(name=rule.name or f"{lr.metadata.name or 'llmroute'}-{j}")
            r.match.hosts.append(spec.host)
            for hname, hm in m.headers.items():
                r.match.headers[hname].CopyFrom(hm)
            for ref in rule.backend_refs:
                variant = f"{ref.provider_host}@{rule.name}"
                r.providers.add(
                    provider=variant if variant in providers else ref.provider_host,
                    weight=ref.weight or 1,
                )
            out.append(native_route(r, path))
    return out
