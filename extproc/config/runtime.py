"""Immutable runtime objects compiled from the config; read on every request."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from extproc.cache.policy import CachePolicy
from extproc.cloud.auth import UpstreamAuth
from extproc.prices import PriceTable
from extproc.providers.custom_settings import ResolvedSetting
from extproc.providers.model_mapping import ModelMapper
from extproc.providers.redact import Redactor
from extproc.providers.token_pool import TokenPool
from extproc.translators.base import ProviderSpec, Translator

if TYPE_CHECKING:
    from extproc.config.fallback import FallbackRuntime


class RouteProcessor(Protocol):
    """What a route holds of a processor (processors/base.py implements it).

    Structural, so the config layer does not import the processors, which
    import the request context, which names the route: imports go one way.
    """

    @property
    def name(self) -> str: ...

    @property
    def reads_texts(self) -> bool:
        """It reads the request's texts (a check): unreadable content is a 400."""
        ...

    @property
    def calls_model(self) -> str:
        """ "guard"/"rewrite" when it calls a model ("" otherwise)."""
        ...

    def call_target(self) -> tuple[str, str]: ...

    async def process(self, ctx: Any) -> Any: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class Service(Protocol):
    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ProviderRuntime:
    name: str
    spec: ProviderSpec  # the provider type's module entry (translator, wire API, auth)
    host: str  # upstream :authority ("" = keep the client's)
    base_path: str
    tokens: TokenPool | None
    timeout_s: float
    mapper: ModelMapper | None
    custom_settings: tuple[ResolvedSetting, ...]
    protocol: str  # "openai" (translate) | "original" (body untouched)
    default_model: str
    default_stream: bool | None
    options: Mapping[str, Any]
    # Its own tokens, for the answers the gateway only relays (providers/redact.py).
    redactor: Redactor = field(default_factory=Redactor)
    # Cloud providers: SigV4 signing or an OAuth token source, started with the server.
    upstream_auth: UpstreamAuth | None = None

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def translator(self) -> Translator:
        return self.spec.translator


@dataclass(frozen=True, slots=True)
class HeaderMatcher:
    name: str
    exact: str | None = None
    prefix: str | None = None
    regex: Any = None  # compiled RE2

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.exact is not None and value != self.exact:
            return False
        if self.prefix is not None and not value.startswith(self.prefix):
            return False
        return not (self.regex is not None and not self.regex.fullmatch(value))


@dataclass(frozen=True, slots=True)
class AuthRuntime:
    required: bool
    key_sources: tuple[str, ...]
    forward_consumer_header: str


@dataclass(frozen=True, slots=True)
class RouteRuntime:
    name: str
    hosts: tuple[str, ...]  # exact, lower-case
    host_suffixes: tuple[str, ...]  # from "*.suffix": ".suffix"
    path_prefix: str
    header_matchers: tuple[HeaderMatcher, ...]
    providers: tuple[ProviderRuntime, ...]
    weights: tuple[int, ...]
    processors: tuple[RouteProcessor, ...]
    allow_streaming: bool
    allow_non_streaming: bool
    client_api: str  # a key of client_apis.registry.ROUTE_APIS (its clients' API or APIs)
    auth: AuthRuntime | None
    rewrite: bool
    # Envoy retries this route across providers (config/fallback.py); None: one provider per request.
    fallback: FallbackRuntime | None = None
    # The response cache (extproc/cache/); None: off.
    cache: CachePolicy | None = None
    # A processor reads the request's texts: unreadable content is a 400 here.
    reads_texts: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads_texts", any(p.reads_texts for p in self.processors))

    def pick_provider(self) -> ProviderRuntime:
        if len(self.providers) == 1:
            return self.providers[0]
        return random.choices(self.providers, weights=self.weights)[0]

    def matches_rest(self, path: str, headers: Mapping[str, str]) -> bool:
        if self.path_prefix and not path.startswith(self.path_prefix):
            return False
        return all(m.matches(headers.get(m.name)) for m in self.header_matchers)


@dataclass(frozen=True, slots=True)
class ConsumerRuntime:
    name: str
    allowed_models: frozenset[str]
    allowed_routes: frozenset[str]
    token_budget: int
    cache_disabled: bool = False  # never answered from (nor stored in) the response cache


DEFAULT_MAX_REQUEST_BYTES = 8 << 20
DEFAULT_MAX_RESPONSE_BYTES = 16 << 20
DEFAULT_MAX_STREAM_LINE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_stream_line_bytes: int = DEFAULT_MAX_STREAM_LINE_BYTES


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """observability.tracing, compiled; "" fields fall back to OTEL_* variables."""

    protocol: str = "grpc"  # or "http/protobuf"
    endpoint: str = ""
    service_name: str = "llm-extproc"
    insecure: bool | None = None


@dataclass(frozen=True, slots=True)
class Runtime:
    routes: RouteTable
    providers: Mapping[str, ProviderRuntime]
    consumers: tuple[ConsumerRuntime, ...]
    consumer_keys: tuple[tuple[bytes, ConsumerRuntime], ...]  # compared in constant time
    limits: Limits
    metadata_namespace: str
    debug_log_prompts: bool
    budget_window_s: float
    budget_backend: str
    redis_url: str
    # Output tokens a budget reservation assumes when a request sets no max_tokens.
    budget_default_output: int = 1024
    # A request no route matches: refused (False) or passed on unread (True).
    unmatched_pass_through: bool = False
    # sha256 of every consumer key: a passed-through request loses a header
    # holding one (the digest, not the key, is what a set lookup can leak).
    consumer_key_digests: frozenset[bytes] = frozenset()
    # observability: traces (None: off), prices, the overhead header.
    tracing: TracingConfig | None = None
    prices: PriceTable = field(default_factory=PriceTable)
    overhead_header: bool = False
    # Every upstream secret (provider tokens, guard and rewrite keys): never in an answer.
    redactor: Redactor = field(default_factory=Redactor)
    # Consumers whose requests bypass the response cache.
    cache_disabled_consumers: frozenset[str] = frozenset()

    @property
    def processors(self) -> tuple[RouteProcessor, ...]:
        seen: dict[int, RouteProcessor] = {}
        for r in self.routes.routes:
            for p in r.processors:
                seen.setdefault(id(p), p)
        return tuple(seen.values())

    @property
    def services(self) -> tuple[Service, ...]:
        """What the server starts and closes with this config: the processors'
        clients and the providers' credential refreshers."""
        auths = tuple(p.upstream_auth for p in self.providers.values() if p.upstream_auth)
        return (*self.processors, *auths)


def split_host(authority: str) -> tuple[str, str]:
    """(hostname, port) of a lower-case authority; port "" when absent.

    "[v6]:port" keeps its brackets; a bare IPv6 address has no port. A trailing
    dot (the absolute DNS name) is dropped: it names the same host.
    """
    if authority.startswith("["):
        end = authority.find("]")
        if end > 0 and authority[end + 1 : end + 2] == ":":
            return authority[: end + 1], authority[end + 2 :]
        return authority, ""
    name, sep, port = authority.rpartition(":")
    if not sep or ":" in name:
        name, port = authority, ""
    return (name[:-1] if name.endswith(".") else name), port


def canonical_host(entry: str) -> tuple[str, str]:
    """A configured host entry as the route table keys it, and a problem ("" if none)."""
    name, port = split_host(entry.strip().lower())
    if "*" in name and not (name.startswith("*.") and "*" not in name[2:]):
        return name, f"{entry!r}: only a leading '*.' wildcard is supported"
    if port and name.startswith("*."):
        return name, f"{entry!r}: a wildcard host matches every port; drop the port"
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return name, f"{entry!r}: the port must be a number from 1 to 65535"
    return (f"{name}:{port}" if port else name), ""


class RouteTable:
    """Routes by host, in declaration order.

    A configured host without a port matches that host on any port (as
    Istio's generated virtual hosts do); "host:port" matches only that port;
    "*.suffix" matches any port. Candidates per configured host are
    precomputed, so a request costs one or two dict lookups plus the (usually
    one) candidate's path/header checks.
    """

    __slots__ = ("_by_host", "_wild", "routes")

    def __init__(self, routes: tuple[RouteRuntime, ...]):
        self.routes = routes
        keys = {h for r in routes for h in r.hosts}
        self._by_host = {k: tuple(r for r in routes if _host_matches(r, k)) for k in keys}
        self._wild = tuple(r for r in routes if r.host_suffixes or not r.hosts)

    def match(self, authority: str, path: str, headers: Mapping[str, str]) -> RouteRuntime | None:
        host = authority.lower()
        cands = self._by_host.get(host)
        if cands is None:
            # Every spelling of a configured host: a trailing dot, a port with
            # leading zeros. Port-less entries match on any port; entries with
            # another port do not.
            name, port = split_host(host)
            if port:
                port = str(int(port)) if port.isdigit() and len(port) <= 5 else "?"
                cands = self._by_host.get(f"{name}:{port}")
            if cands is None:
                cands = self._by_host.get(name)
            if cands is None:
                cands = tuple(r for r in self._wild if _wild_matches(r, name))
        for r in cands:
            if r.matches_rest(path, headers):
                return r
        return None


def _host_matches(r: RouteRuntime, key: str) -> bool:
    """Whether a request for configured host `key` ("name" or "name:port") matches route r."""
    if key in r.hosts:
        return True
    name, port = split_host(key)
    return bool(port and name in r.hosts) or _wild_matches(r, name)


def _wild_matches(r: RouteRuntime, hostname: str) -> bool:
    if not r.hosts and not r.host_suffixes:
        return True
    return any(hostname.endswith(s) for s in r.host_suffixes)
