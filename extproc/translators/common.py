"""Helpers shared by the translators: JSON, OpenAI shapes, error mapping.

Everything here produces the OpenAI chat-completions wire shapes, since that is
the client API every translator maps back to.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from extproc.api_errors import error_type_for_status, openai_error_body
from extproc.content.texts import UnreadableContent, content_text
from extproc.streaming.sse import SSEDecoder, encode_sse
from extproc.translators.base import (
    StreamFacts,
    StreamTranslator,
    TranslationError,
    UpstreamRequest,
)
from extproc.usage import Usage

JSON = "application/json"
SSE = "text/event-stream"
DONE = b"data: [DONE]\n\n"

dumps = orjson.dumps


def loads_object(body: bytes) -> dict[str, Any] | None:
    """Parse a JSON object; None for anything else (bad JSON, arrays, empty)."""
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def require_object(body: bytes, what: str) -> dict[str, Any]:
    obj = loads_object(body)
    if obj is None:
        raise TranslationError(f"{what}: upstream body is not a JSON object")
    return obj


def join_path(base_path: str, suffix: str) -> str:
    """base "/v1/" + "/chat/completions" -> "/v1/chat/completions"."""
    return base_path.rstrip("/") + suffix


def json_request(
    path: str,
    body: dict[str, Any],
    headers: Iterable[tuple[str, str]] = (),
    remove: tuple[str, ...] = (),
) -> UpstreamRequest:
    return UpstreamRequest(
        path=path,
        headers=(("content-type", JSON), *headers),
        remove_headers=remove,
        payload=body,
    )


def new_id(prefix: str = "chatcmpl-") -> str:
    return prefix + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def as_int(value: Any) -> int:
    """A count or index from upstream: a non-negative int, else 0 (a negative
    token count would refund a consumer's budget and break Prometheus counters)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# Upstream bodies are untrusted: a field of the wrong shape carries nothing
# rather than raising in the middle of a response.


def as_obj(value: Any) -> dict[str, Any]:
    """An upstream value that should be an object; {} when it is not."""
    return value if isinstance(value, dict) else {}


def as_objs(value: Any) -> list[dict[str, Any]]:
    """The objects of an upstream array (other items skipped; [] for a non-array)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def request_calls(msg: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(call, function) of each client tool call; TranslationError for other shapes."""
    calls = msg.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise TranslationError("tool_calls must be an array")
    out = []
    for c in calls:
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict):
            raise TranslationError("each tool call must be an object with a function object")
        out.append((c, fn))
    return out


# ---------------------------------------------------------------- usage


def openai_usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def usage_from_openai(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    prompt = as_int(u.get("prompt_tokens"))
    completion = as_int(u.get("completion_tokens"))
    total = u.get("total_tokens")
    pd = u.get("prompt_tokens_details")
    cd = u.get("completion_tokens_details")
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=as_int(total) if isinstance(total, int) else prompt + completion,
        cached_tokens=as_int(pd.get("cached_tokens")) if isinstance(pd, dict) else 0,
        reasoning_tokens=as_int(cd.get("reasoning_tokens")) if isinstance(cd, dict) else 0,
    )


# ---------------------------------------------------------------- errors


def extract_error(body: bytes) -> tuple[str, str | int | None]:
    """(message, provider code/type) from the common provider error shapes.

    Handles ``{"error": {"message", "type"|"code"|"status"}}`` (OpenAI,
    Anthropic, Gemini, Azure), ``{"error": "..."}`` (Ollama), ``{"message": ...}``
    (several OpenAI-compatible vendors) and Gemini's occasional top-level list;
    falls back to the raw text so the provider's words always reach the client.
    """
    try:
        value: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict):
        err = value.get("error", value)
        if isinstance(err, str):
            return err, None
        if isinstance(err, dict):
            msg = err.get("message") or err.get("msg") or value.get("message")
            # Prefer a symbolic name: Gemini's "code" is just the HTTP status
            # number, its "status" (e.g. INVALID_ARGUMENT) says more.
            status = err.get("status")
            code = err.get("type") or (status if isinstance(status, str) else None)
            code = code or err.get("code")
            if isinstance(msg, str) and msg:
                return msg, code if isinstance(code, str | int) else None
    text = body.decode("utf-8", "replace").strip()
    return (text[:1000] or "upstream returned an error with no body"), None


def map_error(status: int, body: bytes) -> bytes:
    message, code = extract_error(body)
    return openai_error_body(message, error_type_for_status(status), code)


def error_event(message: str, type_: str = "server_error", code: str | int | None = None) -> bytes:
    """An OpenAI-style in-stream error (the SDKs raise on a ``data`` with ``error``)."""
    return encode_sse(openai_error_body(message, type_, code))


# ---------------------------------------------------------------- request helpers


def text_of(content: Any) -> str:
    """Flatten OpenAI message content to text: the checks' own rule
    (`extproc.content.texts`: text parts joined by "\n"), so the upstream model
    reads what the checks read."""
    try:
        return content_text(content, "content")
    except UnreadableContent as e:
        raise TranslationError(f"message {e}") from None


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,XXXX`` -> ("image/png", "XXXX"); None if not base64 data."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    return header[: -len(";base64")] or "application/octet-stream", payload


def image_url_of(part: Mapping[str, Any]) -> str:
    iu = part.get("image_url")
    url = iu.get("url") if isinstance(iu, dict) else iu
    if not isinstance(url, str) or not url:
        raise TranslationError("image_url part without a url")
    return url


def stop_list(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise TranslationError("stop must be a string or a list of strings")


def max_tokens_of(body: Mapping[str, Any]) -> int | None:
    # max_completion_tokens is the newer OpenAI name; prefer it when both exist.
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) else None


def tool_arguments(args: Any) -> Any:
    """OpenAI tool_call arguments are a JSON string; native APIs want an object."""
    if isinstance(args, str):
        try:
            return orjson.loads(args) if args else {}
        except orjson.JSONDecodeError as exc:
            raise TranslationError("tool_call arguments are not valid JSON") from exc
    return args if args is not None else {}


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    inp = body.get("input")
    if isinstance(inp, str):
        return [inp]
    if isinstance(inp, list) and all(isinstance(s, str) for s in inp):
        return list(inp)
    raise TranslationError("embeddings input must be a string or a list of strings")


def embeddings_body(vectors: list[list[float]], model: str, usage: Usage) -> bytes:
    """OpenAI embeddings list. Always floats: the OpenAI SDKs ask for base64 by
    default but accept float lists (they only decode when given a string)."""
    return dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.total_tokens},
        }
    )


# ---------------------------------------------------------------- response builders


def completion_body(
    *,
    id_: str,
    model: str,
    choices: list[dict[str, Any]],
    usage: Usage | None,
    created: int | None = None,
) -> bytes:
    out: dict[str, Any] = {
        "id": id_,
        "object": "chat.completion",
        "created": created if created is not None else now(),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = openai_usage_dict(usage)
    return dumps(out)


class ChunkWriter:
    """Builds OpenAI ``chat.completion.chunk`` SSE events for one stream."""

    __slots__ = ("created", "id", "model")

    def __init__(self, model: str, id_: str | None = None) -> None:
        self.id = id_ or new_id()
        self.model = model
        self.created = now()

    def chunk(
        self,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        index: int = 0,
    ) -> bytes:
        return encode_sse(
            dumps(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
                }
            )
        )

    def usage_chunk(self, usage: Usage) -> bytes:
        # The include_usage shape: a final chunk with empty choices and usage.
        return encode_sse(
            dumps(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": openai_usage_dict(usage),
                }
            )
        )


class JsonEventStream(StreamFacts):
    """Base of provider SSE streams whose events each carry one JSON object
    (Anthropic, Gemini): decodes incrementally and hands every object to
    ``_handle``, which appends OpenAI chunk bytes to ``out``."""

    content_type = SSE

    def __init__(self, model: str, include_usage: bool, max_line_bytes: int | None = None) -> None:
        self._decoder = SSEDecoder(max_line_bytes) if max_line_bytes else SSEDecoder()
        self._out = ChunkWriter(model)
        self._include_usage = include_usage
        self._model: str | None = None
        self._ended = False

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for ev in self._decoder.feed(chunk):
            if self._ended:
                break
            try:
                obj = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                self._handle(obj, out)
        return b"".join(out)

    def _handle(self, obj: dict[str, Any], out: list[bytes]) -> None:
        raise NotImplementedError


class ComposedStream:
    """X's stream -> (inner) OpenAI chunks -> (outer) the client API's events:
    a (client API, OpenAI) stream translator composed with each (OpenAI, X) one."""

    content_type = SSE

    def __init__(self, inner: StreamTranslator, outer: StreamTranslator) -> None:
        self.inner, self.outer = inner, outer

    @property
    def usage(self) -> Usage | None:
        # The inner translator read the provider's own counts; the outer only
        # sees them again through OpenAI's usage chunk.
        return self.inner.usage or self.outer.usage

    @property
    def model(self) -> str | None:
        return self.inner.model or self.outer.model

    def feed(self, chunk: bytes) -> bytes:
        mid = self.inner.feed(chunk)
        return self.outer.feed(mid) if mid else b""

    def finish(self) -> bytes:
        mid = self.inner.finish()
        head = self.outer.feed(mid) if mid else b""
        return head + self.outer.finish()
