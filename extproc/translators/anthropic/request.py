"""Anthropic Messages request -> OpenAI chat-completions request (dicts).

The OpenAI dict is the common currency: every OpenAI->X translator takes it.
What has no OpenAI counterpart is dropped on purpose: ``cache_control``,
``thinking`` (and thinking blocks of earlier turns, which only Claude can
verify), ``service_tier``. What cannot be expressed is a
:class:`TranslationError` (-> 400): document blocks, server tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from extproc.translators.base import TranslationError

# Assistant blocks that only mean something to Claude itself.
_CLAUDE_ONLY_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def system_text(system: Any) -> str:
    """``system`` as one string: a string, or the text of a list of text blocks."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(_block_text(b, "system") for b in system)  # the checks' rule
    raise TranslationError("system must be a string or a list of text blocks")


def _block_text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise TranslationError(f"{where} blocks must be text blocks")
    text = block.get("text")
    if not isinstance(text, str):
        raise TranslationError(f"{where} text block without text")
    return text


def _image_part(block: Mapping[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise TranslationError("image block without a source")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise TranslationError("base64 image source needs media_type and data")
        url = f"data:{media};base64,{data}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise TranslationError(f"image source type {kind!r} is not supported by this provider")
    return {"type": "image_url", "image_url": {"url": url}}


def _content_parts(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    """Text and image blocks -> OpenAI content parts."""
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": _block_text(block, where)})
        elif kind == "image":
            parts.append(_image_part(block))
        else:
            raise TranslationError(f"{where} content block type {kind!r} is not supported")
    return parts


def _simplify(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only parts become one string: what every OpenAI-compatible server
    takes. Joined by "\n", the checks' rule (extproc/content/texts.py): the model
    reads what the checks read, and text split across blocks stays split."""
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _tool_result(block: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tool_result block -> (OpenAI tool message, image parts it carried).

    OpenAI tool messages hold text only; images a tool returned travel in a
    user message right after the tool messages.
    """
    content = block.get("content")
    if content is None or isinstance(content, str):
        text, images = content or "", []
    elif isinstance(content, list):
        parts = _content_parts(content, "tool_result")
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        images = [p for p in parts if p["type"] == "image_url"]
    else:
        raise TranslationError("tool_result content must be a string or a list of blocks")
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise TranslationError("tool_result block without tool_use_id")
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, images


def _user_messages(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise TranslationError("message content must be a string or a list of blocks")
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            msg, images = _tool_result(block)
            tools.append(msg)
            parts.extend(images)
        else:
            parts.extend(_content_parts([block], "user"))
    out = tools  # OpenAI wants tool messages right after the assistant's tool_calls
    if parts:
        out.append({"role": "user", "content": _simplify(parts)})
    return out


def _assistant_message(content: Any) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise TranslationError("message content must be a string or a list of blocks")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_block_text(block, "assistant"))
        elif kind == "tool_use":
            calls.append(_tool_call(block))
        elif kind not in _CLAUDE_ONLY_BLOCKS:
            raise TranslationError(f"assistant content block type {kind!r} is not supported")
    if not texts and not calls:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    name, id_ = block.get("name"), block.get("id")
    if not isinstance(name, str) or not isinstance(id_, str):
        raise TranslationError("tool_use block needs an id and a name")
    args = block.get("input")
    return {
        "id": id_,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(args or {}).decode()},
    }


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    out = []
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise TranslationError("each tool needs a name")
        if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
            # Anthropic-hosted tools (web_search, bash, ...) run at Anthropic.
            raise TranslationError(
                f"tool {tool['name']!r} is an Anthropic server tool; this provider cannot run it"
            )
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """Anthropic tool_choice -> (OpenAI tool_choice, parallel_tool_calls)."""
    if not isinstance(choice, dict):
        raise TranslationError("tool_choice must be an object")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise TranslationError(f"tool_choice type {kind!r} is not supported")


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty list")
    out: list[dict[str, Any]] = []
    system = system_text(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for msg in messages:
        if not isinstance(msg, dict):
            raise TranslationError("each message must be an object")
        role = msg.get("role")
        if role == "user":
            out.extend(_user_messages(msg.get("content")))
        elif role == "assistant":
            am = _assistant_message(msg.get("content"))
            if am is not None:
                out.append(am)
        else:
            raise TranslationError(f"message role {role!r} is not supported (user or assistant)")
    return out


def to_openai(body: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI chat body that asks the same as the Anthropic ``body``."""
    out: dict[str, Any] = {"model": body.get("model", ""), "messages": _messages(body)}
    if isinstance(body.get("max_tokens"), int):
        out["max_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stops = body.get("stop_sequences")
    if stops:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise TranslationError("stop_sequences must be a list of strings")
        out["stop"] = list(stops)
    if isinstance(body.get("stream"), bool):
        out["stream"] = body["stream"]
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
        out["user"] = meta["user_id"]
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        choice, parallel = _tool_choice(body["tool_choice"])
        if choice != "none" or out.get("tools"):
            out["tool_choice"] = choice
        if parallel is not None and out.get("tools"):
            out["parallel_tool_calls"] = parallel
    return out
