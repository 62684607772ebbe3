"""Provider and guard keys never reach the client in an answer.

A provider (or anything between) may echo the key it was sent: in a header,
in an error body, in a listing. Every relayed response header, every answer
body the gateway reads and every streamed chunk goes through the runtime's
`Redactor`, which replaces each configured upstream secret (provider tokens,
guard and rewrite keys) by "[redacted]". Pass-through answers are streamed
through a `RedactTap` that holds back a key's length minus one byte between
chunks, so a key split across chunks is caught too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from extproc.usage import Usage

REDACTED = "[redacted]"
_REDACTED_B = REDACTED.encode()
_MIN_SECRET = 8  # shorter "secrets" (test placeholders) would mangle ordinary text


class Redactor:
    """Replaces every configured secret in header values and bodies."""

    __slots__ = ("_bytes", "_strs", "longest")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first: a secret that contains another is replaced whole.
        uniq = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._strs = tuple(uniq)
        self._bytes = tuple(s.encode() for s in uniq)
        self.longest = len(self._bytes[0]) if uniq else 0

    def __bool__(self) -> bool:
        return bool(self._strs)

    def __repr__(self) -> str:  # never the secrets
        return f"Redactor({len(self._strs)} secrets)"

    def text(self, value: str) -> str:
        for s in self._strs:
            if s in value:
                value = value.replace(s, REDACTED)
        return value

    def body(self, data: bytes) -> bytes:
        for s in self._bytes:
            if s in data:
                data = data.replace(s, _REDACTED_B)
        return data

    def headers(self, headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """(name, redacted value) for each header holding a secret; () when none does."""
        if not self._strs:
            return ()
        # One scan per secret over all values: the common case finds nothing.
        blob = "\n".join(headers.values())
        if not any(s in blob for s in self._strs):
            return ()
        return tuple(
            (k, self.text(v))
            for k, v in headers.items()
            if not k.startswith(":") and any(s in v for s in self._strs)
        )


class RedactTap:
    """A stream that only has its secrets replaced (pass-through answers)."""

    __slots__ = ("_held", "_r", "content_type")

    def __init__(self, redactor: Redactor, content_type: str) -> None:
        self._r = redactor
        self._held = b""
        self.content_type = content_type  # the upstream's own

    def feed(self, chunk: bytes) -> bytes:
        if not self._r:
            return chunk
        data = self._r.body(self._held + chunk)
        # Keep what could be the start of a secret the next chunk completes.
        keep = min(len(data), self._r.longest - 1)
        self._held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep]

    def finish(self) -> bytes:
        out, self._held = self._held, b""
        return out

    @property
    def usage(self) -> Usage | None:
        return None

    @property
    def model(self) -> str | None:
        return None
