"""Errors raised by the incremental stream decoders.

Both subclass ValueError so callers that treat "bad upstream bytes" generically
can catch one type; the subclasses let the exchange tell a resource limit
(an upstream trying to make us buffer without bound) from malformed data.
"""

from __future__ import annotations


class StreamLimitError(ValueError):
    """A configured memory bound was exceeded; the message names the limit."""


class StreamDecodeError(ValueError):
    """The upstream bytes are not valid for the stream format (e.g. bad JSON line)."""
