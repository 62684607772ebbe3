"""OpenAI chat request -> Gemini ``generateContent`` request body."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.translators.base import ProviderTarget, TranslationError
from extproc.translators.common import (
    as_obj,
    image_url_of,
    max_tokens_of,
    parse_data_url,
    request_calls,
    stop_list,
    text_of,
    tool_arguments,
)


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise TranslationError("message content must be a string or a list of parts")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url":
            data = parse_data_url(image_url_of(part))
            if data is None:
                # fileData needs a mimeType and a Files-API/GCS uri; remote
                # http(s) images cannot be expressed faithfully.
                raise TranslationError("gemini accepts only base64 data: URLs for images")
            parts.append({"inlineData": {"mimeType": data[0], "data": data[1]}})
        else:
            raise TranslationError(f"content part type {kind!r} is not supported for gemini")
    return parts


def _tool_response(content: Any) -> dict[str, Any]:
    text = text_of(content)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    # functionResponse.response must be an object (a Struct).
    return value if isinstance(value, dict) else {"content": text}


def _contents(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (systemInstruction parts, contents)."""
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty list")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call id -> function name, for functionResponse
    for msg in messages:
        if not isinstance(msg, dict):
            raise TranslationError("each message must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append({"text": text_of(msg.get("content"))})
            continue
        if role == "user":
            g_role, parts = "user", _user_parts(msg.get("content"))
        elif role == "assistant":
            g_role = "model"
            text = text_of(msg.get("content"))
            parts = [{"text": text}] if text else []
            for call, fn in request_calls(msg):
                call_names[str(call.get("id"))] = fn.get("name", "")
                fc = {"name": fn.get("name", ""), "args": tool_arguments(fn.get("arguments"))}
                parts.append({"functionCall": fc})
        elif role == "tool":
            g_role = "user"
            name = msg.get("name") or call_names.get(str(msg.get("tool_call_id")), "")
            response = _tool_response(msg.get("content"))
            parts = [{"functionResponse": {"name": name, "response": response}}]
        else:
            raise TranslationError(f"message role {role!r} is not supported for gemini")
        if not parts:
            continue
        if contents and contents[-1]["role"] == g_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": g_role, "parts": parts})
    return system, contents


_GENERATION_FIELDS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("top_k", "topK"),
    ("seed", "seed"),
    ("n", "candidateCount"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    gen: dict[str, Any] = {}
    max_tokens = max_tokens_of(body)
    if max_tokens is not None:
        gen["maxOutputTokens"] = max_tokens
    for src, dst in _GENERATION_FIELDS:
        if body.get(src) is not None:
            gen[dst] = body[src]
    stops = stop_list(body.get("stop"))
    if stops:
        gen["stopSequences"] = stops
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
        gen["responseMimeType"] = "application/json"
        schema = as_obj(rf.get("json_schema")).get("schema")
        if schema:
            gen["responseJsonSchema"] = schema  # plain JSON Schema, as OpenAI's
    return gen


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    decls = []
    for t in body.get("tools") or ():
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict):
            d = {"name": fn.get("name", ""), "description": fn.get("description", "")}
            if fn.get("parameters"):
                d["parameters"] = fn["parameters"]
            decls.append(d)
    out["tools"] = [{"functionDeclarations": decls}]
    choice = body.get("tool_choice")
    fcc: dict[str, Any] | None = None
    if choice in ("auto", "none", "required"):
        fcc = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        fcc = {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name", "")]}
    if fcc:
        out["toolConfig"] = {"functionCallingConfig": fcc}


def build_body(body: dict[str, Any], target: ProviderTarget) -> dict[str, Any]:
    system, contents = _contents(body.get("messages"))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    gen = _generation_config(body)
    if gen:
        out["generationConfig"] = gen
    if body.get("tools"):
        _tools(body, out)
    safety = target.settings.get("safety_settings")
    if safety:
        out["safetySettings"] = list(safety)
    return out
