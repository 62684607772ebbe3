"""AWS Bedrock Runtime <-> OpenAI: the Converse API for chat, Titan / Cohere for
embeddings, InvokeModel for Anthropic Messages clients (`bedrock_anthropic`).

* Chat: ``POST /model/{modelId}/converse`` and ``/converse-stream``; the model
  ID (a foundation model, an inference profile such as ``us.anthropic.…``, or
  an ARN) is percent-encoded into one path segment. Streams come back in AWS's
  binary event-stream framing (`streaming/eventstream.py`), one Converse event
  per frame, and become OpenAI ``chat.completion.chunk`` events.
* Embeddings: ``POST /model/{modelId}/invoke`` with Titan's ``inputText`` (one
  text per request) or Cohere's ``texts``.
* Auth is SigV4 over the final request, added by the leg (`cloud/aws.py`),
  not here: this module stays sans-IO.

References: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
and API_runtime_ConverseStream.html.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import quote

import orjson

from extproc.cloud.setup import bedrock_setup
from extproc.streaming.errors import StreamLimitError
from extproc.streaming.eventstream import EventStreamDecoder, EventStreamError
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
    image_url_of,
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
from extproc.translators.hosted_anthropic import (
    BEDROCK_VERSION,
    InvokeStream,
    exception_status,
    hosted_payload,
)
from extproc.usage import Usage

EVENTSTREAM = "application/vnd.amazon.eventstream"
SIGNING_SERVICE = "bedrock"  # SigV4 credential scope: <date>/<region>/bedrock/aws4_request
# The gateway reads every answer (translation, usage) and decodes no compression:
# the client's accept-encoding never goes upstream.
_NO_ENCODING = ("accept-encoding",)
# Converse's stopReason -> OpenAI's finish_reason.
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def model_path(target: ProviderTarget, body: dict[str, Any], op: str) -> str:
    """``/model/{id}/{op}``: the ID (ARNs have ``:`` and ``/``) as one encoded segment."""
    model = target.model or str(body.get("model") or "")
    if not model:
        raise TranslationError("bedrock needs a model ID (model, default_model or model_mapping)")
    return f"{target.base_path.rstrip('/')}/model/{quote(model, safe='')}/{op}"


# -- request -------------------------------------------------------------------


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    data = parse_data_url(image_url_of(part))
    if data is None:
        raise TranslationError("bedrock accepts only base64 data: URLs for images")
    fmt = _IMAGE_FORMATS.get(data[0].lower())
    if fmt is None:
        raise TranslationError(f"bedrock does not accept images of type {data[0]!r}")
    return {"image": {"format": fmt, "source": {"bytes": data[1]}}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError("message content must be a string or a list of parts")
    out: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                out.append({"text": str(part["text"])})
        elif kind == "image_url":
            out.append(_image_block(part))
        else:
            raise TranslationError(f"content part type {kind!r} is not supported for bedrock")
    return out


def _tool_result(msg: dict[str, Any]) -> dict[str, Any]:
    text = text_of(msg.get("content"))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    content = [{"json": value}] if isinstance(value, dict) else [{"text": text}]
    return {"toolResult": {"toolUseId": str(msg.get("tool_call_id") or ""), "content": content}}


def _messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (system blocks, Converse messages, same roles merged:
    Converse wants user and assistant turns to alternate)."""
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty list")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise TranslationError("each message must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            text = text_of(msg.get("content"))
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            c_role, blocks = "user", _user_blocks(msg.get("content"))
        elif role == "assistant":
            c_role = "assistant"
            text = text_of(msg.get("content"))
            blocks = [{"text": text}] if text else []
            for call, fn in request_calls(msg):
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": str(call.get("id") or new_id("tooluse_")),
                            "name": str(fn.get("name") or ""),
                            "input": tool_arguments(fn.get("arguments")),
                        }
                    }
                )
        elif role == "tool":
            c_role, blocks = "user", [_tool_result(msg)]
        else:
            raise TranslationError(f"message role {role!r} is not supported for bedrock")
        if not blocks:
            continue
        if out and out[-1]["role"] == c_role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": c_role, "content": blocks})
    if not out:
        raise TranslationError("bedrock needs at least one user or assistant message with content")
    return system, out


def _tool_config(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = []
    for t in body.get("tools") or ():
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise TranslationError("each tool must be a function with a name")
        spec: dict[str, Any] = {
            "name": fn["name"],
            "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        tools.append({"toolSpec": spec})
    if not tools:
        return None
    config: dict[str, Any] = {"tools": tools}
    choice = body.get("tool_choice")
    # Converse has no "none" (see build_body) and no toolChoice means auto.
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config["toolChoice"] = {"tool": {"name": str(choice["function"].get("name") or "")}}
    return config


def _has_tool_blocks(messages: list[dict[str, Any]]) -> bool:
    return any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])


def build_body(body: dict[str, Any], target: ProviderTarget) -> dict[str, Any]:
    """OpenAI chat request -> Converse request body (the model goes in the path)."""
    system, messages = _messages(body.get("messages"))
    out: dict[str, Any] = {"messages": messages}
    if system:
        out["system"] = system
    inference: dict[str, Any] = {}
    max_tokens = max_tokens_of(body)
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    for src, dst in (("temperature", "temperature"), ("top_p", "topP")):
        if isinstance(body.get(src), int | float) and not isinstance(body.get(src), bool):
            inference[dst] = body[src]
    stops = stop_list(body.get("stop"))
    if stops:
        inference["stopSequences"] = stops
    if inference:
        out["inferenceConfig"] = inference
    tools = _tool_config(body)
    if tools and (body.get("tool_choice") != "none" or _has_tool_blocks(messages)):
        # "none": no tools declared, so none can be called; Converse only
        # insists on toolConfig when the conversation holds tool blocks.
        out["toolConfig"] = tools
    extra: dict[str, Any] = {}
    if isinstance(body.get("top_k"), int):
        extra["top_k"] = body["top_k"]  # model-specific: Claude, Mistral... read it here
    if extra:
        out["additionalModelRequestFields"] = extra
    return out


# -- response ------------------------------------------------------------------


def usage_of(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    inp, outp = as_int(u.get("inputTokens")), as_int(u.get("outputTokens"))
    total = u.get("totalTokens")
    cached = as_int(u.get("cacheReadInputTokens"))
    return Usage(
        input_tokens=inp,
        output_tokens=outp,
        total_tokens=as_int(total) if isinstance(total, int) else inp + outp,
        cached_tokens=cached,
    )


def _message_fields(content: Any) -> dict[str, Any]:
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in as_objs(content):
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            tu = block["toolUse"]
            calls.append(
                {
                    "id": str(tu.get("toolUseId") or new_id("call_")),
                    "type": "function",
                    "function": {
                        "name": str(tu.get("name") or ""),
                        "arguments": orjson.dumps(tu.get("input") or {}).decode(),
                    },
                }
            )
        elif isinstance(block.get("reasoningContent"), dict):
            rt = as_obj(block["reasoningContent"].get("reasoningText"))
            if isinstance(rt.get("text"), str):
                reasoning.append(rt["text"])
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        msg["tool_calls"] = calls
        if not texts:
            msg["content"] = None
    if reasoning:
        msg["reasoning_content"] = "".join(reasoning)
    return msg


def converse_response(body: bytes, target: ProviderTarget) -> TranslatedResponse:
    obj = require_object(body, "bedrock converse response")
    message = _message_fields(as_obj(as_obj(obj.get("output")).get("message")).get("content"))
    reason = obj.get("stopReason")
    finish = FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    usage = usage_of(obj.get("usage"))
    return TranslatedResponse(
        completion_body(
            id_=new_id(),
            model=target.model,
            choices=[{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            usage=usage,
        ),
        usage,
        target.model or None,
    )


def stream_error(status: int, exception: str, message: str) -> bytes:
    from extproc.api_errors import error_type_for_status

    return error_event(message, error_type_for_status(status), exception)


class ConverseStream(StreamFacts):
    """ConverseStream event-stream frames -> OpenAI chunks ending with ``[DONE]``.

    A stream without ``messageStop`` was cut off; an ``exception`` frame
    (throttling, model errors) ends it with an in-stream error; bytes that are
    not a valid event stream (bad CRC...) too, logged by the exchange as an
    upstream error.
    """

    content_type = SSE

    def __init__(self, model: str, include_usage: bool, max_frame_bytes: int | None = None) -> None:
        self._decoder = EventStreamDecoder(max_frame_bytes or (1 << 20))
        self._out = ChunkWriter(model)
        self._include_usage = include_usage
        self._model = model or None
        self._usage: Usage | None = None
        self._tools: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool call index
        self._started = False
        self._stopped = False
        self._ended = False
        self._finish: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self._ended:
            return b""
        out: list[bytes] = []
        try:
            messages = self._decoder.feed(chunk)
        except StreamLimitError:
            raise
        except EventStreamError as e:
            self._ended = True
            return stream_error(502, "bad_event_stream", f"upstream event stream is invalid: {e}")
        for m in messages:
            if self._ended:
                break
            if m.message_type != "event":
                name = m.header(":exception-type") or m.header(":error-code") or "error"
                obj = _loads(m.payload)
                text = str(
                    obj.get("message") or obj.get("Message") or m.header(":error-message") or name
                )
                out.append(stream_error(exception_status(name), name, text))
                self._ended = True
                break
            self._event(m.event_type, _loads(m.payload), out)
        return b"".join(out)

    def finish(self) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        try:
            self._decoder.finish()
        except EventStreamError:
            return stream_error(
                502, "bad_event_stream", "upstream event stream was cut inside a frame"
            )
        if not self._stopped:
            return stream_error(502, "stream_cut", "upstream stream ended without messageStop")
        tail = []
        if self._include_usage and self._usage is not None:
            tail.append(self._out.usage_chunk(self._usage))
        tail.append(DONE)
        return b"".join(tail)

    def _start(self, out: list[bytes]) -> None:
        if not self._started:
            self._started = True
            out.append(self._out.chunk({"role": "assistant", "content": ""}))

    def _event(self, kind: str, obj: dict[str, Any], out: list[bytes]) -> None:
        w = self._out
        if kind == "messageStart":
            self._start(out)
        elif kind == "contentBlockStart":
            self._start(out)
            tu = as_obj(as_obj(obj.get("start")).get("toolUse"))
            if tu:
                idx = len(self._tools)
                self._tools[as_int(obj.get("contentBlockIndex"))] = idx
                call = {
                    "index": idx,
                    "id": str(tu.get("toolUseId") or new_id("call_")),
                    "type": "function",
                    "function": {"name": str(tu.get("name") or ""), "arguments": ""},
                }
                out.append(w.chunk({"tool_calls": [call]}))
        elif kind == "contentBlockDelta":
            self._start(out)
            delta = as_obj(obj.get("delta"))
            if isinstance(delta.get("text"), str):
                out.append(w.chunk({"content": delta["text"]}))
            elif isinstance(delta.get("toolUse"), dict):
                tool_idx = self._tools.get(as_int(obj.get("contentBlockIndex")))
                args = delta["toolUse"].get("input")
                if tool_idx is not None and isinstance(args, str):
                    out.append(
                        w.chunk(
                            {"tool_calls": [{"index": tool_idx, "function": {"arguments": args}}]}
                        )
                    )
            elif isinstance(delta.get("reasoningContent"), dict):
                text = delta["reasoningContent"].get("text")
                if isinstance(text, str):
                    out.append(w.chunk({"reasoning_content": text}))
        elif kind == "messageStop":
            self._start(out)
            reason = obj.get("stopReason")
            finish = FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
            self._stopped = True
            out.append(w.chunk({}, finish))
        elif kind == "metadata":
            usage = usage_of(obj.get("usage"))
            if usage is not None:
                self._usage = usage
        # contentBlockStop and unknown (future) events carry nothing for the client.


def _loads(payload: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# -- embeddings ----------------------------------------------------------------


def _is_cohere(model: str) -> bool:
    return "cohere.embed" in model


class BedrockTranslator:
    name = "bedrock"
    spec: ProviderSpec

    def chat_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        op = "converse-stream" if target.stream else "converse"
        return json_request(
            model_path(target, body, op), build_body(body, target), (), _NO_ENCODING
        )

    def chat_response(self, status: int, body: bytes, target: ProviderTarget) -> TranslatedResponse:
        return converse_response(body, target)

    def chat_stream(
        self, target: ProviderTarget, include_usage: bool, max_line_bytes: int | None = None
    ) -> ConverseStream:
        return ConverseStream(target.model, include_usage, max_line_bytes)

    def embeddings_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        texts = embedding_inputs(body)
        model = target.model or str(body.get("model") or "")
        payload: dict[str, Any]
        if _is_cohere(model):
            payload = {"texts": texts, "input_type": "search_document"}
        else:
            if len(texts) != 1:
                raise TranslationError(
                    "Titan embedding models take one input per request; send one string "
                    "(or use a Cohere embedding model for lists)"
                )
            payload = {"inputText": texts[0]}
            if isinstance(body.get("dimensions"), int):
                payload["dimensions"] = body["dimensions"]
        return json_request(model_path(target, body, "invoke"), payload, (), _NO_ENCODING)

    def embeddings_response(
        self, status: int, body: bytes, target: ProviderTarget
    ) -> TranslatedResponse:
        obj = require_object(body, "bedrock embeddings response")
        if isinstance(obj.get("embedding"), list):  # Titan
            vectors = [obj["embedding"]]
            tokens = as_int(obj.get("inputTextTokenCount"))
        else:  # Cohere
            emb = obj.get("embeddings")
            if isinstance(emb, dict):
                emb = emb.get("float")
            vectors = [v for v in emb if isinstance(v, list)] if isinstance(emb, list) else []
            tokens = 0
        usage = Usage(input_tokens=tokens, output_tokens=0, total_tokens=tokens)
        return TranslatedResponse(
            embeddings_body(vectors, target.model, usage), usage, target.model or None
        )

    def error_response(self, status: int, body: bytes) -> bytes:
        return map_error(status, body)

    # Anthropic Messages clients: Claude models through InvokeModel, the rest
    # through the (Anthropic, OpenAI) + Converse composition.

    def anthropic_native(self, target: ProviderTarget) -> bool:
        model = target.model.lower()
        return "anthropic" in model or "claude" in model

    def anthropic_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        op = "invoke-with-response-stream" if target.stream else "invoke"
        version = str(target.settings.get("anthropic_version") or BEDROCK_VERSION)
        payload = hosted_payload(body, version, keep_stream=False, stream=target.stream)
        return json_request(
            model_path(target, body, op), payload, (), ("anthropic-version", *_NO_ENCODING)
        )

    def anthropic_stream(self, target: ProviderTarget, max_line_bytes: int | None) -> InvokeStream:
        return InvokeStream(max_line_bytes)


BEDROCK = BedrockTranslator()
SETTINGS: SettingPaths = {
    "max_tokens": (("inferenceConfig", "maxTokens"),),
    "temperature": (("inferenceConfig", "temperature"),),
    "top_p": (("inferenceConfig", "topP"),),
    "top_k": (("additionalModelRequestFields", "top_k"),),
}
# The host depends on the region (options.region); config/providers fills it.
SPEC = ProviderSpec(
    type="bedrock",
    translator=BEDROCK,
    wire="bedrock",
    host=None,  # from options.region (or options.endpoint): cloud/setup.py
    base_path="",
    # No key: every request is signed with SigV4 by the leg (the provider's
    # own credentials, `upstream_auth`), which sets authorization.
    auth=HeaderAuth("authorization", optional=True),
    framing=Framing.EVENT_STREAM,
    embeddings=True,
    settings_paths=SETTINGS,
    genai_name="aws.bedrock",
    upstream_auth=partial(bedrock_setup, service=SIGNING_SERVICE),
)
