"""LoadedConfig -> Runtime: every semantic check, each error with its field path.

ASM and plugin documents become native messages first (`config/asm.py`);
built-in processors check and build themselves (`from_proto`, listed in
`processors/registry.py`). Compiling opens no connection and takes no provider
token: processors open their clients in `start()`, and pick a token per call.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from extproc.cache.policy import (
    BACKENDS,
    DEFAULT_LOOKUP_TIMEOUT_S,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    DEFAULT_MAX_ENTRY_BYTES,
    DEFAULT_TTL_S,
    CachePolicy,
)
from extproc.client_apis.registry import DEFAULT, ROUTE_APIS
from extproc.config import asm
from extproc.config.errors import ConfigError
from extproc.config.fallback import compile_fallback
from extproc.config.fields import flag as _bool
from extproc.config.fields import secs as _secs
from extproc.config.loader import LoadedConfig
from extproc.config.providers import (
    cloud_of,
    mapper_of,
    serving_problem,
    settings_of,
    upstream_of,
)
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
    TracingConfig,
    canonical_host,
)
from extproc.config.shadowing import overlap_warnings, unreachable_routes
from extproc.config.v1 import config_pb2 as pb
from extproc.cost import Price, price_table
from extproc.processors.base import Processor
from extproc.processors.registry import BUILTIN
from extproc.processors.registry import REGISTRY as PROCESSOR_REGISTRY
from extproc.providers.redact import Redactor
from extproc.providers.regex import compile_re2
from extproc.providers.secrets import SecretError, resolve_secret
from extproc.providers.token_pool import TokenPool
from extproc.translators.registry import DEFAULT_TYPE, PROVIDER_CATALOG

log = logging.getLogger("extproc.config")

# Headers that carry a client's key: never part of a cache key's inputs.
_KEY_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})


class _Compiler:
    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[tuple[str, str]] = []
        self.providers: dict[str, ProviderRuntime] = {}
        self.secrets: list[str] = []  # every secret resolved so far
        self.provider_where: dict[str, str] = {}
        self.redis_url = ""

    def err(self, path: str, msg: str) -> None:
        self.problems.append((path, msg))

    def positive(self, msg: Any, field: str, default: float, path: str) -> float:
        """A duration that must be more than zero (timeouts, windows, intervals)."""
        secs = _secs(msg, field, default)
        if secs <= 0:
            self.err(f"{path}.{field}", 'must be a positive duration such as "10s" or "0.5s"')
        return secs

    def cooldown(self, p: pb.Provider, path: str) -> float:
        secs = _secs(p, "token_cooldown", 60.0)
        if secs < 0:
            self.err(f"{path}.token_cooldown", 'must not be negative ("0s" disables it)')
            return 0.0
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
            self.err(path, e.detail)
            return ""
        if required and not out:
            self.err(path, "is required")
        if out:
            self.secrets.append(out)
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
        ptype = p.type or DEFAULT_TYPE
        catalog = PROVIDER_CATALOG.get(ptype)
        if catalog is None:
            self.err(
                f"{path}.type",
                f"unknown provider type {ptype!r} (known: {', '.join(sorted(PROVIDER_CATALOG))})",
            )
            return
        host, base_path = upstream_of(p, catalog, path, self.err)
        cloud = cloud_of(p, catalog, path, self.err, self.secret)
        if cloud is not None:  # the region's (or endpoint's) host unless host/base_url say
            host = p.host or (host if p.base_url else cloud.host)
            base_path = p.base_path.rstrip("/") or (base_path if p.base_url else cloud.base_path)
        before = len(self.problems)
        tokens = self.secret_list(p.api_tokens, p.api_tokens_env, p.api_tokens_file, path)
        # A token that failed to resolve is already reported under its own path.
        if not tokens and len(self.problems) == before and not catalog.auth.optional:
            self.err(f"{path}.api_tokens", f"provider type {ptype!r} needs at least one API token")
        protocol = p.protocol or "openai"
        if protocol not in ("openai", "original"):
            self.err(f"{path}.protocol", f"must be 'openai' or 'original', not {protocol!r}")
        self.provider_where[p.name] = path
        self.providers[p.name] = ProviderRuntime(
            name=p.name,
            spec=catalog,
            host=host,
            base_path=base_path,
            tokens=TokenPool(tokens, cooldown_s=self.cooldown(p, path)) if tokens else None,
            redactor=Redactor((*tokens, *(cloud.secrets if cloud is not None else ()))),
            timeout_s=self.positive(p, "timeout", 120.0, path),
            mapper=mapper_of(p, path, self.err),
            custom_settings=settings_of(p, catalog, path, self.err),
            protocol=protocol,
            default_model=p.default_model,
            default_stream=p.default_stream.value if p.HasField("default_stream") else None,
            options={
                **json_format.MessageToDict(p.options),
                "include_usage": _bool(p, "stream_usage", True),
            },
            upstream_auth=cloud.auth if cloud is not None else None,
        )

    # -- processors --------------------------------------------------------

    def processor(self, p: pb.Processor, path: str) -> Processor | None:
        """`path` is the field path of the processor's settings (asm.processor_path)."""
        kind = p.WhichOneof("kind")
        if kind is None:
            self.err(
                path,
                "names no processor (one of regex_guard, llm_guard, prompt_decorator, context, "
                "llm_rewrite, custom)",
            )
            return None
        if kind == "custom":
            return self.custom(p.custom, path)
        return BUILTIN[kind].from_proto(getattr(p, kind), path, self)

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

    # -- routes ------------------------------------------------------------

    def route(self, spec: asm.RouteSpec) -> RouteRuntime | None:
        r, path = spec.route, spec.path
        refs, provs = self.route_providers(r, path)
        hosts, suffixes = self.route_hosts(r, path)
        matchers = [
            self.header_matcher(name, m, f"{path}.match.headers[{name!r}]")
            for name, m in sorted(r.match.headers.items())
        ]
        procs = [
            self.processor(p, pp) for p, pp in zip(r.processors, spec.processor_paths, strict=True)
        ]
        client_api = self.route_client_api(r, path, provs)
        rewrite = _bool(r, "rewrite", True)
        if rewrite:
            for prov in provs:
                if not prov.host:
                    self.err(
                        f"{path}.provider",
                        f"provider {prov.name!r} has no host (set host or base_url)",
                    )
        auth = self.auth(r.auth, f"{path}.auth") if r.HasField("auth") else None
        fallback = compile_fallback(r, path, self.providers, refs, client_api, self.err)
        cache = self.cache(r, path, provs) if r.HasField("cache") else None
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
            fallback=fallback,
            cache=cache,
        )

    def cache(self, r: pb.Route, path: str, provs: list[ProviderRuntime]) -> CachePolicy | None:
        """The route's response cache settings, checked."""
        cc, path = r.cache, f"{path}.cache"
        if r.fallback:
            self.err(path, "a fallback route cannot be cached (each attempt has its own provider)")
        for p in provs:
            if p.protocol == "original":
                # The gateway never reads such answers, so it could never store one.
                self.err(path, f"provider {p.name!r} has protocol 'original': nothing to cache")
        backend = cc.backend or "memory"
        if backend not in BACKENDS:
            self.err(f"{path}.backend", f"must be 'memory' or 'redis', not {backend!r}")
        url = cc.redis_url or self.redis_url
        if backend == "redis" and not url:
            self.err(
                f"{path}.redis_url", "is required when backend is 'redis' (or budgets.redis_url)"
            )
        if cc.redis_url and backend != "redis":
            self.err(f"{path}.redis_url", "is only used with backend 'redis'")
        ttl = self.positive(cc, "ttl", DEFAULT_TTL_S, path)
        timeout = self.positive(cc, "lookup_timeout", DEFAULT_LOOKUP_TIMEOUT_S, path)
        if timeout > 1.0:
            self.err(f"{path}.lookup_timeout", "must be at most 1s: a lookup delays the request")
        includes = []
        for i, h in enumerate(cc.key_includes):
            name = h.strip().lower()
            if not name or name.startswith(":") or any(c.isspace() for c in name):
                self.err(f"{path}.key_includes[{i}]", f"{h!r} is not a request header name")
            elif name in _KEY_SECRET_HEADERS:
                self.err(
                    f"{path}.key_includes[{i}]",
                    f"{h!r} holds a client key; the consumer is in the key already",
                )
            includes.append(name)
        max_bytes = cc.max_bytes or DEFAULT_MAX_BYTES
        max_entry = cc.max_entry_bytes or DEFAULT_MAX_ENTRY_BYTES
        if backend == "memory" and max_entry > max_bytes:
            self.err(f"{path}.max_entry_bytes", "is larger than max_bytes")
        return CachePolicy(
            ttl_s=ttl,
            backend=backend,
            redis_url=url if backend == "redis" else "",
            max_entry_bytes=max_entry,
            key_includes=tuple(includes),
            shared=cc.shared,
            cache_tool_results=cc.cache_tool_results,
            max_entries=cc.max_entries or DEFAULT_MAX_ENTRIES,
            max_bytes=max_bytes,
            lookup_timeout_s=timeout,
        )

    def route_client_api(self, r: pb.Route, path: str, provs: list[ProviderRuntime]) -> str:
        """The API the route's clients speak, checked against its providers."""
        client_api = r.client_api or DEFAULT.name
        apis = ROUTE_APIS.get(client_api)
        if apis is None:
            self.err(
                f"{path}.client_api",
                f"must be one of {', '.join(ROUTE_APIS)}, not {client_api!r}",
            )
            return client_api
        for api in apis:
            for prov in provs:
                problem = serving_problem(api, prov.name, prov.spec, prov.protocol)
                if problem:
                    self.err(f"{path}.client_api", problem)
        return client_api

    def route_providers(
        self, r: pb.Route, path: str
    ) -> tuple[list[tuple[str, int]], list[ProviderRuntime]]:
        """(name, weight) of each provider the route names, and those that exist."""
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
        return refs, provs

    def route_hosts(self, r: pb.Route, path: str) -> tuple[list[str], list[str]]:
        """(hosts as the route table keys them, ".suffix" of each "*.suffix")."""
        hosts, suffixes = [], []
        for i, h in enumerate(r.match.hosts):
            h, problem = canonical_host(h)
            if problem:
                self.err(f"{path}.match.hosts[{i}]", problem)
            elif h.startswith("*."):
                suffixes.append(h[1:])
            else:
                hosts.append(h)
        return hosts, suffixes

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
    c.redis_url = native.budgets.redis_url  # the default of routes' cache.redis_url
    routes = _providers_and_routes(loaded, native, c)
    # Provider tokens, guard and rewrite keys; not consumer keys (the client's own).
    upstream_secrets = Redactor(c.secrets)
    consumers, keys = _consumers(native.consumers, c)
    budgets = native.budgets
    backend = budgets.backend or "memory"
    if backend not in ("memory", "redis"):
        c.err("budgets.backend", f"must be 'memory' or 'redis', not {backend!r}")
    window = c.positive(budgets, "window", 60.0, "budgets")
    if backend == "redis" and not budgets.redis_url:
        c.err("budgets.redis_url", "is required when backend is 'redis'")
    unmatched = native.unmatched or "refuse"
    if unmatched not in ("refuse", "pass_through"):
        c.err("unmatched", f"must be 'refuse' or 'pass_through', not {unmatched!r}")
    obs = native.observability
    tracing = _tracing(obs.tracing, c)
    prices = _prices(obs.prices, c)
    if not routes and not c.problems:
        c.err("routes", "the config defines no route (no plugin hosts, LLMRoute or routes)")
    if c.problems:
        raise ConfigError(c.problems)
    lim = native.limits
    return Runtime(
        routes=RouteTable(tuple(routes)),
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
        budget_default_output=budgets.default_output_tokens or 1024,
        unmatched_pass_through=unmatched == "pass_through",
        consumer_key_digests=frozenset(hashlib.sha256(k).digest() for k, _ in keys),
        tracing=tracing,
        prices=price_table(prices, defaults=not obs.no_default_prices),
        overhead_header=obs.overhead_header,
        redactor=upstream_secrets,
        cache_disabled_consumers=frozenset(x.name for x in consumers if x.cache_disabled),
    )


_TRACE_PROTOCOLS = ("grpc", "http/protobuf")


def _tracing(t: pb.Tracing, c: _Compiler) -> TracingConfig | None:
    """observability.tracing; off unless `enabled`, and off with OTEL_SDK_DISABLED=true."""
    path = "observability.tracing"
    env = c.env
    protocol = (
        t.protocol
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        or "grpc"
    )
    if protocol not in _TRACE_PROTOCOLS:
        where = f"{path}.protocol" if t.protocol else "OTEL_EXPORTER_OTLP_PROTOCOL"
        c.err(where, f"must be one of {', '.join(_TRACE_PROTOCOLS)}, not {protocol!r}")
    ep = t.endpoint
    if ep and not (ep.startswith(("http://", "https://")) or protocol == "grpc"):
        c.err(f"{path}.endpoint", "an http/protobuf endpoint is a URL (http:// or https://)")
    if not t.enabled or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return TracingConfig(
        protocol=protocol,
        endpoint=ep,
        service_name=t.service_name or env.get("OTEL_SERVICE_NAME", "") or "llm-extproc",
        insecure=t.insecure if t.HasField("insecure") else None,
    )


def _prices(prices: Any, c: _Compiler) -> list[Price]:
    out: list[Price] = []
    for i, p in enumerate(prices):
        path = f"observability.prices[{i}]"
        if not p.provider:
            c.err(f"{path}.provider", "is required (a provider's name or type)")
        if not p.model or "*" in p.model[:-1]:
            c.err(f"{path}.model", "is required: an exact name or 'prefix*'")
        cached = p.cached_input if p.HasField("cached_input") else None
        for name, v in (("input", p.input), ("output", p.output), ("cached_input", cached)):
            if v is not None and not (0 <= v < 1e6):
                c.err(f"{path}.{name}", f"must be from 0 to 1e6 USD per million tokens, not {v}")
        out.append(Price(p.provider, p.model, p.input, p.output, cached))
    return out


def _providers_and_routes(
    loaded: LoadedConfig, native: pb.GatewayConfig, c: _Compiler
) -> list[RouteRuntime]:
    """Providers first (a route or processor names them), then routes in order:
    plugin documents, LLMRoute documents, native routes."""
    for where, lp in loaded.llm_providers:
        for p, path in asm.llm_provider(lp, where, c):
            c.provider(p, path)
    for i, p in enumerate(native.providers):
        c.provider(p, f"providers[{i}]")
    specs: list[asm.RouteSpec] = []
    for i, (where, plug) in enumerate(loaded.plugins):
        prov, spec = asm.plugin(plug, where, i, c)
        c.provider(prov, where)
        specs.append(spec)
    for where, lr in loaded.llm_routes:
        specs += asm.llm_route(lr, where, c, c.providers)
    for i, r in enumerate(native.routes):
        specs.append(asm.native_route(r, f"routes[{i}]"))
    compiled = [(spec.path, c.route(spec)) for spec in specs]
    routes = [(path, r) for path, r in compiled if r is not None]
    for path, problem in unreachable_routes(routes):
        c.err(path, problem)
    for warning in overlap_warnings(routes):
        log.warning("config: %s", warning)
    return [r for _, r in routes]


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
            cons.cache_disabled,
        )
        ks = [c.secret(v, "", "", f"{path}.keys[{j}]") for j, v in enumerate(cons.keys)]
        ks += [c.secret("", v, "", f"{path}.keys_env[{j}]") for j, v in enumerate(cons.keys_env)]
        ks += [c.secret("", "", v, f"{path}.keys_file[{j}]") for j, v in enumerate(cons.keys_file)]
        if not any(ks):
            c.err(f"{path}.keys", "a consumer needs at least one key")
        out.append(rt)
        keys += [(k.encode(), rt) for k in ks if k]
    return out, keys
