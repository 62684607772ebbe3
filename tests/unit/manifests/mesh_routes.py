"""What the asm/ EnvoyFilters do to a proxy's routes: the ext_proc filter patch,
and the per-route patches that switch ext_proc off on every virtual host and
back on for the LLM hosts' routes. Used by test_istio.py and test_envoy.py."""

from __future__ import annotations

import copy
from typing import Any

EXT_PROC = "envoy.filters.http.ext_proc"
PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute"


def patches_of(doc: dict[str, Any], apply_to: str) -> list[dict[str, Any]]:
    return [p for p in doc["spec"]["configPatches"] if p["applyTo"] == apply_to]


def inserts_ext_proc(doc: dict[str, Any]) -> bool:
    """An EnvoyFilter that puts the ext_proc filter into a proxy (not fallback.yaml,
    which adds routes and clusters to a proxy that already has it)."""
    return bool(patches_of(doc, "HTTP_FILTER"))


def filter_patch(doc: dict[str, Any]) -> dict[str, Any]:
    """The one patch that inserts the ext_proc HTTP filter."""
    (patch,) = patches_of(doc, "HTTP_FILTER")
    return patch


def enabled_vhosts(doc: dict[str, Any]) -> list[str]:
    """Names of the virtual hosts whose routes get ext_proc back on."""
    return [
        p["match"]["routeConfiguration"]["vhost"]["name"] for p in patches_of(doc, "HTTP_ROUTE")
    ]


def _matches(match: dict[str, Any], vhost_name: str) -> bool:
    want = match["routeConfiguration"].get("vhost", {}).get("name")
    return want is None or want == vhost_name


def _merge(target: dict[str, Any], value: dict[str, Any]) -> None:
    """Istio's MERGE of typed_per_filter_config: map entries are replaced."""
    target.setdefault("typed_per_filter_config", {}).update(
        copy.deepcopy(value["typed_per_filter_config"])
    )


def apply_route_patches(doc: dict[str, Any], vhost_names: list[str]) -> list[dict[str, Any]]:
    """Virtual hosts named like Istio's (`host:port`, one `/` route each), with
    the EnvoyFilter's VIRTUAL_HOST and HTTP_ROUTE patches applied as Istio
    applies MERGE patches."""
    vhosts = []
    for name in vhost_names:
        host = name.rsplit(":", 1)[0]
        route = {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "provider"}}
        vh = {"name": name, "domains": [host, name], "routes": [route]}
        for p in patches_of(doc, "VIRTUAL_HOST"):
            if _matches(p["match"], name):
                _merge(vh, p["patch"]["value"])
        for p in patches_of(doc, "HTTP_ROUTE"):
            if _matches(p["match"], name):
                _merge(route, p["patch"]["value"])
        vhosts.append(vh)
    return vhosts


def ext_proc_runs(vhost: dict[str, Any]) -> bool:
    """Envoy merges ExtProcPerRoute from least to most specific (virtual host,
    then route); the most specific `disabled` wins; none at all: it runs."""
    enabled = True
    for level in (vhost, *vhost["routes"]):
        per = level.get("typed_per_filter_config", {}).get(EXT_PROC)
        if per is not None:
            assert per["@type"] == PER_ROUTE
            enabled = not per.get("disabled", False)
    return enabled
