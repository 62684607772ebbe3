"""Tool use in the fake provider: offered tools, it calls the first one once; given
the tool's result, it answers in text quoting it. Pure functions over request
dicts, shared by the OpenAI-compatible and the Anthropic fakes."""

from __future__ import annotations

import json
from typing import Any

TOOL_CALL_ID = "call_fake_1"
TOOLU_ID = "toolu_fake_1"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            _text(b.get("text") or b.get("content")) for b in content if isinstance(b, dict)
        )
    return ""


def tool_arguments(last_user: str) -> dict[str, Any]:
    return {"city": last_user.rsplit(" ", 1)[-1].strip("?.!") or "nowhere"}


# -- OpenAI chat ------------------------------------------------------------------


def openai_tool_name(req: dict[str, Any]) -> str | None:
    """The tool to call now, or None (no tools, or the last message is a tool result)."""
    tools = req.get("tools") or []
    msgs = req.get("messages") or []
    if not tools or (msgs and msgs[-1].get("role") == "tool"):
        return None
    return str((tools[0].get("function") or {}).get("name") or "tool")


def openai_tool_result(req: dict[str, Any]) -> str | None:
    msgs = req.get("messages") or []
    if msgs and msgs[-1].get("role") == "tool":
        return _text(msgs[-1].get("content"))
    return None


def openai_last_user(req: dict[str, Any]) -> str:
    users = [m for m in req.get("messages") or [] if m.get("role") == "user"]
    return _text(users[-1].get("content")) if users else ""


def openai_tool_message(req: dict[str, Any], name: str) -> dict[str, Any]:
    args = json.dumps(tool_arguments(openai_last_user(req)))
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": TOOL_CALL_ID, "type": "function", "function": {"name": name, "arguments": args}}
        ],
    }


def openai_tool_deltas(req: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The same call as stream deltas: name first, then the arguments in two pieces."""
    args = json.dumps(tool_arguments(openai_last_user(req)))
    half = len(args) // 2
    head = {"index": 0, "id": TOOL_CALL_ID, "type": "function"}
    return [
        {
            "role": "assistant",
            "tool_calls": [{**head, "function": {"name": name, "arguments": ""}}],
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": args[:half]}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": args[half:]}}]},
    ]


def responses_as_chat(req: dict[str, Any]) -> dict[str, Any]:
    """A Responses API request read as the chat request it stands for (enough
    for the fake's rules: roles, the last user text, tools, a tool result last)."""
    msgs: list[dict[str, Any]] = []
    if isinstance(req.get("instructions"), str):
        msgs.append({"role": "system", "content": req["instructions"]})
    inp = req.get("input")
    items = [{"role": "user", "content": inp}] if isinstance(inp, str) else inp or []
    for it in items:
        if it.get("type") == "function_call_output":
            msgs.append({"role": "tool", "content": _text(it.get("output"))})
        elif it.get("type") == "function_call":
            msgs.append({"role": "assistant", "content": None})
        elif "role" in it:
            role = "system" if it["role"] == "developer" else it["role"]
            msgs.append({"role": role, "content": _text(it.get("content"))})
    tools = [
        {"function": {"name": t.get("name")}}
        for t in req.get("tools") or []
        if t.get("type") == "function"
    ]
    return {"model": req.get("model"), "messages": msgs, "tools": tools}


# -- Anthropic Messages -----------------------------------------------------------


def claude_tool_result(req: dict[str, Any]) -> str | None:
    msgs = req.get("messages") or []
    last = msgs[-1].get("content") if msgs else None
    if isinstance(last, list):
        for block in last:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                return _text(block.get("content"))
    return None


def claude_tool_name(req: dict[str, Any]) -> str | None:
    tools = req.get("tools") or []
    if not tools or claude_tool_result(req) is not None:
        return None
    return str(tools[0].get("name") or "tool")
