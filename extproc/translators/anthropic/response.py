"""OpenAI chat-completion response -> Anthropic ``message`` (non-streaming).

Shared with :mod:`.stream`: stop-reason mapping, usage shape, tool input
parsing, message ids.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.translators.base import TranslationError
from extproc.translators.common import as_obj, as_objs, new_id, usage_from_openai
from extproc.usage import Usage

STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: Any) -> str:
    return STOP_REASON.get(str(finish), "end_turn")


def usage_dict(usage: Usage | None) -> dict[str, int]:
    """Anthropic usage. Its ``input_tokens`` excludes cache reads, OpenAI's
    ``prompt_tokens`` includes them: take them out again."""
    u = usage or Usage()
    return {
        "input_tokens": max(0, u.input_tokens - u.cached_tokens),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cached_tokens,
    }


def message_id(openai_id: Any) -> str:
    if isinstance(openai_id, str) and openai_id:
        return openai_id if openai_id.startswith("msg_") else "msg_" + openai_id
    return new_id("msg_")


def tool_input(arguments: Any) -> dict[str, Any]:
    """OpenAI's arguments string -> Anthropic's ``input`` object.

    A model may produce arguments that are not a JSON object; Anthropic's
    ``input`` must be one, so those become ``{}`` (the client's schema
    check then tells the model, as it would for a wrong object).
    """
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str) and arguments:
        try:
            value = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    content = message.get("content")
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    if isinstance(content, str) and content:
        blocks.append({"type": "text", "text": content})
    for call in as_objs(message.get("tool_calls")):
        fn = as_obj(call.get("function"))
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu_"),
                "name": fn.get("name", ""),
                "input": tool_input(fn.get("arguments")),
            }
        )
    return blocks


def to_anthropic(obj: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat completion -> an Anthropic message (the first choice)."""
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise TranslationError("provider answer is not a chat completion (no choices)")
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    served = obj.get("model")
    return {
        "id": message_id(obj.get("id")),
        "type": "message",
        "role": "assistant",
        "model": served if isinstance(served, str) and served else model,
        "content": _blocks(message if isinstance(message, dict) else {}),
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": usage_dict(usage_from_openai(obj.get("usage"))),
    }


def response_body(openai_body: bytes, model: str) -> bytes:
    """OpenAI response bytes -> Anthropic message bytes."""
    try:
        obj = orjson.loads(openai_body)
    except orjson.JSONDecodeError as exc:
        raise TranslationError("provider answer is not JSON") from exc
    if not isinstance(obj, dict):
        raise TranslationError("provider answer is not a JSON object")
    return orjson.dumps(to_anthropic(obj, model))
