"""OpenAI clients -> the Ollama native API (``/api/chat``, ``/api/embed``).

Reference: https://github.com/ollama/ollama/blob/main/docs/api.md

Ollama-native clients to Ollama (the other pair) are in ``ollama_native``.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.streaming.errors import StreamDecodeError
from extproc.streaming.ndjson import NDJSONDecoder
from extproc.translators.base import (
    Framing,
    HeaderAuth,
    ProviderSpec,
    ProviderTarget,
    SettingPaths,
    StreamFacts,
    TranslatedResponse,
    TranslationError,
    UpstreamRequest,
)
from extproc.translators.common import (
    DONE,
    SSE,
    ChunkWriter,
    as_int,
    as_obj,
    as_objs,
    completion_body,
    embedding_inputs,
    embeddings_body,
    error_event,
    extract_error,
    image_url_of,
    join_path,
    json_request,
    map_error,
    max_tokens_of,
    new_id,
    parse_data_url,
    request_calls,
    require_object,
    stop_list,
    text_of,
    tool_arguments,
)
from extproc.usage import Usage

NDJSON = "application/x-ndjson"


def ollama_usage(obj: dict[str, Any]) -> Usage | None:
    if "prompt_eval_count" not in obj and "eval_count" not in obj:
        return None
    return Usage.of(as_int(obj.get("prompt_eval_count")), as_int(obj.get("eval_count")))


def _message(msg: dict[str, Any]) -> dict[str, Any]:
    role = msg.get("role")
    if role not in ("system", "developer", "user", "assistant", "tool"):
        raise TranslationError(f"message role {role!r} is not supported for ollama")
    content = msg.get("content")
    out: dict[str, Any] = {"role": "system" if role == "developer" else role}
    images: list[str] = []
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(part.get("text", ""))
            elif kind == "image_url":
                data = parse_data_url(image_url_of(part))
                if data is None:
                    raise TranslationError("ollama accepts only base64 data: URLs for images")
                images.append(data[1])
            else:
                raise TranslationError(f"content part type {kind!r} is not supported for ollama")
        out["content"] = "".join(texts)
    else:
        out["content"] = text_of(content)
    if images:
        out["images"] = images
    if role == "assistant" and msg.get("tool_calls"):
        out["tool_calls"] = [
            {
                "function": {
                    "name": fn.get("name", ""),
                    "arguments": tool_arguments(fn.get("arguments")),
                }
            }
            for _, fn in request_calls(msg)
        ]
    if role == "tool" and isinstance(msg.get("name"), str):
        out["tool_name"] = msg["name"]
    return out


def build_body(body: dict[str, Any], target: ProviderTarget) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty list")
    out: dict[str, Any] = {
        "model": target.model or body.get("model", ""),
        "messages": [_message(m) for m in messages if isinstance(m, dict)],
        # Ollama streams unless told otherwise, so always say which we want.
        "stream": target.stream,
    }
    options: dict[str, Any] = {}
    for key in ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty"):
        if body.get(key) is not None:
            options[key] = body[key]
    max_tokens = max_tokens_of(body)
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stops = stop_list(body.get("stop"))
    if stops:
        options["stop"] = stops
    if options:
        out["options"] = options
    rf = body.get("response_format")
    if isinstance(rf, dict):
        if rf.get("type") == "json_object":
            out["format"] = "json"
        elif rf.get("type") == "json_schema":
            out["format"] = as_obj(rf.get("json_schema")).get("schema") or "json"
    if body.get("tools"):
        out["tools"] = body["tools"]  # Ollama takes OpenAI-style function tools
    if "keep_alive" in target.settings:
        out["keep_alive"] = target.settings["keep_alive"]
    return out


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": c.get("id") or new_id("call_"),
            "type": "function",
            "function": {
                "name": as_obj(c.get("function")).get("name", ""),
                "arguments": orjson.dumps(
                    as_obj(c.get("function")).get("arguments") or {}
                ).decode(),
            },
        }
        for c in as_objs(calls)
    ]


def _finish(obj: dict[str, Any], has_calls: bool) -> str:
    if has_calls:
        return "tool_calls"
    return "length" if obj.get("done_reason") == "length" else "stop"


class OllamaTranslator:
    name = "ollama"
    spec: ProviderSpec

    def chat_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        return json_request(
            join_path(target.base_path, "/api/chat"),
            build_body(body, target),
            self.spec.upstream_headers(target),
            ("authorization",),  # the client's gateway key is not Ollama's
        )

    def chat_response(self, status: int, body: bytes, target: ProviderTarget) -> TranslatedResponse:
        obj = require_object(body, "ollama response")
        msg = as_obj(obj.get("message"))
        calls = _tool_calls(msg.get("tool_calls"))
        message: dict[str, Any] = {"role": "assistant", "content": msg.get("content", "")}
        if calls:
            message["tool_calls"] = calls
        if msg.get("thinking"):
            message["reasoning_content"] = msg["thinking"]
        usage = ollama_usage(obj)
        model = obj.get("model") if isinstance(obj.get("model"), str) else None
        return TranslatedResponse(
            completion_body(
                id_=new_id(),
                model=model or target.model,
                choices=[
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": _finish(obj, bool(calls)),
                        "logprobs": None,
                    }
                ],
                usage=usage,
            ),
            usage,
            model,
        )

    def chat_stream(
        self, target: ProviderTarget, include_usage: bool, max_line_bytes: int | None = None
    ) -> OllamaStream:
        return OllamaStream(target.model, include_usage, max_line_bytes)

    def embeddings_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        out: dict[str, Any] = {
            "model": target.model or body.get("model", ""),
            "input": embedding_inputs(body),
        }
        if isinstance(body.get("dimensions"), int):
            out["dimensions"] = body["dimensions"]
        return json_request(
            join_path(target.base_path, "/api/embed"),
            out,
            self.spec.upstream_headers(target),
            ("authorization",),
        )

    def embeddings_response(
        self, status: int, body: bytes, target: ProviderTarget
    ) -> TranslatedResponse:
        obj = require_object(body, "ollama embed response")
        emb = obj.get("embeddings")
        vectors = [v for v in emb if isinstance(v, list)] if isinstance(emb, list) else []
        usage = Usage.of(as_int(obj.get("prompt_eval_count")), 0)
        model = obj.get("model") if isinstance(obj.get("model"), str) else None
        return TranslatedResponse(
            embeddings_body(vectors, model or target.model, usage), usage, model
        )

    def error_response(self, status: int, body: bytes) -> bytes:
        return map_error(status, body)


class OllamaStream(StreamFacts):
    """Ollama NDJSON chat stream -> OpenAI chunks; the ``done`` line ends it.

    A mid-stream ``{"error": ...}`` line becomes an OpenAI error event; a stream
    that ends without ``done: true`` ends with an error event, not ``[DONE]``.
    """

    content_type = SSE

    def __init__(self, model: str, include_usage: bool, max_line_bytes: int | None = None) -> None:
        self._decoder = NDJSONDecoder(max_line_bytes) if max_line_bytes else NDJSONDecoder()
        self._out = ChunkWriter(model)
        self._include_usage = include_usage
        self._usage: Usage | None = None
        self._model: str | None = None
        self._started = False
        self._tools = 0
        self._ended = False

    def feed(self, chunk: bytes) -> bytes:
        if self._ended:
            return b""
        try:
            objs = self._decoder.feed(chunk)
        except StreamDecodeError as exc:
            self._ended = True
            return error_event(str(exc), "server_error")
        return self._emit(objs)

    def finish(self) -> bytes:
        if self._ended:
            return b""
        try:
            out = self._emit(self._decoder.finish())
        except StreamDecodeError as exc:
            out = error_event(str(exc), "server_error")
            self._ended = True
        if not self._ended:
            self._ended = True
            out += error_event("upstream stream ended before done", "server_error")
        return out

    def _emit(self, objs: list[Any]) -> bytes:
        out: list[bytes] = []
        w = self._out
        for obj in objs:
            if self._ended or not isinstance(obj, dict):
                continue
            if "error" in obj:
                message, _ = extract_error(orjson.dumps(obj))
                out.append(error_event(message, "server_error"))
                self._ended = True
                continue
            if self._model is None and isinstance(obj.get("model"), str):
                self._model = w.model = obj["model"]
            msg = as_obj(obj.get("message"))
            delta: dict[str, Any] = {}
            if not self._started:
                self._started = True
                delta["role"] = "assistant"
            if msg.get("content") or "role" in delta:
                delta["content"] = msg.get("content", "")
            if msg.get("thinking"):
                delta["reasoning_content"] = msg["thinking"]
            calls = _tool_calls(msg.get("tool_calls"))
            if calls:
                for i, c in enumerate(calls):
                    c["index"] = self._tools + i
                self._tools += len(calls)
                delta["tool_calls"] = calls
            if delta:
                out.append(w.chunk(delta))
            if obj.get("done"):
                self._usage = ollama_usage(obj)
                out.append(w.chunk({}, _finish(obj, self._tools > 0)))
                if self._include_usage and self._usage is not None:
                    out.append(w.usage_chunk(self._usage))
                out.append(DONE)
                self._ended = True
        return b"".join(out)


OLLAMA = OllamaTranslator()
SETTINGS: SettingPaths = {
    "max_tokens": (("options", "num_predict"),),
    "temperature": (("options", "temperature"),),
    "top_p": (("options", "top_p"),),
    "top_k": (("options", "top_k"),),
    "seed": (("options", "seed"),),
}
# No default host (self-hosted); usually plain HTTP inside the mesh.
SPEC = ProviderSpec(
    type="ollama",
    translator=OLLAMA,
    wire="ollama",
    host=None,
    base_path="",
    scheme="http",
    auth=HeaderAuth("authorization", "Bearer", optional=True),
    framing=Framing.NDJSON,
    content_type_reliable=False,  # Ollama streams NDJSON, whatever its content type says
    native_apis=frozenset({"ollama"}),  # Ollama's own clients (/api/chat, /api/generate)
    embeddings=True,
    settings_paths=SETTINGS,
)
