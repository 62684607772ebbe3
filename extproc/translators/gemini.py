"""Google Gemini API (``generateContent`` / ``streamGenerateContent``) <-> OpenAI.

Reference: https://ai.google.dev/api/generate-content and
https://ai.google.dev/api/embeddings
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from extproc.api_errors import error_type_for_status
from extproc.prices import Price
from extproc.translators.base import (
    Framing,
    HeaderAuth,
    ProviderSpec,
    ProviderTarget,
    SettingPaths,
    TranslatedResponse,
    TranslationError,
    UpstreamRequest,
)
from extproc.translators.common import (
    DONE,
    JsonEventStream,
    as_int,
    as_obj,
    as_objs,
    completion_body,
    embedding_inputs,
    embeddings_body,
    error_event,
    join_path,
    json_request,
    map_error,
    new_id,
    require_object,
)
from extproc.translators.gemini_body import build_body
from extproc.usage import Usage

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def _model_name(body: dict[str, Any], target: ProviderTarget) -> str:
    model = target.model or str(body.get("model") or "")
    if not model:
        raise TranslationError("gemini needs a model")
    return model.removeprefix("models/")


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    prompt = as_int(meta.get("promptTokenCount"))
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    # candidatesTokenCount excludes thinking; OpenAI's completion_tokens includes
    # reasoning tokens, so add them back.
    completion = as_int(meta.get("candidatesTokenCount")) + thoughts
    total = meta.get("totalTokenCount")
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=as_int(total) if isinstance(total, int) else prompt + completion,
        cached_tokens=as_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _parts_delta(parts: Any, tool_base: int) -> tuple[dict[str, Any], int]:
    """Gemini parts -> OpenAI message/delta fields; returns (fields, tool calls seen)."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in as_objs(parts):
        if "functionCall" in part:
            fc = as_obj(part["functionCall"])
            calls.append(
                {
                    "index": tool_base + len(calls),
                    "id": fc.get("id") or new_id("call_"),
                    "type": "function",
                    "function": {
                        "name": fc.get("name", ""),
                        "arguments": orjson.dumps(fc.get("args") or {}).decode(),
                    },
                }
            )
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    fields: dict[str, Any] = {}
    if texts:
        fields["content"] = "".join(texts)
    if thoughts:
        fields["reasoning_content"] = "".join(thoughts)
    if calls:
        fields["tool_calls"] = calls
    return fields, len(calls)


def _finish(reason: Any, has_calls: bool) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if has_calls and reason == "STOP":
        return "tool_calls"
    return FINISH.get(str(reason), "stop")


class GeminiTranslator:
    name = "gemini"
    spec: ProviderSpec

    def chat_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        model = quote(_model_name(body, target), safe="")
        op = ":streamGenerateContent?alt=sse" if target.stream else ":generateContent"
        return json_request(
            join_path(target.base_path, f"/models/{model}{op}"),
            build_body(body, target),
            self.spec.upstream_headers(target),
            ("authorization",),
        )

    def chat_response(self, status: int, body: bytes, target: ProviderTarget) -> TranslatedResponse:
        obj = require_object(body, "gemini response")
        choices = []
        for i, cand in enumerate(as_objs(obj.get("candidates"))):
            fields, ncalls = _parts_delta(as_obj(cand.get("content")).get("parts"), 0)
            for c in fields.get("tool_calls", ()):
                del c["index"]  # index belongs to stream deltas only
            message = {"role": "assistant", "content": fields.pop("content", "")}
            if ncalls and not message["content"]:
                message["content"] = None
            message.update(fields)
            choices.append(
                {
                    "index": as_int(cand.get("index")) or i,
                    "message": message,
                    "finish_reason": _finish(cand.get("finishReason"), ncalls > 0) or "stop",
                    "logprobs": None,
                }
            )
        if not choices and as_obj(obj.get("promptFeedback")).get("blockReason"):
            # The prompt itself was blocked: OpenAI has no such response, the
            # closest is an empty answer filtered for content.
            choices.append(
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ""},
                    "finish_reason": "content_filter",
                    "logprobs": None,
                }
            )
        usage = _usage(obj.get("usageMetadata"))
        model = obj.get("modelVersion") if isinstance(obj.get("modelVersion"), str) else None
        return TranslatedResponse(
            completion_body(
                id_=str(obj.get("responseId") or new_id()),
                model=model or target.model,
                choices=choices,
                usage=usage,
            ),
            usage,
            model,
        )

    def chat_stream(
        self, target: ProviderTarget, include_usage: bool, max_line_bytes: int | None = None
    ) -> GeminiStream:
        return GeminiStream(target.model, include_usage, max_line_bytes)

    def embeddings_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        model = _model_name(body, target)
        dims = body.get("dimensions")
        requests = []
        for text in embedding_inputs(body):
            req: dict[str, Any] = {
                "model": f"models/{model}",
                "content": {"parts": [{"text": text}]},
            }
            if isinstance(dims, int):
                req["outputDimensionality"] = dims
            requests.append(req)
        return json_request(
            join_path(target.base_path, f"/models/{quote(model, safe='')}:batchEmbedContents"),
            {"requests": requests},
            self.spec.upstream_headers(target),
            ("authorization",),
        )

    def embeddings_response(
        self, status: int, body: bytes, target: ProviderTarget
    ) -> TranslatedResponse:
        obj = require_object(body, "gemini embeddings response")
        items = obj.get("embeddings")
        if items is None and isinstance(obj.get("embedding"), dict):
            items = [obj["embedding"]]  # single embedContent response
        vectors = [v for e in as_objs(items) if isinstance(v := e.get("values"), list)]
        # Gemini reports no token counts for embeddings.
        return TranslatedResponse(embeddings_body(vectors, target.model, Usage()), None, None)

    def error_response(self, status: int, body: bytes) -> bytes:
        return map_error(status, body)


class GeminiStream(JsonEventStream):
    """SSE of GenerateContentResponse objects -> OpenAI chunks.

    Gemini has no end-of-stream event: the last response carries a
    ``finishReason``. Usage is cumulative, so the last ``usageMetadata`` wins.
    A stream that ends without any finishReason was cut off and ends with an
    error event instead of ``[DONE]``.
    """

    def __init__(self, model: str, include_usage: bool, max_line_bytes: int | None = None) -> None:
        super().__init__(model, include_usage, max_line_bytes)
        self._usage: Usage | None = None
        self._started: set[int] = set()
        self._tools: dict[int, int] = {}  # candidate index -> tool calls so far
        self._finished = False

    def finish(self) -> bytes:
        self._decoder.finish()
        if self._ended:
            return b""
        self._ended = True
        if not self._finished:
            return error_event("upstream stream ended without a finishReason", "server_error")
        tail = []
        if self._include_usage and self._usage is not None:
            tail.append(self._out.usage_chunk(self._usage))
        tail.append(DONE)
        return b"".join(tail)

    def _handle(self, obj: dict[str, Any], out: list[bytes]) -> None:
        w = self._out
        if isinstance(obj.get("error"), dict):
            out.append(map_error_event(obj))
            self._ended = True
            return
        if self._model is None and isinstance(obj.get("modelVersion"), str):
            self._model = w.model = obj["modelVersion"]
            if isinstance(obj.get("responseId"), str):
                w.id = obj["responseId"]
        usage = _usage(obj.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        for i, cand in enumerate(as_objs(obj.get("candidates"))):
            idx = as_int(cand.get("index")) or i
            base = self._tools.get(idx, 0)
            fields, ncalls = _parts_delta(as_obj(cand.get("content")).get("parts"), base)
            self._tools[idx] = base + ncalls
            if idx not in self._started:
                self._started.add(idx)
                fields = {"role": "assistant", **fields}
                fields.setdefault("content", "")
            if fields:
                out.append(w.chunk(fields, index=idx))
            reason = _finish(cand.get("finishReason"), self._tools[idx] > 0)
            if reason:
                self._finished = True
                out.append(w.chunk({}, reason, index=idx))
        if not obj.get("candidates") and as_obj(obj.get("promptFeedback")).get("blockReason"):
            self._finished = True
            out.append(w.chunk({"role": "assistant", "content": ""}, "content_filter"))


def map_error_event(obj: dict[str, Any]) -> bytes:
    err = obj["error"]
    status = as_int(err.get("code")) or 500
    return error_event(
        str(err.get("message") or "upstream stream error"),
        error_type_for_status(status),
        err.get("status") if isinstance(err.get("status"), str) else None,
    )


GEMINI = GeminiTranslator()
SETTINGS: SettingPaths = {
    "max_tokens": (("generationConfig", "maxOutputTokens"),),
    "temperature": (("generationConfig", "temperature"),),
    "top_p": (("generationConfig", "topP"),),
    "top_k": (("generationConfig", "topK"),),
    "seed": (("generationConfig", "seed"),),
}
SPEC = ProviderSpec(
    type="gemini",
    translator=GEMINI,
    wire="gemini",
    host="generativelanguage.googleapis.com",
    base_path="/v1beta",
    auth=HeaderAuth("x-goog-api-key"),
    framing=Framing.SSE,
    embeddings=True,
    settings_paths=SETTINGS,
    # List prices, late 2025 (USD per million tokens; prompts up to 200k tokens).
    prices=(
        Price("gemini", "gemini-2.5-pro*", 1.25, 10.0, 0.31),
        Price("gemini", "gemini-2.5-flash*", 0.3, 2.5, 0.075),
        Price("gemini", "gemini-2.5-flash-lite*", 0.1, 0.4, 0.025),
        Price("gemini", "gemini-2.0-flash*", 0.1, 0.4, 0.025),
    ),
    genai_name="gcp.gemini",
)
