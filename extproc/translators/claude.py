"""Anthropic Messages API (``/v1/messages``) <-> OpenAI chat completions.

Reference: https://docs.anthropic.com/en/api/messages and
https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.api_errors import error_type_for_status, openai_error_body
from extproc.prices import Price
from extproc.translators.base import (
    Framing,
    HeaderAuth,
    ProviderHeader,
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
    error_event,
    extract_error,
    image_url_of,
    join_path,
    json_request,
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

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}

# Anthropic in-stream errors carry only a type; map it to the status the same
# error would have had as an HTTP response so the client sees a consistent type.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def usage_from_anthropic(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    # Anthropic's input_tokens excludes cached tokens; OpenAI's prompt_tokens
    # includes them, so add cache reads and writes back in.
    cache_read = as_int(u.get("cache_read_input_tokens"))
    prompt = (
        as_int(u.get("input_tokens")) + cache_read + as_int(u.get("cache_creation_input_tokens"))
    )
    return Usage.of(prompt, as_int(u.get("output_tokens")), cached_tokens=cache_read)


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError("message content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = image_url_of(part)
            data = parse_data_url(url)
            source: dict[str, Any] = (
                {"type": "base64", "media_type": data[0], "data": data[1]}
                if data
                else {"type": "url", "url": url}
            )
            blocks.append({"type": "image", "source": source})
        else:
            raise TranslationError(f"content part type {kind!r} is not supported for claude")
    return blocks


def _assistant_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = text_of(msg.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call, fn in request_calls(msg):
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu_"),
                "name": fn.get("name", ""),
                "input": tool_arguments(fn.get("arguments")),
            }
        )
    return blocks


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        raise TranslationError("unsupported tool_choice")
    if parallel is False:
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def _messages(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """OpenAI messages -> (system texts, Anthropic messages)."""
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty list")
    system: list[str] = []
    out_msgs: list[dict[str, Any]] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise TranslationError("each message must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(text_of(msg.get("content")))
            continue
        if role == "user":
            blocks = _user_blocks(msg.get("content"))
        elif role == "assistant":
            blocks = _assistant_blocks(msg)
        elif role == "tool":
            role = "user"  # tool results travel in a user turn
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": msg.get("tool_call_id", ""),
                    "content": text_of(msg.get("content")),
                }
            ]
        else:
            raise TranslationError(f"message role {role!r} is not supported for claude")
        if not blocks:
            continue  # Anthropic rejects empty content
        # Merge consecutive same-role turns (e.g. several tool results).
        if out_msgs and out_msgs[-1]["role"] == role:
            out_msgs[-1]["content"].extend(blocks)
        else:
            out_msgs.append({"role": role, "content": blocks})
    return system, out_msgs


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    out["tools"] = [
        {
            "name": t["function"].get("name", ""),
            "description": t["function"].get("description", ""),
            "input_schema": t["function"].get("parameters") or {"type": "object"},
        }
        for t in body.get("tools") or ()
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    tc = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if tc is not None:
        out["tool_choice"] = tc


def build_body(body: dict[str, Any], target: ProviderTarget) -> dict[str, Any]:
    system, out_msgs = _messages(body.get("messages"))
    max_tokens = max_tokens_of(body)
    out: dict[str, Any] = {
        "model": target.model or body.get("model", ""),
        "messages": out_msgs,
        "max_tokens": max_tokens or int(target.settings.get("max_tokens") or DEFAULT_MAX_TOKENS),
    }
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stops = stop_list(body.get("stop"))
    if stops:
        out["stop_sequences"] = stops
    if target.stream:
        out["stream"] = True
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if body.get("tools"):
        _tools(body, out)
    return out


class ClaudeTranslator:
    name = "claude"
    spec: ProviderSpec

    def chat_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        return json_request(
            join_path(target.base_path, "/v1/messages"),
            build_body(body, target),
            self.spec.upstream_headers(target),
            ("authorization",),
        )

    def chat_response(self, status: int, body: bytes, target: ProviderTarget) -> TranslatedResponse:
        obj = require_object(body, "claude response")
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in as_objs(obj.get("content")):
            kind = block.get("type")
            if kind == "text":
                texts.append(block.get("text", ""))
            elif kind == "thinking":
                thinking.append(block.get("thinking", ""))
            elif kind == "tool_use":
                calls.append(
                    {
                        "id": block.get("id", ""),
                        "type": "function",
                        "function": {
                            "name": block.get("name", ""),
                            "arguments": orjson.dumps(block.get("input") or {}).decode(),
                        },
                    }
                )
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(texts) if texts or not calls else None,
        }
        if calls:
            message["tool_calls"] = calls
        if thinking:
            message["reasoning_content"] = "".join(thinking)
        usage = usage_from_anthropic(obj.get("usage"))
        model = obj.get("model") if isinstance(obj.get("model"), str) else None
        finish = FINISH.get(str(obj.get("stop_reason")), "stop")
        return TranslatedResponse(
            completion_body(
                id_=str(obj.get("id") or new_id()),
                model=model or target.model,
                choices=[
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                usage=usage,
            ),
            usage,
            model,
        )

    def chat_stream(
        self, target: ProviderTarget, include_usage: bool, max_line_bytes: int | None = None
    ) -> ClaudeStream:
        return ClaudeStream(target.model, include_usage, max_line_bytes)

    def embeddings_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        raise TranslationError("claude does not offer an embeddings API")

    def embeddings_response(
        self, status: int, body: bytes, target: ProviderTarget
    ) -> TranslatedResponse:
        raise TranslationError("claude does not offer an embeddings API")

    def error_response(self, status: int, body: bytes) -> bytes:
        message, code = extract_error(body)
        return openai_error_body(message, error_type_for_status(status), code)


class ClaudeStream(JsonEventStream):
    """Anthropic stream events -> OpenAI ``chat.completion.chunk`` events.

    A stream that ends without ``message_stop`` (and without an ``error``
    event) was truncated upstream; we end it with an error event instead of
    ``[DONE]`` so the client does not mistake a partial answer for a full one.
    """

    def __init__(self, model: str, include_usage: bool, max_line_bytes: int | None = None) -> None:
        super().__init__(model, include_usage, max_line_bytes)
        self._usage_fields: dict[str, int] = {}
        self._tool_index: dict[int, int] = {}  # content block index -> tool_calls index

    @property
    def usage(self) -> Usage | None:
        return usage_from_anthropic(self._usage_fields) if self._usage_fields else None

    def finish(self) -> bytes:
        self._decoder.finish()
        if self._ended:
            return b""
        self._ended = True
        return error_event("upstream stream ended before message_stop", "server_error")

    def _merge_usage(self, u: Any) -> None:
        if isinstance(u, dict):
            for k, v in u.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    self._usage_fields[k] = v

    def _handle(self, obj: dict[str, Any], out: list[bytes]) -> None:
        kind = obj.get("type")
        w = self._out
        if kind == "content_block_delta":
            delta = as_obj(obj.get("delta"))
            dk = delta.get("type")
            if dk == "text_delta":
                out.append(w.chunk({"content": delta.get("text", "")}))
            elif dk == "input_json_delta":
                ti = self._tool_index.get(as_int(obj.get("index")), 0)
                args = {"arguments": delta.get("partial_json", "")}
                out.append(w.chunk({"tool_calls": [{"index": ti, "function": args}]}))
            elif dk == "thinking_delta":
                out.append(w.chunk({"reasoning_content": delta.get("thinking", "")}))
        elif kind == "message_start":
            msg = as_obj(obj.get("message"))
            if isinstance(msg.get("id"), str):
                w.id = msg["id"]
            if isinstance(msg.get("model"), str):
                self._model = w.model = msg["model"]
            self._merge_usage(msg.get("usage"))
            out.append(w.chunk({"role": "assistant", "content": ""}))
        elif kind == "content_block_start":
            block = as_obj(obj.get("content_block"))
            if block.get("type") == "tool_use":
                ti = len(self._tool_index)
                self._tool_index[as_int(obj.get("index"))] = ti
                call = {
                    "index": ti,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                out.append(w.chunk({"tool_calls": [call]}))
            elif block.get("type") == "text" and block.get("text"):
                out.append(w.chunk({"content": block["text"]}))
        elif kind == "message_delta":
            self._merge_usage(obj.get("usage"))
            reason = as_obj(obj.get("delta")).get("stop_reason")
            if reason:
                out.append(w.chunk({}, FINISH.get(str(reason), "stop")))
        elif kind == "message_stop":
            usage = self.usage
            if self._include_usage and usage is not None:
                out.append(w.usage_chunk(usage))
            out.append(DONE)
            self._ended = True
        elif kind == "error":
            err = as_obj(obj.get("error"))
            etype = str(err.get("type") or "api_error")
            status = ERROR_STATUS.get(etype, 500)
            text = str(err.get("message") or "upstream stream error")
            out.append(error_event(text, error_type_for_status(status), etype))
            self._ended = True
        # ping, content_block_stop and unknown (future) events carry nothing for the client.


CLAUDE = ClaudeTranslator()
SETTINGS: SettingPaths = {
    "max_tokens": (("max_tokens",),),
    "temperature": (("temperature",),),
    "top_p": (("top_p",),),
    "top_k": (("top_k",),),
}
SPEC = ProviderSpec(
    type="claude",
    translator=CLAUDE,
    wire="claude",
    host="api.anthropic.com",
    base_path="",
    auth=HeaderAuth("x-api-key"),
    framing=Framing.SSE,
    sampling=frozenset({"temperature", "top_p", "top_k"}),
    headers=(ProviderHeader("anthropic-version", DEFAULT_VERSION, "anthropic_version"),),
    native_apis=frozenset({"anthropic"}),  # the Messages API is Claude's own
    embeddings=False,
    settings_paths=SETTINGS,
    # List prices, late 2025 (USD per million tokens; cached input: cache reads).
    prices=(
        Price("claude", "claude-opus-4-5*", 5.0, 25.0, 0.5),
        Price("claude", "claude-opus-4*", 15.0, 75.0, 1.5),
        Price("claude", "claude-sonnet-4*", 3.0, 15.0, 0.3),
        Price("claude", "claude-3-7-sonnet*", 3.0, 15.0, 0.3),
        Price("claude", "claude-3-5-sonnet*", 3.0, 15.0, 0.3),
        Price("claude", "claude-haiku-4-5*", 1.0, 5.0, 0.1),
        Price("claude", "claude-3-5-haiku*", 0.8, 4.0, 0.08),
    ),
    genai_name="anthropic",
)
