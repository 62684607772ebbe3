"""A body that may arrive in parts, held up to a limit."""

from __future__ import annotations


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


class BodyBuffer:
    """Parts until the last one; one part (the usual case) is never copied."""

    __slots__ = ("_parts", "_size", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes, end: bool) -> bytes | None:
        """The whole body at the end, None before; TooLarge past the limit."""
        self._size += len(chunk)
        if self._size > self.limit:
            raise TooLarge(self.limit)
        if not end:
            self._parts.append(chunk)
            return None
        if not self._parts:
            return chunk
        whole = b"".join((*self._parts, chunk))
        self._parts = []
        return whole
