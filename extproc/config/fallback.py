"""A route's provider fallback: the chain of attempts Envoy makes and when it moves on.

Envoy does the retrying (a priority-group cluster specifier with
`refresh_cluster_on_retry`: attempt n goes to group n); the gateway compiles
the chain here, prints the Envoy side (`extproc.envoy_fallback`) and
translates each attempt for its provider (`core.attempt`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from extproc.client_apis.registry import ROUTE_APIS
from extproc.config.providers import serving_problem

if TYPE_CHECKING:
    from extproc.config.runtime import ProviderRuntime
    from extproc.config.v1 import config_pb2 as pb

# The authority the router-level exchange routes a fallback request to (the
# Envoy virtual host of the fallback routes).
FALLBACK_AUTHORITY = "llm-fallback"
# gRPC initial metadata of the upstream ext_proc filter: which provider the attempt goes to.
PROVIDER_METADATA_KEY = "x-llm-extproc-provider"
# Response header from the answering attempt to the router-level exchange:
# "provider:status" of every attempt so far (removed before the client).
ATTEMPTS_HEADER = "x-llm-attempts"


def order_namespace(namespace: str) -> str:
    """The dynamic metadata namespace holding one request's order of the chain's
    groups (a priority-group override: Envoy reads the whole namespace)."""
    return f"{namespace}.fallback"


# What `retry.retry_on` accepts; each is one Envoy retry condition (see envoy_fallback).
RETRY_ON = ("429", "5xx", "connect-failure", "reset", "timeout")
MAX_ATTEMPTS = 10

Group = tuple[tuple[str, int], ...]  # (provider name, weight) of one attempt


def group_name(index: int) -> str:
    """The Envoy priority group of the chain's group `index` (0-based)."""
    return f"attempt-{index + 1}"


@dataclass(frozen=True, slots=True)
class FallbackRuntime:
    groups: tuple[Group, ...]  # attempt 1 uses groups[0], attempt 2 groups[1], ...
    providers: tuple[ProviderRuntime, ...]  # every provider of the chain, once, in order
    retry_on: tuple[str, ...]
    max_attempts: int
    per_try_timeout_s: float  # 0: none

    def order(self) -> tuple[int, ...]:
        """This request's order of the groups: those whose providers all have
        every key cooling down (in this process) go last, the rest keep theirs."""
        by_name = {p.name: p for p in self.providers}

        def ready(group: Group) -> bool:
            return any((t := by_name[n].tokens) is None or t.available() > 0 for n, _ in group)

        flags = [ready(g) for g in self.groups]
        return (
            *(i for i, ok in enumerate(flags) if ok),
            *(i for i, ok in enumerate(flags) if not ok),
        )


def compile_fallback(
    r: pb.Route,
    path: str,
    providers: Mapping[str, ProviderRuntime],
    primary: Sequence[tuple[str, int]],
    client_api: str,
    err: Callable[[str, str], None],
) -> FallbackRuntime | None:
    """The route's chain, or None when the route has neither `fallback` nor `retry`."""
    if not r.fallback and not r.HasField("retry"):
        return None
    groups: list[Group] = [tuple(primary)]
    chain = [providers[n] for n, _ in primary if n in providers]
    for i, name in enumerate(r.fallback):
        prov = providers.get(name)
        if prov is None:
            err(f"{path}.fallback[{i}]", f"no provider named {name!r}")
            continue
        _check_provider(prov, client_api, f"{path}.fallback[{i}]", err)
        groups.append(((name, 1),))
        chain.append(prov)
    if r.HasField("rewrite") and not r.rewrite.value:
        err(
            f"{path}.rewrite",
            "a route with fallback or retry sends each attempt to its provider's host: rewrite must stay true",
        )
    retry_on, attempts, per_try = _retry(r.retry, path, len(groups), err)
    seen: dict[str, ProviderRuntime] = {}
    for p in chain:
        seen.setdefault(p.name, p)
    return FallbackRuntime(tuple(groups), tuple(seen.values()), retry_on, attempts, per_try)


def _retry(
    retry: pb.RouteRetry, path: str, groups: int, err: Callable[[str, str], None]
) -> tuple[tuple[str, ...], int, float]:
    """(retry_on, max_attempts, per_try_timeout_s) of `retry`, with the defaults."""
    retry_on = tuple(retry.retry_on) or RETRY_ON
    for i, cond in enumerate(retry.retry_on):
        if cond not in RETRY_ON:
            err(f"{path}.retry.retry_on[{i}]", f"{cond!r}: expected one of {', '.join(RETRY_ON)}")
    attempts = retry.max_attempts or groups
    if not 1 <= attempts <= MAX_ATTEMPTS:
        err(f"{path}.retry.max_attempts", f"must be between 1 and {MAX_ATTEMPTS}")
    per_try = 0.0
    if retry.HasField("per_try_timeout"):
        per_try = retry.per_try_timeout.ToTimedelta().total_seconds()
        if per_try <= 0:
            err(f"{path}.retry.per_try_timeout", 'must be a positive duration such as "30s"')
    return retry_on, attempts, per_try


def _check_provider(
    prov: ProviderRuntime, client_api: str, where: str, err: Callable[[str, str], None]
) -> None:
    """A fallback provider must suit the route's client API and have a host."""
    name = prov.name
    if "," in name:
        err(where, f"{name!r}: a fallback provider's name has no ','")
    for api in ROUTE_APIS.get(client_api, ()):
        problem = serving_problem(api, name, prov.spec, prov.protocol)
        if problem:
            err(where, problem)
    if not prov.host:
        err(where, f"provider {name!r} has no host (set host or base_url)")
