"""The request path as routes see it, and which paths are canonical.

Routes match path prefixes. A path with an empty segment (`//v1/messages`),
a dot segment (`/x/../v1/messages`) or a percent-encoded unreserved character
(`/v1/%6Dessages`) names the same resource to most servers but misses the
prefix, so it would slip past a route's checks. Envoy's `normalize_path` and
`merge_slashes` fix this before we see the request; where a deployment lacks
them, the exchange refuses a non-canonical path instead of guessing.
"""

from __future__ import annotations

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")


def split_query(path: str) -> tuple[str, str]:
    """(path, "?query" or "")."""
    i = path.find("?")
    return (path, "") if i < 0 else (path[:i], path[i:])


def canonical_path(path: str) -> str | None:
    """The canonical form of a path without its query (RFC 3986 dot segments
    removed, slashes merged, unreserved characters decoded); None when it has
    none we would trust: no leading slash, a backslash, an encoded slash or
    backslash, or a broken escape."""
    if not path.startswith("/") or "\\" in path:
        return None
    if "//" not in path and "/." not in path and "%" not in path:
        return path  # the usual case: nothing to do
    if "%" in path:
        decoded = _decode_unreserved(path)
        if decoded is None:
            return None
        path = decoded
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif seg == ".":
            if last:
                out.append("")
        elif seg or last:
            out.append(seg)
    return "/" + "/".join(out)


def _decode_unreserved(path: str) -> str | None:
    parts = path.split("%")
    out = [parts[0]]
    for part in parts[1:]:
        code = part[:2]
        if len(code) < 2 or not set(code) <= _HEX:
            return None
        value = int(code, 16)
        if value in (0x2F, 0x5C, 0):
            return None  # an encoded slash, backslash or NUL: no trusted meaning
        if value in _UNRESERVED:
            out.append(chr(value) + part[2:])
        else:
            out.append("%" + code.upper() + part[2:])
    return "".join(out)
