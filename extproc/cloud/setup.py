"""Cloud providers' upstream and credentials from config (no I/O here).

Each cloud spec names a setup function (`ProviderSpec.upstream_auth`) that
takes the provider's options and resolved secrets and returns its default
upstream (from the region or an ``endpoint`` URL) and its `UpstreamAuth`.
Problems are `CloudSetupError` naming the field under the provider, never a
secret's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from extproc.cloud.auth import AwsSigV4Auth, GoogleBearerAuth, UpstreamAuth
from extproc.cloud.aws import AwsCredentialSource
from extproc.cloud.gcp import (
    GoogleTokenSource,
    default_credentials,
    service_account_credentials,
)

_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")


def _is_region(s: str) -> bool:
    """AWS regions and GCP locations: lower-case words and digits joined by "-"
    (us-east-1, europe-west4), or "global"."""
    words = s.split("-")
    return s == "global" or (
        len(words) >= 2
        and len(words[0]) >= 2
        and set(words[0]) <= _LOWER
        and all(w and set(w) <= _LOWER | _DIGITS for w in words[1:])
    )


def _is_project(s: str) -> bool:
    """A GCP project ID (6-30 of a-z, 0-9, "-", starting with a letter) or number."""
    if s and set(s) <= _DIGITS:
        return len(s) <= 20
    return (
        6 <= len(s) <= 30 and s[0] in _LOWER and s[-1] != "-" and set(s) <= _LOWER | _DIGITS | {"-"}
    )


class CloudSetupError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True, slots=True)
class CloudConfig:
    options: Mapping[str, Any]
    aws_keys: tuple[str, str, str] | None  # (access key id, secret, session token)
    gcp_json: str  # a service-account key ("" = Application Default Credentials)


@dataclass(frozen=True, slots=True)
class CloudUpstream:
    host: str
    base_path: str
    auth: UpstreamAuth
    # Static credentials an answer must never show (redacted like API tokens).
    secrets: tuple[str, ...] = ()


def _option(cfg: CloudConfig, name: str, required: bool) -> str:
    value = cfg.options.get(name)
    if value is None or value == "":
        if required:
            raise CloudSetupError(f"options.{name}", "is required")
        return ""
    if not isinstance(value, str):
        raise CloudSetupError(f"options.{name}", "must be a string")
    return value


def _region(cfg: CloudConfig) -> str:
    region = _option(cfg, "region", True)
    if not _is_region(region):
        raise CloudSetupError("options.region", f"{region!r} is not a region name (e.g. us-east-1)")
    return region


def _endpoint(cfg: CloudConfig) -> tuple[str, str] | None:
    endpoint = _option(cfg, "endpoint", False)
    if not endpoint:
        return None
    u = urlsplit(endpoint)
    if u.scheme not in ("http", "https") or not u.netloc or u.query or u.fragment:
        raise CloudSetupError("options.endpoint", "must be an absolute http(s) URL without a query")
    return u.netloc, u.path.rstrip("/")


def bedrock_host(region: str) -> str:
    # The China regions live under their own domain.
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"bedrock-runtime.{region}.{suffix}"


def bedrock_setup(cfg: CloudConfig, service: str) -> CloudUpstream:
    """``service``: the SigV4 signing name, from the provider's spec."""
    region = _region(cfg)
    if cfg.gcp_json:
        raise CloudSetupError("gcp", "is for vertex providers; bedrock takes aws")
    if cfg.aws_keys is not None:
        source = AwsCredentialSource.from_keys(*cfg.aws_keys)
    else:
        source = AwsCredentialSource()  # botocore's chain, loaded in start()
    host, base = _endpoint(cfg) or (bedrock_host(region), "")
    secrets = tuple(k for k in cfg.aws_keys[1:] if k) if cfg.aws_keys else ()
    return CloudUpstream(host, base, AwsSigV4Auth(source, region, service), secrets)


def vertex_host(region: str) -> str:
    if region == "global":
        return "aiplatform.googleapis.com"
    return f"{region}-aiplatform.googleapis.com"


def vertex_setup(cfg: CloudConfig) -> CloudUpstream:
    region = _region(cfg)
    project = _option(cfg, "project", True)
    if not _is_project(project):
        raise CloudSetupError("options.project", f"{project!r} is not a GCP project ID or number")
    if cfg.aws_keys is not None:
        raise CloudSetupError("aws", "is for bedrock providers; vertex takes gcp")
    if cfg.gcp_json:
        try:
            info = orjson.loads(cfg.gcp_json)
        except orjson.JSONDecodeError:
            info = None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise CloudSetupError("gcp.service_account_json", "is not a service-account JSON key")
        missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
        if missing:
            raise CloudSetupError("gcp.service_account_json", f"the key lacks {', '.join(missing)}")
        source = GoogleTokenSource(service_account_credentials(info))
    else:
        source = GoogleTokenSource(default_credentials)
    host, base = _endpoint(cfg) or (vertex_host(region), "/v1")
    return CloudUpstream(host, base or "/v1", GoogleBearerAuth(source))
