"""LoadedConfig -> Runtime: every semantic check, each error with its field path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format

from extproc.config.errors import ConfigError
from extproc.config.loader import LoadedConfig
from extproc.config.runtime import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_STREAM_LINE_BYTES,
    AuthRuntime,
    ConsumerRuntime,
    HeaderMatcher,
    Limits,
    ProviderRuntime,
    RouteRuntime,
    RouteTable,
    Runtime,
)
from extproc.config.v1 import config_pb2 as pb
from extproc.guard.cache import VerdictCache
from extproc.guard.client import GuardClient
from extproc.processors.base import Processor
from extproc.processors.chat_client import ChatClient
from extproc.processors.context import Context, ContextSource
from extproc.processors.llm_guard import LlmGuard
from extproc.processors.llm_rewrite import LlmRewrite
from extproc.processors.prompt_decorator import PromptDecorator
from extproc.processors.regex_guard import RegexGuard, compile_patterns
from extproc.processors.registry import REGISTRY as PROCESSOR_REGISTRY
from extproc.providers.custom_settings import CustomSetting, resolve_custom_settings
from extproc.providers.model_mapping import ModelMapper
from extproc.providers.regex import compile_re2
from extproc.providers.secrets import SecretError, resolve_secret
from extproc.providers.token_pool import TokenPool
from extproc.translators.registry import PROVIDER_CATALOG

# What a route's clients speak; "auto" takes the Anthropic Messages API by path.
_CLIENT_APIS = ("openai", "ollama", "anthropic", "auto")

DEFAULT_GUARD_PATH = "/compatible-mode/v1/chat/completions"
DEFAULT_GUARD_MODEL = "qwen-turbo"
CHAT_SUFFIX = "/chat/completions"


def _secs(msg: Any, field: str, default: float) -> float:
    """A google.protobuf.Duration field in seconds: its value when set ("0s" included)."""
    return getattr(msg, field).ToTimedelta().total_seconds() if msg.HasField(field) else default


def _bool(msg: Any, field: str, default: bool) -> bool:
    """A google.protobuf.BoolValue field: its value when set (false included)."""
    return bool(getattr(msg, field).value) if msg.HasField(field) else default


class _Compiler:
    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[tuple[str, str]] = []
        self.providers: dict[str, ProviderRuntime] = {}
        self.provider_where: dict[str, str] = {}

    def err(self, path: str, msg: str) -> None:
        self.problems.append((path, msg))

    def positive(self, msg: Any, field: str, default: float, path: str) -> float:
        """A duration that must be more than zero (timeouts, windows, intervals)."""
        secs = _secs(msg, field, default)
        if secs <= 0:
            self.err(f"{path}.{field}", 'must be a positive duration such as "10s" or "0.5s"')
        return secs

    # -- secrets -----------------------------------------------------------

    def secret(self, value: str, env: str, file: str, path: str, required: bool = False) -> str:
        if not (value or env or file):
            if required:
                self.err(path, "is required")
            return ""
        try:
            out = resolve_secret(value or None, env or None, file or None, path, environ=self.env)
        except SecretError as e:
            self.err(path, str(e))
            return ""
        if required and not out:
            self.err(path, "is required")
        return out

    def secret_list(self, values: Any, envs: Any, files: Any, path: str) -> list[str]:
        out = [self.secret(v, "", "", f"{path}.api_tokens[{i}]") for i, v in enumerate(values)]
        out += [self.secret("", v, "", f"{path}.api_tokens_env[{i}]") for i, v in enumerate(envs)]
        out += [self.secret("", "", v, f"{path}.api_tokens_file[{i}]") for i, v in enumerate(files)]
        return [t for t in out if t]

    # -- providers ---------------------------------------------------------

    def provider(self, p: pb.Provider, path: str) -> None:
        if not p.name:
            self.err(f"{path}.name", "is required")
            return
        if p.name in self.providers:
            self.err(
                f"{path}.name",
                f"duplicate provider name {p.name!r} (first at {self.provider_where[p.name]})",
            )
            return
        ptype = p.type or "generic"
        catalog = PROVIDER_CATALOG.get(ptype)
        if catalog is None:
            self.err(
                f"{path}.type",
                f"unknown provider type {ptype!r} (known: {', '.join(sorted(PROVIDER_CATALOG))})",
            )
            return
        host, base_path = catalog.host or "", catalog.base_path
        if p.base_url:
            u = urlsplit(p.base_url)
            if u.scheme not in ("http", "https") or not u.netloc:
                self.err(f"{path}.base_url", "must be an absolute http(s) URL")
            host, base_path = u.netloc, u.path.rstrip("/")
        if p.host:
            host = p.host
        if p.base_path:
            base_path = p.base_path.rstrip("/")
        tokens = self.secret_list(p.api_tokens, p.api_tokens_env, p.api_tokens_file, path)
        if not tokens and not catalog.auth.startswith("optional"):
            self.err(f"{path}.api_tokens", f"provider type {ptype!r} needs at least one API token")
        mapper = None
        if p.model_mapping:
            try:
                mapper = ModelMapper({getattr(e, "from"): e.to for e in p.model_mapping})
            except ValueError as e:
                self.err(f"{path}.model_mapping", str(e))
        protocol = p.protocol or "openai"
        if protocol not in ("openai", "original"):
            self.err(f"{path}.protocol", f"must be 'openai' or 'original', not {protocol!r}")
        settings: tuple[Any, ...] = ()
        if p.custom_settings:
            try:
                settings = resolve_custom_settings(
                    catalog.settings_paths,
                    [
                        CustomSetting(
                            s.name,
                            json_format.MessageToDict(s.value),
                            s.mode or "auto",
                            _bool(s, "overwrite", True),
                        )
                        for s in p.custom_settings
                    ],
                )
            except ValueError as e:
                self.err(f"{path}.custom_settings", str(e))
        self.provider_where[p.name] = path
        self.providers[p.name] = ProviderRuntime(
            name=p.name,
            spec=catalog,
            host=host,
            base_path=base_path,
            tokens=TokenPool(tokens, cooldown_s=_secs(p, "token_cooldown", 60.0))
            if tokens
            else None,
            timeout_s=self.positive(p, "timeout", 120.0, path),
            mapper=mapper,
            custom_settings=settings,
            protocol=protocol,
            default_model=p.default_model,
            default_stream=p.default_stream.value if p.HasField("default_stream") else None,
            options={
                **json_format.MessageToDict(p.options),
                "include_usage": _bool(p, "stream_usage", True),
            },
        )

    # -- processors --------------------------------------------------------

    def guard(self, g: pb.IntelligentGuard, path: str) -> Processor | None:
        if g.provider:
            prov = self.providers.get(g.provider)
            if prov is None:
                self.err(f"{path}.provider", f"no provider named {g.provider!r}")
                return None
            host, _, port_s = prov.host.partition(":")
            port = int(port_s) if port_s else 443
            gpath = g.path or prov.base_path + CHAT_SUFFIX
            key = prov.tokens.pick() if prov.tokens else ""
        else:
            if not g.host:
                self.err(f"{path}.host", "is required (or name a provider)")
            host, port, gpath = g.host, g.port or 443, g.path or DEFAULT_GUARD_PATH
            key = self.secret(
                g.api_key, g.api_key_env, g.api_key_file, f"{path}.api_key", required=True
            )
        on_error = g.on_error or "deny"
        if on_error not in ("deny", "allow"):
            self.err(f"{path}.on_error", f"must be 'deny' or 'allow', not {on_error!r}")
        judge = g.judge or "all_user"
        if judge not in ("all_user", "last_user"):
            self.err(f"{path}.judge", f"must be 'all_user' or 'last_user', not {judge!r}")
        if not gpath.startswith("/"):
            self.err(f"{path}.path", "must start with '/'")
        timeout = self.positive(g, "timeout", 10.0, path)
        if self.problems:
            return None
        ttl = _secs(g, "cache_ttl", 60.0)
        cache = VerdictCache(max_entries=g.cache_size or 10000, ttl_s=ttl) if ttl > 0 else None
        client = GuardClient(
            host=host,
            port=port,
            path=gpath,
            model=g.model or DEFAULT_GUARD_MODEL,
            api_key=key,
            timeout_s=timeout,
            tls=g.tls.value if g.HasField("tls") else None,
            system_prompt=g.system_prompt or None,
            max_concurrency=g.max_concurrency or 32,
            cache=cache,
        )
        return LlmGuard(client, on_error, judge, _bool(g, "show_reason", True))

    def processor(self, p: pb.Processor, path: str) -> Processor | None:
        kind = p.WhichOneof("kind")
        if kind is None:
            self.err(
                path,
                "names no processor (one of regex_guard, llm_guard, prompt_decorator, context, "
                "llm_rewrite, custom)",
            )
            return None
        path = f"{path}.{kind}"
        if kind == "regex_guard":
            return self.regex_guard(p.regex_guard.allow_patterns, p.regex_guard.deny_patterns, path)
        if kind == "llm_guard":
            return self.guard(p.llm_guard, path)
        if kind == "prompt_decorator":
            d = p.prompt_decorator
            for name, msgs in (("prepend", d.prepend), ("append", d.append)):
                for i, m in enumerate(msgs):
                    if m.role not in ("system", "user", "assistant"):
                        self.err(
                            f"{path}.{name}[{i}].role",
                            f"must be system, user or assistant, not {m.role!r}",
                        )
            return PromptDecorator(
                tuple((m.role, m.content) for m in d.prepend),
                tuple((m.role, m.content) for m in d.append),
            )
        if kind == "context":
            c = p.context
            if bool(c.file) == bool(c.url):
                self.err(path, "needs exactly one of file or url")
                return None
            return Context(
                ContextSource(c.file, c.url, c.max_bytes or 256 * 1024),
                self.positive(c, "refresh", 30.0, path),
            )
        if kind == "llm_rewrite":
            return self.rewrite(p.llm_rewrite, path)
        if kind == "custom":
            return self.custom(p.custom, path)
        raise AssertionError(kind)

    def custom(self, c: pb.CustomProcessor, path: str) -> Processor | None:
        cls = PROCESSOR_REGISTRY.get(c.name)
        if cls is None:
            known = ", ".join(sorted(PROCESSOR_REGISTRY)) or "none"
            self.err(f"{path}.name", f"unknown processor {c.name!r} (registered: {known})")
            return None
        try:
            return cls.from_config(json_format.MessageToDict(c.config))
        except ValueError as e:
            self.err(f"{path}.config", str(e))
            return None

    def regex_guard(self, allow: Any, deny: Any, path: str) -> Processor | None:
        a, pa = compile_patterns(list(allow), f"{path}.allow_patterns")
        d, pd = compile_patterns(list(deny), f"{path}.deny_patterns")
        self.problems += pa + pd
        if a is None and d is None:
            return None
        return RegexGuard(a, d)

    def rewrite(self, r: pb.LlmRewrite, path: str) -> Processor | None:
        if r.provider:
            prov = self.providers.get(r.provider)
            if prov is None:
                self.err(f"{path}.provider", f"no provider named {r.provider!r}")
                return None
            scheme = (
                "http"
                if prov.type in ("ollama", "vllm", "generic")
                and prov.host.startswith(("127.", "localhost"))
                else "https"
            )
            base_url = f"{scheme}://{prov.host}"
            rpath = r.path or prov.base_path + CHAT_SUFFIX
            key = prov.tokens.pick() if prov.tokens else ""
            model = r.model or prov.default_model
        else:
            if not r.host:
                self.err(f"{path}.host", "is required (or name a provider)")
                return None
            port = r.port or 443
            tls = r.tls.value if r.HasField("tls") else port == 443
            base_url = f"{'https' if tls else 'http'}://{r.host}:{port}"
            rpath = r.path or DEFAULT_GUARD_PATH
            key = self.secret(r.api_key, r.api_key_env, "", f"{path}.api_key")
            model = r.model
        if not model:
            self.err(f"{path}.model", "is required")
        on_error = r.on_error or "deny"
        if on_error not in ("deny", "allow"):
            self.err(f"{path}.on_error", f"must be 'deny' or 'allow', not {on_error!r}")
        timeout = self.positive(r, "timeout", 10.0, path)
        if self.problems:
            return None
        client = ChatClient(base_url, rpath, model, key, timeout)
        return LlmRewrite(client, r.system_prompt, on_error)

    # -- routes ------------------------------------------------------------

    def route(
        self,
        r: pb.Route,
        path: str,
        default_rewrite: bool = True,
        extra_processors: list[Processor | None] | None = None,
    ) -> RouteRuntime | None:
        refs = (
            [(r.provider, 1)] if r.provider else [(w.provider, w.weight or 1) for w in r.providers]
        )
        if r.provider and r.providers:
            self.err(path, "set provider or providers, not both")
        if not refs:
            self.err(f"{path}.provider", "is required")
        provs = []
        for i, (name, _) in enumerate(refs):
            prov = self.providers.get(name)
            if prov is None:
                self.err(
                    f"{path}.providers[{i}]" if r.providers else f"{path}.provider",
                    f"no provider named {name!r}",
                )
            else:
                provs.append(prov)
        hosts, suffixes = [], []
        for i, h in enumerate(r.match.hosts):
            h = h.lower()
            if h.startswith("*."):
                suffixes.append(h[1:])
            elif "*" in h:
                self.err(
                    f"{path}.match.hosts[{i}]", f"{h!r}: only a leading '*.' wildcard is supported"
                )
            else:
                hosts.append(h)
        matchers = [
            self.header_matcher(name, m, f"{path}.match.headers[{name!r}]")
            for name, m in sorted(r.match.headers.items())
        ]
        procs = list(extra_processors or [])
        procs += [self.processor(p, f"{path}.processors[{i}]") for i, p in enumerate(r.processors)]
        client_api = r.client_api or "openai"
        if client_api not in _CLIENT_APIS:
            self.err(
                f"{path}.client_api",
                f"must be one of {', '.join(_CLIENT_APIS)}, not {client_api!r}",
            )
        if client_api in ("anthropic", "auto"):
            for prov in provs:
                if prov.protocol == "original" and prov.type != "claude":
                    self.err(
                        f"{path}.client_api",
                        f"Anthropic requests cannot pass untouched to {prov.name!r} "
                        f"({prov.type!r}, protocol original); use a claude provider "
                        "or protocol openai",
                    )
        if client_api == "ollama":
            for prov in provs:
                if prov.type != "ollama":
                    self.err(
                        f"{path}.client_api",
                        f"an Ollama-API route needs ollama providers; {prov.name!r} is {prov.type!r}",
                    )
        rewrite = _bool(r, "rewrite", default_rewrite)
        if rewrite:
            for prov in provs:
                if not prov.host:
                    self.err(
                        f"{path}.provider",
                        f"provider {prov.name!r} has no host (set host or base_url)",
                    )
        auth = None
        if r.HasField("auth"):
            auth = self.auth(r.auth, f"{path}.auth")
        if self.problems:
            return None
        return RouteRuntime(
            name=r.name or path,
            hosts=tuple(hosts),
            host_suffixes=tuple(suffixes),
            path_prefix=r.match.path_prefix,
            header_matchers=tuple(m for m in matchers if m is not None),
            providers=tuple(provs),
            weights=tuple(w for _, w in refs),
            processors=tuple(p for p in procs if p is not None),
            allow_streaming=_bool(r, "allow_streaming", True),
            allow_non_streaming=_bool(r, "allow_non_streaming", True),
            client_api=client_api,
            auth=auth,
            rewrite=rewrite,
        )

    def auth(self, a: pb.RouteAuth, path: str) -> AuthRuntime:
        sources = tuple(a.key_sources) or ("authorization", "x-api-key")
        for i, s in enumerate(sources):
            if s not in ("authorization", "x-api-key", "body:key") and not (
                s.startswith("header:") and len(s) > 7
            ):
                self.err(
                    f"{path}.key_sources[{i}]",
                    f"{s!r}: expected authorization, x-api-key, header:<name> or body:key",
                )
        return AuthRuntime(a.required, sources, a.forward_consumer_header.lower())

    def header_matcher(self, name: str, m: pb.StringMatch, path: str) -> HeaderMatcher | None:
        rx = None
        if m.regex:
            try:
                rx = compile_re2(m.regex, "")
            except ValueError as e:
                self.err(f"{path}.regex", str(e))
                return None
        if not (m.exact or m.prefix or m.regex):
            self.err(path, "needs one of exact, prefix, regex")
        return HeaderMatcher(name.lower(), m.exact or None, m.prefix or None, rx)


def compile_config(loaded: LoadedConfig, env: Mapping[str, str] | None = None) -> Runtime:
    c = _Compiler(os.environ if env is None else env)
    native = pb.GatewayConfig()
    for _, doc in loaded.native:
        native.MergeFrom(doc)

    # ASM LLMProvider documents become providers; routeSpecificConfigs become
    # variants named "<host>@<rule>" that LLMRoute rules pick by rule name.
    asm_providers: dict[str, str] = {}
    for where, lp in loaded.llm_providers:
        for p, rule in _llm_provider_to_native(lp, where, c):
            c.provider(
                p, where if not rule else f"{where}.spec.configs.routeSpecificConfigs[{rule!r}]"
            )
            asm_providers[p.name] = p.name
    for i, p in enumerate(native.providers):
        c.provider(p, f"providers[{i}]")

    routes: list[RouteRuntime | None] = []
    for i, (where, plugin) in enumerate(loaded.plugins):
        routes.append(_plugin_route(plugin, where, i, c))
    for where, lr in loaded.llm_routes:
        for j, r in enumerate(_llm_route_to_native(lr, where, c)):
            routes.append(c.route(r, f"{where}.spec.rules[{j}]"))
    for i, r in enumerate(native.routes):
        routes.append(c.route(r, f"routes[{i}]"))

    consumers, keys = _consumers(native.consumers, c)
    lim = native.limits
    budgets = native.budgets
    backend = budgets.backend or "memory"
    if backend not in ("memory", "redis"):
        c.err("budgets.backend", f"must be 'memory' or 'redis', not {backend!r}")
    window = c.positive(budgets, "window", 60.0, "budgets")
    if backend == "redis" and not budgets.redis_url:
        c.err("budgets.redis_url", "is required when backend is 'redis'")
    if not any(r is not None for r in routes) and not c.problems:
        c.err("routes", "the config defines no route (no plugin hosts, LLMRoute or routes)")
    if c.problems:
        raise ConfigError(c.problems)
    return Runtime(
        routes=RouteTable(tuple(r for r in routes if r is not None)),
        providers=dict(c.providers),
        consumers=tuple(consumers),
        consumer_keys=tuple(keys),
        limits=Limits(
            max_request_bytes=lim.max_request_bytes or DEFAULT_MAX_REQUEST_BYTES,
            max_response_bytes=lim.max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES,
            max_stream_line_bytes=lim.max_stream_line_bytes or DEFAULT_MAX_STREAM_LINE_BYTES,
        ),
        metadata_namespace=native.observability.metadata_namespace or "llm_extproc",
        debug_log_prompts=native.observability.debug_log_prompts,
        budget_window_s=window,
        budget_backend=backend,
        redis_url=budgets.redis_url,
    )


def _plugin_route(
    plugin: pb.PluginConfig, where: str, index: int, c: _Compiler
) -> RouteRuntime | None:
    if not plugin.hosts:
        c.err(f"{where}.hosts", "is required: the plugin acts only on these hosts")
    for i, h in enumerate(plugin.hosts):
        if not h or "/" in h or " " in h:
            c.err(f"{where}.hosts[{i}]", f"{h!r} is not a host or host:port")
    key = c.secret(plugin.api_key, plugin.api_key_env, plugin.api_key_file, f"{where}.api_key")
    name = f"plugin-{index}"
    prov = pb.Provider(
        name=name, type="generic", default_model=plugin.default_model, host="", base_path=""
    )
    if key:
        prov.api_tokens.append(key)
    # The plugin never rewrote host or path: Envoy's own route picks the upstream.
    c.provider(prov, where)
    route = pb.Route(name=name, provider=name)
    route.match.hosts.extend(plugin.hosts)
    route.rewrite.value = False
    # The plugin's own checks come first; errors point at the plugin's fields.
    procs: list[Processor | None] = []
    if plugin.allow_patterns or plugin.deny_patterns:
        procs.append(c.regex_guard(plugin.allow_patterns, plugin.deny_patterns, where))
    if plugin.HasField("intelligent_guard"):
        procs.append(c.guard(plugin.intelligent_guard, f"{where}.intelligent_guard"))
    procs += [c.processor(p, f"{where}.processors[{i}]") for i, p in enumerate(plugin.processors)]
    if plugin.HasField("auth"):
        route.auth.CopyFrom(plugin.auth)
    return c.route(route, where, default_rewrite=False, extra_processors=procs)


def _asm_type(host: str) -> str:
    for name, entry in PROVIDER_CATALOG.items():
        if entry.host and entry.host == host:
            return name
    return "generic"


def _llm_provider_to_native(
    lp: pb.LLMProvider, where: str, c: _Compiler
) -> list[tuple[pb.Provider, str]]:
    spec = lp.spec
    if not spec.host:
        c.err(f"{where}.spec.host", "is required")
        return []
    base_path = ""
    if spec.path:
        if not spec.path.endswith(CHAT_SUFFIX):
            c.err(f"{where}.spec.path", f"must end with {CHAT_SUFFIX!r}")
        base_path = spec.path[: -len(CHAT_SUFFIX)]
    ptype = spec.type or _asm_type(spec.host)

    def make(name: str, cfg: pb.OpenAIConfig) -> pb.Provider:
        p = pb.Provider(
            name=name, type=ptype, host=spec.host, base_path=base_path, default_model=cfg.model
        )
        p.default_stream.value = cfg.stream
        if cfg.api_key:
            p.api_tokens.append(cfg.api_key)
        return p

    out = [(make(spec.host, spec.configs.default_config.open_ai_config), "")]
    for rule, cfg in sorted(spec.configs.route_specific_configs.items()):
        out.append((make(f"{spec.host}@{rule}", cfg.open_ai_config), rule))
    return out


def _llm_route_to_native(lr: pb.LLMRoute, where: str, c: _Compiler) -> list[pb.Route]:
    spec = lr.spec
    if not spec.host:
        c.err(f"{where}.spec.host", "is required")
    out = []
    for j, rule in enumerate(spec.rules):
        if not rule.backend_refs:
            c.err(f"{where}.spec.rules[{j}].backendRefs", "needs at least one backend")
            continue
        matches = list(rule.matches) or [pb.LLMRouteMatch()]
        for m in matches:
            r = pb.Route(name=rule.name or f"{lr.metadata.name or 'llmroute'}-{j}")
            r.match.hosts.append(spec.host)
            for hname, hm in m.headers.items():
                r.match.headers[hname].CopyFrom(hm)
            for ref in rule.backend_refs:
                variant = f"{ref.provider_host}@{rule.name}"
                r.providers.add(
                    provider=variant if variant in c.providers else ref.provider_host,
                    weight=ref.weight or 1,
                )
            out.append(r)
    return out


def _consumers(
    consumers: Any, c: _Compiler
) -> tuple[list[ConsumerRuntime], list[tuple[bytes, ConsumerRuntime]]]:
    out, keys = [], []
    names: set[str] = set()
    for i, cons in enumerate(consumers):
        path = f"consumers[{i}]"
        if not cons.name:
            c.err(f"{path}.name", "is required")
            continue
        if cons.name in names:
            c.err(f"{path}.name", f"duplicate consumer {cons.name!r}")
        names.add(cons.name)
        rt = ConsumerRuntime(
            cons.name,
            frozenset(cons.allowed_models),
            frozenset(cons.allowed_routes),
            cons.token_budget,
        )
        ks = [c.secret(v, "", "", f"{path}.keys[{j}]") for j, v in enumerate(cons.keys)]
        ks += [c.secret("", v, "", f"{path}.keys_env[{j}]") for j, v in enumerate(cons.keys_env)]
        ks += [c.secret("", "", v, f"{path}.keys_file[{j}]") for j, v in enumerate(cons.keys_file)]
        if not any(ks):
            c.err(f"{path}.keys", "a consumer needs at least one key")
        out.append(rt)
        keys += [(k.encode(), rt) for k in ks if k]
    return out, keys
