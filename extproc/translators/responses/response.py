"""OpenAI chat completion -> Responses API ``response`` object (non-streaming).

Shared with :mod:`.stream`: ids, the response skeleton, usage shape,
status from the finish reason, function-call items.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from extproc.translators.base import TranslationError
from extproc.translators.common import as_obj, as_objs, new_id, now, usage_from_openai
from extproc.usage import Usage

# Finish reasons that leave a response incomplete, and the reason OpenAI gives.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(chat_id: Any) -> str:
    if isinstance(chat_id, str) and chat_id:
        return chat_id if chat_id.startswith("resp_") else "resp_" + chat_id
    return new_id("resp_")


def usage_dict(u: Usage | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    }


def status_of(finish: Any) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) for a chat finish reason."""
    reason = _INCOMPLETE.get(str(finish))
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def skeleton(
    id_: str,
    created_at: int,
    model: str,
    status: str,
    echo: Mapping[str, Any],
) -> dict[str, Any]:
    """A response object with the request's settings echoed (as OpenAI does)."""
    return {
        "id": id_,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": echo.get("reasoning") or {"effort": None, "summary": None},
        "store": False,  # the gateway keeps nothing
        "temperature": echo.get("temperature"),
        "text": echo.get("text") or {"format": {"type": "text"}},
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools") or [],
        "top_p": echo.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": echo.get("user"),
        "metadata": echo.get("metadata") or {},
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(id_: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"id": id_, "type": "message", "status": status, "role": "assistant", "content": parts}


def reasoning_item(id_: str, text: str) -> dict[str, Any]:
    return {
        "id": id_,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def call_item(
    id_: str,
    call_id: str,
    name: str,
    arguments: str,
    status: str,
    names: Mapping[str, tuple[str, str]],
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": id_,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }
    pair = names.get(name)
    if pair is not None:  # a namespaced tool: its own namespace and name again
        item["namespace"], item["name"] = pair
    return item


def _output(message: dict[str, Any], names: Mapping[str, tuple[str, str]]) -> list[Any]:
    out: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        out.append(reasoning_item(new_id("rs_"), reasoning))
    content = message.get("content")
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    parts = [text_part(content)] if isinstance(content, str) and content else []
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    if parts:
        out.append(message_item(new_id("msg_"), parts, "completed"))
    for call in as_objs(message.get("tool_calls")):
        fn = as_obj(call.get("function"))
        args = fn.get("arguments")
        out.append(
            call_item(
                new_id("fc_"),
                str(call.get("id") or new_id("call_")),
                str(fn.get("name") or ""),
                args if isinstance(args, str) else orjson.dumps(args or {}).decode(),
                "completed",
                names,
            )
        )
    return out


def to_response(
    obj: dict[str, Any],
    model: str,
    names: Mapping[str, tuple[str, str]],
    echo: Mapping[str, Any],
) -> dict[str, Any]:
    """A chat completion -> a response object (the first choice)."""
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise TranslationError("provider answer is not a chat completion (no choices)")
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    served = obj.get("model")
    created = obj.get("created")
    status, details = status_of(choice.get("finish_reason"))
    out = skeleton(
        response_id(obj.get("id")),
        created if isinstance(created, int) and not isinstance(created, bool) else now(),
        served if isinstance(served, str) and served else model,
        status,
        echo,
    )
    out["incomplete_details"] = details
    out["output"] = _output(as_obj(choice.get("message")), names)
    out["usage"] = usage_dict(usage_from_openai(obj.get("usage")))
    return out


def response_body(
    chat_body: bytes,
    model: str,
    names: Mapping[str, tuple[str, str]],
    echo: Mapping[str, Any],
) -> bytes:
    try:
        obj = orjson.loads(chat_body)
    except orjson.JSONDecodeError as exc:
        raise TranslationError("provider answer is not JSON") from exc
    if not isinstance(obj, dict):
        raise TranslationError("provider answer is not a JSON object")
    return orjson.dumps(to_response(obj, model, names, echo))
