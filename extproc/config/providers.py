"""The parts of a provider's config that its spec gives defaults for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format

from extproc.client_apis.base import ClientApi
from extproc.cloud.setup import CloudConfig, CloudSetupError, CloudUpstream
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


def _integral(value: Any) -> Any:
    """A Struct's numbers are all floats; a whole number goes on as an integer
    (max_tokens: 77, not 77.0, which typed APIs such as Bedrock's reject)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


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
                    _integral(json_format.MessageToDict(s.value)),
                    s.mode or "auto",
                    flag(s, "overwrite", True),
                )
                for s in p.custom_settings
            ],
        )
    except ValueError as e:
        err(f"{path}.custom_settings", str(e))
        return ()


Secret = Callable[[str, str, str, str], str]  # (value, env, file, path) -> resolved


def cloud_of(
    p: pb.Provider, spec: ProviderSpec, path: str, err: Err, secret: Secret
) -> CloudUpstream | None:
    """A cloud provider's default upstream and credentials (bedrock, vertex);
    None for the others (whose `aws` / `gcp` fields are then an error)."""
    setup = spec.upstream_auth
    if setup is None:
        for name in ("aws", "gcp"):
            if p.HasField(name):
                err(f"{path}.{name}", f"is only for cloud providers, not type {spec.type!r}")
        return None
    if p.api_tokens or p.api_tokens_env or p.api_tokens_file:
        err(
            f"{path}.api_tokens",
            f"provider type {spec.type!r} authenticates with aws/gcp credentials",
        )
    aws_keys = None
    if p.HasField("aws"):
        a, ap = p.aws, f"{path}.aws"
        ak = secret(
            a.access_key_id, a.access_key_id_env, a.access_key_id_file, f"{ap}.access_key_id"
        )
        sk = secret(
            a.secret_access_key,
            a.secret_access_key_env,
            a.secret_access_key_file,
            f"{ap}.secret_access_key",
        )
        tok = secret(
            a.session_token, a.session_token_env, a.session_token_file, f"{ap}.session_token"
        )
        if not ak or not sk:
            err(
                ap,
                "needs both access_key_id and secret_access_key (or leave aws out for the AWS chain)",
            )
            return None
        aws_keys = (ak, sk, tok)
    gcp_json = ""
    if p.HasField("gcp"):
        g = p.gcp
        gcp_json = secret(
            g.service_account_json,
            g.service_account_json_env,
            g.service_account_json_file,
            f"{path}.gcp.service_account_json",
        )
        if not gcp_json:
            err(f"{path}.gcp.service_account_json", "is required (or leave gcp out for ADC)")
            return None
    options = json_format.MessageToDict(p.options)
    try:
        return setup(CloudConfig(options, aws_keys, gcp_json))
    except CloudSetupError as e:
        err(f"{path}.{e.field}", e.message)
        return None
