"""Resolve a secret (API token, guard key, ...) from configuration.

A config field can give the secret in exactly one of three ways:

* ``value``: a literal, in which ``${VAR}`` references (the whole value or embedded) are
  replaced from the environment;
* ``env``: the name of an environment variable holding the secret;
* ``file``: the path of a mounted file (e.g. a Kubernetes Secret volume); its content with
  trailing newlines removed.

Errors (``SecretError``) name the config field path and the variable or file, never the
secret value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from extproc.providers.regex import compile_re2

__all__ = ["SecretError", "resolve_secret"]

# Only well-formed names are references; any other "${" stays literal text, so a literal
# secret that happens to contain one is neither mangled nor echoed in an error.
_VAR_REF = compile_re2(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", "secret ${VAR} reference")
_VAR_NAME = compile_re2(r"[A-Za-z_][A-Za-z0-9_]*", "environment variable name")


class SecretError(Exception):
    """A secret could not be resolved; the message never contains a secret value.

    ``str()`` is ``"<field_path>: <detail>"``; callers that report the field path
    themselves (the config compiler) use ``detail``.
    """

    def __init__(self, field_path: str, detail: str) -> None:
        super().__init__(f"{field_path}: {detail}")
        self.field_path = field_path
        self.detail = detail


def _lookup(name: str, field_path: str, environ: Mapping[str, str]) -> str:
    if not _VAR_NAME.fullmatch(name):
        raise SecretError(field_path, f"{name!r} is not a valid environment variable name")
    try:
        return environ[name]
    except KeyError:
        raise SecretError(field_path, f"environment variable {name} is not set") from None


def _expand(value: str, field_path: str, environ: Mapping[str, str]) -> str:
    if "${" not in value:
        return value
    out: list[str] = []
    pos = 0
    for match in _VAR_REF.finditer(value):
        out.append(value[pos : match.start()])
        out.append(_lookup(match.group(1), field_path, environ))
        pos = match.end()
    out.append(value[pos:])
    return "".join(out)


def _read_file(path: str, field_path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            content = handle.read()
    except FileNotFoundError:
        raise SecretError(field_path, f"secret file {path} does not exist") from None
    except UnicodeDecodeError:
        raise SecretError(field_path, f"secret file {path} is not UTF-8 text") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SecretError(field_path, f"cannot read secret file {path}: {reason}") from None
    except ValueError:  # a NUL byte in the path
        raise SecretError(field_path, f"secret file path {path!r} is not a valid path") from None
    return content.rstrip("\r\n")


def resolve_secret(
    value: str | None,
    env: str | None,
    file: str | None,
    field_path: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Resolve the secret of config field ``field_path`` (e.g. ``providers[0].api_tokens[1]``).

    Exactly one of ``value``, ``env`` and ``file`` must be given (``None`` means absent).
    ``environ`` defaults to ``os.environ``.
    """
    given = [name for name, item in (("value", value), ("env", env), ("file", file)) if item]
    if value == "" and not given:
        return ""  # an explicit empty literal
    if len(given) != 1:
        if not given:
            raise SecretError(field_path, "no secret given (set one of value, env, file)")
        raise SecretError(field_path, f"set only one of {', '.join(given)}")
    environment: Mapping[str, str] = os.environ if environ is None else environ
    if value:
        return _expand(value, field_path, environment)
    if env:
        return _lookup(env, field_path, environment)
    assert file is not None
    return _read_file(file, field_path)
