"""The Envoy side of provider fallback, generated from the gateway's config.

How a fallback route runs (nothing here is a second HTTP client: Envoy retries):

1. The router-level ext_proc exchange authenticates, runs the processors, strips
   the client's key, sets `:authority` to `FALLBACK_AUTHORITY`, emits the
   dynamic metadata `<namespace>.fallback = <route name>` and clears the route
   cache.
2. Envoy matches the route below on that metadata (a client cannot set dynamic
   metadata, so it cannot reach these routes or their keys on its own). The
   route's priority-group cluster specifier sends attempt n to group n of the
   chain; `refresh_cluster_on_retry` re-selects the cluster on every retry,
   and the retry policy says which failures start the next attempt.
3. Each provider's cluster runs an upstream ext_proc filter (its
   `http_filters`, once per attempt) whose gRPC `initial_metadata` names the
   provider: that exchange (`core.attempt`) translates the request for this
   provider, injects its key, and translates the answer back. It reads the
   route, consumer and client path from the forwarded dynamic metadata.

`fallback_resources` returns the virtual host and the clusters to add to an
Envoy config; `llm-extproc envoy-fallback` prints them as YAML.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from extproc.config.fallback import (
    FALLBACK_AUTHORITY,
    PROVIDER_METADATA_KEY,
    FallbackRuntime,
    group_name,
    order_namespace,
)
from extproc.config.runtime import ProviderRuntime, RouteRuntime, Runtime

ROUTE_TIMEOUT = "300s"
UPSTREAM_FILTER = "envoy.filters.http.ext_proc/llm-extproc-upstream"
# Where Envoy's images (and Istio's proxyv2) keep the system CA bundle.
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

_TYPE = "type.googleapis.com/envoy.extensions"
_PRIORITY_GROUP = "envoy.router.cluster_specifier_plugin.priority_group"


def cluster_name(provider: str) -> str:
    return f"llm_fallback_{provider}"


def retry_policy(fb: FallbackRuntime) -> dict[str, Any]:
    """Our retry_on words as Envoy conditions. Envoy's `reset` (no response at
    all) covers a per-try timeout too, so "reset" and "timeout" are one
    condition; its `5xx` includes resets and connection failures."""
    conds = set(fb.retry_on)
    on: list[str] = [c for c in ("5xx", "connect-failure") if c in conds]
    if conds & {"reset", "timeout"}:
        on.append("reset")
    policy: dict[str, Any] = {}
    if "429" in conds:
        on.append("retriable-status-codes")
        policy["retriable_status_codes"] = [429]
    policy = {"retry_on": ",".join(on), **policy, "num_retries": fb.max_attempts - 1}
    if fb.per_try_timeout_s:
        policy["per_try_timeout"] = f"{fb.per_try_timeout_s:g}s"
    policy["refresh_cluster_on_retry"] = True
    return policy


def route_entry(route: RouteRuntime, namespace: str) -> dict[str, Any]:
    fb = route.fallback
    assert fb is not None
    groups = [
        {
            "name": group_name(i),
            "clusters": [{"cluster_name": cluster_name(n), "weight": w} for n, w in g],
        }
        for i, g in enumerate(fb.groups)
    ]
    return {
        "name": f"llm-fallback/{route.name}",
        "match": {
            "prefix": "/",
            "dynamic_metadata": [
                {
                    "filter": namespace,
                    "path": [{"key": "fallback"}],
                    "value": {"string_match": {"exact": route.name}},
                }
            ],
        },
        "route": {
            "timeout": ROUTE_TIMEOUT,
            "inline_cluster_specifier_plugin": {
                "extension": {
                    "name": _PRIORITY_GROUP,
                    "typed_config": {
                        "@type": f"{_TYPE}.router.cluster_specifiers.priority_group.v3."
                        "PriorityGroupClusterSpecifier",
                        "priority_groups": groups,
                        # The gateway moves providers whose keys all cool down to
                        # the end of a request's order (core/fallback_leg.py); the
                        # router-level ext_proc filter must accept this namespace,
                        # else the order above stays.
                        "override_metadata_namespace": order_namespace(namespace),
                    },
                }
            },
            "retry_policy": retry_policy(fb),
        },
        # The router-level exchange reads the answer here: keep its filter on
        # even where a virtual host-wide patch switched it off (the mesh).
        "typed_per_filter_config": {
            "envoy.filters.http.ext_proc": {
                "@type": f"{_TYPE}.filters.http.ext_proc.v3.ExtProcPerRoute",
                "overrides": {},
            }
        },
    }


def upstream_ext_proc(
    provider: str, extproc_cluster: str, namespace: str, authority: str = ""
) -> dict[str, Any]:
    """The upstream ext_proc filter of one provider's cluster: runs once per attempt."""
    grpc: dict[str, Any] = {"cluster_name": extproc_cluster}
    if authority:
        grpc["authority"] = authority
    return {
        # Its own name: a route's typed_per_filter_config for the router-level
        # ext_proc filter (e.g. `disabled`) must not switch this one off.
        "name": UPSTREAM_FILTER,
        "typed_config": {
            "@type": f"{_TYPE}.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {
                "envoy_grpc": grpc,
                "timeout": "30s",
                "initial_metadata": [{"key": PROVIDER_METADATA_KEY, "value": provider}],
            },
            "failure_mode_allow": False,
            "allow_mode_override": True,
            "processing_mode": {
                "request_header_mode": "SEND",
                "response_header_mode": "SEND",
                "request_body_mode": "BUFFERED",
                "response_body_mode": "NONE",
                "request_trailer_mode": "SEND",
                "response_trailer_mode": "SKIP",
            },
            "mutation_rules": {"allow_all_routing": True},
            "message_timeout": "30s",
            "max_message_timeout": "60s",
            "metadata_options": {
                # The router-level exchange's metadata (route, consumer, path) comes
                # in; this attempt's provider and status go out for the next one.
                "forwarding_namespaces": {"untyped": [namespace]},
                "receiving_namespaces": {"untyped": [namespace]},
            },
        },
    }


def _endpoint(prov: ProviderRuntime, upstream: tuple[str, int] | None) -> tuple[str, int, bool]:
    """(address, port, tls): the provider's host, or `upstream` for every cluster (tests)."""
    if upstream is not None:
        return upstream[0], upstream[1], False
    host, _, port = prov.host.rpartition(":")
    if not host or not port.isdigit():
        host, port = prov.host, "443" if prov.spec.scheme == "https" else "80"
    return host, int(port), int(port) == 443


def _tls(address: str) -> dict[str, Any]:
    """TLS to the provider, its certificate checked: the connection carries its key."""
    validation = {
        "trusted_ca": {"filename": CA_BUNDLE},
        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": address}}],
    }
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": f"{_TYPE}.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": address,
            "common_tls_context": {"validation_context": validation},
        },
    }


def _protocol_options(upstream_filter: dict[str, Any]) -> dict[str, Any]:
    """HTTP/1.1 to the provider; the upstream filters: ext_proc, then the codec."""
    codec = {
        "name": "envoy.filters.http.upstream_codec",
        "typed_config": {"@type": f"{_TYPE}.filters.http.upstream_codec.v3.UpstreamCodec"},
    }
    return {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": f"{_TYPE}.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {}},
            "http_filters": [upstream_filter, codec],
        }
    }


def cluster(
    prov: ProviderRuntime,
    extproc_cluster: str,
    namespace: str,
    upstream: tuple[str, int] | None = None,
    authority: str = "",
) -> dict[str, Any]:
    name = cluster_name(prov.name)
    address, port, tls = _endpoint(prov, upstream)
    static = upstream is not None or address.replace(".", "").isdigit()
    sock = {"address": {"socket_address": {"address": address, "port_value": port}}}
    out: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if static else "STRICT_DNS",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": sock}]}],
        },
        "typed_extension_protocol_options": _protocol_options(
            upstream_ext_proc(prov.name, extproc_cluster, namespace, authority)
        ),
    }
    if not static:
        out["dns_lookup_family"] = "V4_PREFERRED"
    if tls:
        out["transport_socket"] = _tls(address)
    # Retries are how requests reach this provider when another one fails: as
    # many as requests in flight may retry at once (Envoy's default: 3).
    out["circuit_breakers"] = {
        "thresholds": [
            {"retry_budget": {"budget_percent": {"value": 100.0}, "min_retry_concurrency": 16}}
        ]
    }
    return out


def fallback_resources(
    runtime: Runtime,
    extproc_cluster: str = "llm_extproc",
    upstream: tuple[str, int] | None = None,
    extproc_authority: str = "",
) -> dict[str, Any]:
    """{"virtual_host": ..., "clusters": [...]} for the config's fallback routes
    (an empty dict when it has none). `extproc_cluster`/`extproc_authority`:
    how Envoy reaches this service (in Istio: its outbound cluster and host)."""
    ns = runtime.metadata_namespace
    routes = [r for r in runtime.routes.routes if r.fallback is not None]
    if not routes:
        return {}
    provs: dict[str, ProviderRuntime] = {}
    for r in routes:
        assert r.fallback is not None
        for p in r.fallback.providers:
            provs.setdefault(p.name, p)
    return {
        "virtual_host": {
            "name": FALLBACK_AUTHORITY,
            "domains": [FALLBACK_AUTHORITY],
            # The attempt number goes to each attempt (the upstream exchange logs
            # it) and to the client's answer (the router-level exchange logs it).
            "include_request_attempt_count": True,
            "include_attempt_count_in_response": True,
            "routes": [route_entry(r, ns) for r in routes],
        },
        "clusters": [
            cluster(p, extproc_cluster, ns, upstream, extproc_authority) for p in provs.values()
        ],
    }


def merge_fallback(
    bootstrap: dict[str, Any], resources: dict[str, Any], listeners: Iterable[str] | None = None
) -> dict[str, Any]:
    """`bootstrap` (an Envoy config) with `resources` added in place: the virtual
    host first in every static route_config of an HCM that runs ext_proc (of
    the named `listeners` only, when given), the clusters at the end. Entries
    of the same name are replaced."""
    if not resources:
        return bootstrap
    vhost = resources["virtual_host"]
    static = bootstrap.setdefault("static_resources", {})
    for lst in static.get("listeners", []):
        if listeners is not None and lst.get("name") not in listeners:
            continue
        for chain in lst.get("filter_chains", []):
            for f in chain.get("filters", []):
                hcm = f.get("typed_config", {})
                names = [h.get("name") for h in hcm.get("http_filters", [])]
                rc = hcm.get("route_config")
                if rc is None or "envoy.filters.http.ext_proc" not in names:
                    continue
                others = [v for v in rc.get("virtual_hosts", []) if v["name"] != vhost["name"]]
                rc["virtual_hosts"] = [vhost, *others]
    new = {c["name"] for c in resources["clusters"]}
    kept = [c for c in static.get("clusters", []) if c["name"] not in new]
    static["clusters"] = [*kept, *resources["clusters"]]
    return bootstrap
