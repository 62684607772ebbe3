"""Where a processor's own chat call goes: one resolver for llm_guard and llm_rewrite.

A processor names either a provider (its host, base path and token pool) or a
`host`/`port`/`path` with a key of its own. A provider's tokens are not taken
here: the chat client picks one per call and reports the answer back, so the
pool's rotation and cool-down apply as they do to the provider's own traffic.
Scheme: `tls` when set, else https on port 443 (the default) and http on any
other port.
"""

from __future__ import annotations

from typing import Any

from extproc.chat.client import Upstream
from extproc.config.fields import CHAT_SUFFIX
from extproc.processors.base import Build
from extproc.translators.registry import GUARD_DEFAULT

# The guard's (and the rewriter's) default path without a provider: the
# default provider's (the seed plugin's).
DEFAULT_CHAT_PATH = GUARD_DEFAULT.base_path + CHAT_SUFFIX


def base_url(host: str, port: int, tls: bool | None) -> str:
    """`scheme://host[:port]`, the port left out when it is the scheme's default."""
    use_tls = port == 443 if tls is None else tls
    scheme = "https" if use_tls else "http"
    authority = f"[{host}]" if ":" in host and not host.startswith("[") else host
    default_port = 443 if use_tls else 80
    return f"{scheme}://{authority}" if port == default_port else f"{scheme}://{authority}:{port}"


def split_host_port(authority: str) -> tuple[str, int | None]:
    """("host", port) of `host`, `host:port`, `[v6]` or `[v6]:port`; ValueError for a bad port."""
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[1 : end if end > 0 else None], authority[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, _, port = authority.partition(":")
    else:
        host, port = authority, ""  # a bare IPv6 address or a plain name
    if not port:
        return host, None
    if not port.isdigit():
        raise ValueError(f"{port!r} is not a port number")
    return host, int(port)


def resolve_upstream(
    msg: Any, path: str, b: Build, *, default_path: str, key_required: bool
) -> Upstream | None:
    """The upstream of an `llm_guard` / `llm_rewrite` message, problems reported at `path`.

    None when it cannot be known (no such provider, no host); other problems are
    reported and an Upstream is still returned, so the caller goes on checking."""
    timeout = b.positive(msg, "timeout", 10.0, path)
    tls = msg.tls.value if msg.HasField("tls") else None
    if msg.provider:
        return _from_provider(msg, path, b, timeout, tls)
    if not msg.host:
        b.err(f"{path}.host", "is required (or name a provider)")
    # The guard's message has a key-file field; the rewriter's does not.
    key_file = msg.api_key_file if "api_key_file" in msg.DESCRIPTOR.fields_by_name else ""
    key = b.secret(msg.api_key, msg.api_key_env, key_file, f"{path}.api_key", required=key_required)
    port = msg.port or 443
    if port > 65535:
        b.err(f"{path}.port", f"{port} is not a port number (1-65535)")
    upath = _checked_path(msg.path or default_path, path, b)
    if not msg.host:
        return None
    return Upstream(base_url(msg.host, port, tls), upath, timeout, api_key=key)


def _from_provider(
    msg: Any, path: str, b: Build, timeout: float, tls: bool | None
) -> Upstream | None:
    prov = b.providers.get(msg.provider)
    if prov is None:
        b.err(f"{path}.provider", f"no provider named {msg.provider!r}")
        return None
    if not prov.host:
        b.err(f"{path}.provider", f"provider {prov.name!r} has no host (set host or base_url)")
        return None
    try:
        host, port = split_host_port(prov.host)
    except ValueError as e:
        b.err(f"{path}.provider", f"provider {prov.name!r} host: {e}")
        return None
    upath = _checked_path(msg.path or prov.base_path + CHAT_SUFFIX, path, b)
    return Upstream(
        base_url(host, port or 443, tls),
        upath,
        timeout,
        tokens=prov.tokens,
        default_model=prov.default_model,
    )


def _checked_path(upath: str, path: str, b: Build) -> str:
    if not upath.startswith("/"):
        b.err(f"{path}.path", "must start with '/'")
    return upath
