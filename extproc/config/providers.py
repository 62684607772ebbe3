"""The parts of a provider's config that its spec gives defaults for."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from google.protobuf import json_format

from extproc.client_apis.base import ClientApi
from extproc.config.fields import flag
from extproc.config.v1 import config_pb2 as pb
from extproc.providers.custom_settings import (
    CustomSetting,
    ResolvedSetting,
    resolve_custom_settings,
)
from extproc.providers.model_mapping import ModelMapper
from extproc.translators.base import ProviderSpec
from extproc.translators.registry import PROVIDER_CATALOG

Err = Callable[[str, str], None]


def _serving(api: ClientApi) -> list[str]:
    return [t for t, s in PROVIDER_CATALOG.items() if s.serves(api.name)]


def serving_problem(api: ClientApi, name: str, spec: ProviderSpec, protocol: str) -> str:
    """Why provider `name` cannot take requests in `api` ("" when it can)."""
    if spec.serves(api.name):
        return ""
    if not api.translated:
        return f"an {api.title}-API route needs {api.name} providers; {name!r} is {spec.type!r}"
    if protocol == "original" and not api.honours_original:
        return (
            f"{api.title} requests cannot pass untouched to {name!r} ({spec.type!r}, "
            f"protocol original); use a {' or '.join(_serving(api))} provider or protocol openai"
        )
    return ""


def upstream_of(p: pb.Provider, spec: ProviderSpec, path: str, err: Err) -> tuple[str, str]:
    """(host, base path): the spec's defaults, then base_url, then host/base_path."""
    host, base_path = spec.host or "", spec.base_path
    if p.base_url:
        u = urlsplit(p.base_url)
        if u.scheme not in ("http", "https") or not u.netloc:
            err(f"{path}.base_url", "must be an absolute http(s) URL")
        host, base_path = u.netloc, u.path.rstrip("/")
    if p.host:
        host = p.host
    if p.base_path:
        base_path = p.base_path.rstrip("/")
    return host, base_path


def mapper_of(p: pb.Provider, path: str, err: Err) -> ModelMapper | None:
    if not p.model_mapping:
        return None
    try:
        return ModelMapper({getattr(e, "from"): e.to for e in p.model_mapping})
    except ValueError as e:
        err(f"{path}.model_mapping", str(e))
        return None


def settings_of(
    p: pb.Provider, spec: ProviderSpec, path: str, err: Err
) -> tuple[ResolvedSetting, ...]:
    """Custom settings placed once for the provider's wire API."""
    if not p.custom_settings:
        return ()
    try:
        return resolve_custom_settings(
            spec.settings_paths,
            [
                CustomSetting(
                    s.name,
                    json_format.MessageToDict(s.value),
                    s.mode or "auto",
                    flag(s, "overwrite", True),
                )
                for s in p.custom_settings
            ],
        )
    except ValueError as e:
        err(f"{path}.custom_settings", str(e))
        return ()
