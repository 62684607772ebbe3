"""A cached answer: the client API's non-stream body, its usage and model.

Serialised as one JSON header line, a newline, then the body's bytes as the
client got them (a buffered answer) or as reassembled from its stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from extproc.usage import Usage

FORMAT = 1


class BadEntry(ValueError):
    """Stored bytes that are not an entry of this format (another version, corruption)."""


@dataclass(frozen=True, slots=True)
class Entry:
    api: str  # the client API of the body: openai | anthropic | ollama | responses
    endpoint: str  # chat, embeddings, ollama_chat, ollama_generate, anthropic_messages, ...
    model: str  # the model that served it
    body: bytes  # the non-stream answer, in the client's API
    usage: Usage | None
    created: float  # wall-clock seconds

    def encode(self) -> bytes:
        u = self.usage
        head = {
            "f": FORMAT,
            "api": self.api,
            "endpoint": self.endpoint,
            "model": self.model,
            "usage": [u.input_tokens, u.output_tokens, u.total_tokens, u.cached_tokens]
            if u
            else None,
            "created": self.created,
        }
        return orjson.dumps(head) + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        head_raw, sep, body = raw.partition(b"\n")
        if not sep:
            raise BadEntry("no header line")
        try:
            head = orjson.loads(head_raw)
            if head.get("f") != FORMAT:
                raise BadEntry(f"format {head.get('f')!r}")
            u = head.get("usage")
            usage = Usage(*(int(x) for x in u[:4])) if isinstance(u, list) else None
            return cls(
                str(head["api"]),
                str(head["endpoint"]),
                str(head.get("model") or ""),
                body,
                usage,
                float(head.get("created") or 0.0),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise BadEntry(type(e).__name__) from None
