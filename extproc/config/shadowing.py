"""Routes an earlier route hides: routes match in order, so a later route that
an earlier one always wins over never runs (a config error), and one that an
earlier route wins over for some requests loses its checks for those (a
warning when the earlier route checks less: it skips the later one's auth).
"""

from __future__ import annotations

from collections.abc import Sequence

from extproc.config.runtime import RouteRuntime, split_host

__all__ = ["overlap_warnings", "unreachable_routes"]


def _any_host(r: RouteRuntime) -> bool:
    return not r.hosts and not r.host_suffixes


def _host_covered(a: RouteRuntime, host: str) -> bool:
    """Whether route a matches every request for configured host `host` of another route."""
    if _any_host(a) or host in a.hosts:
        return True
    name, port = split_host(host)
    if port and name in a.hosts:
        return True  # a's port-less entry takes every port
    return any(name.endswith(s) for s in a.host_suffixes)


def _hosts_covered(a: RouteRuntime, b: RouteRuntime) -> bool:
    if _any_host(a):
        return True
    if _any_host(b):
        return False
    return all(_host_covered(a, h) for h in b.hosts) and all(
        any(s.endswith(t) for t in a.host_suffixes) for s in b.host_suffixes
    )


def _hosts_overlap(a: RouteRuntime, b: RouteRuntime) -> bool:
    if _any_host(a) or _any_host(b):
        return True
    return (
        any(_host_covered(a, h) for h in b.hosts)
        or any(_host_covered(b, h) for h in a.hosts)
        or any(s.endswith(t) or t.endswith(s) for s in b.host_suffixes for t in a.host_suffixes)
    )


def _headers_covered(a: RouteRuntime, b: RouteRuntime) -> bool:
    """a's header conditions are a subset of b's: a matches whatever b does."""
    return all(m in b.header_matchers for m in a.header_matchers)


def covers(a: RouteRuntime, b: RouteRuntime) -> bool:
    """Route a matches every request route b would match."""
    return (
        b.path_prefix.startswith(a.path_prefix) and _hosts_covered(a, b) and _headers_covered(a, b)
    )


def _overlaps(a: RouteRuntime, b: RouteRuntime) -> bool:
    paths = b.path_prefix.startswith(a.path_prefix) or a.path_prefix.startswith(b.path_prefix)
    return paths and _hosts_overlap(a, b) and _headers_covered(a, b)


def _requires_auth(r: RouteRuntime) -> bool:
    return r.auth is not None and r.auth.required


def unreachable_routes(routes: Sequence[tuple[str, RouteRuntime]]) -> list[tuple[str, str]]:
    """(field path, problem) for each route an earlier one always wins over."""
    out = []
    for j, (path_b, b) in enumerate(routes):
        for path_a, a in routes[:j]:
            if covers(a, b):
                out.append(
                    (
                        f"{path_b}.match",
                        f"route {b.name!r} is unreachable: the earlier route {a.name!r} "
                        f"({path_a}) matches every request it would; put it first or "
                        "narrow the earlier route",
                    )
                )
                break
    return out


def overlap_warnings(routes: Sequence[tuple[str, RouteRuntime]]) -> list[str]:
    """Routes that an earlier route without auth takes some requests of: those
    requests skip the later route's consumer check."""
    out = []
    for j, (path_b, b) in enumerate(routes):
        if not _requires_auth(b):
            continue
        for path_a, a in routes[:j]:
            if not _requires_auth(a) and _overlaps(a, b) and not covers(a, b):
                out.append(
                    f"{path_b}: the earlier route {a.name!r} ({path_a}) takes some of route "
                    f"{b.name!r}'s requests without its auth (hosts and path prefixes overlap); "
                    "put the route with auth first"
                )
    return out
