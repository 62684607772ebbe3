"""Responses API request -> OpenAI chat-completions request (dicts).

The chat dict is the common currency every OpenAI->X translator takes.
Accepted and not forwarded: ``store`` (the gateway is stateless), ``include``,
``prompt_cache_key``, ``client_metadata``, ``service_tier``, ``truncation``,
``reasoning`` input items (only the model that wrote them can read them).
Hosted tools (``web_search``, ``file_search``, ``code_interpreter``, ...) cannot
run on a chat provider: they are dropped and named in ``dropped`` (the leg says
so in a response header and the log). What cannot be expressed is a
:class:`TranslationError` (-> 400): stored state (``previous_response_id``,
``conversation``, ``prompt``, item references), files by id, unknown items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.translators.base import TranslationError

# Fields that name state kept by the provider: a chat provider has none.
_STATEFUL = ("previous_response_id", "conversation", "prompt")
# Request fields echoed in the response object, as OpenAI does.
_ECHO = (
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "tool_choice",
    "tools",
    "text",
    "reasoning",
    "user",
)
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_ECHO_LEN = 40  # longest client-sent type name repeated in an error


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The chat body and what the answer's translation needs from the request."""

    body: dict[str, Any]
    # Flattened chat function name -> (namespace, name) for namespaced tools.
    names: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()  # hosted tool types that were left out
    echo: Mapping[str, Any] = field(default_factory=dict)


def _short(value: Any) -> str:
    return repr(value)[:_ECHO_LEN] if not isinstance(value, str) else repr(value[:_ECHO_LEN])


def flat_name(namespace: str, name: str) -> str:
    """A namespaced tool's chat function name (chat has no namespaces)."""
    return name if name.startswith(namespace) else f"{namespace}__{name}"


def _part(part: Any, where: str) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _TEXT_PARTS:
        text = part.get("text")
        if not isinstance(text, str):
            raise TranslationError(f"{where}: a {kind} part needs a text string")
        return {"type": "text", "text": text}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise TranslationError(
                f"{where}: input_image needs an image_url (files by id are stored state "
                "this provider does not have)"
            )
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str) and part["detail"] != "auto":
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise TranslationError(f"{where}: content part type {_short(kind)} is not supported here")


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A string, or parts; text-only parts become one string joined by "\\n",
    the checks' rule (extproc/core/texts.py): the model reads what they read."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError(f"{where}: content must be a string or a list of parts")
    parts = [_part(p, f"{where}[{i}]") for i, p in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts if p["text"])
    return parts


class _Messages:
    """Builds the chat messages from input items, merging a turn's calls."""

    def __init__(self, names: Mapping[str, tuple[str, str]]) -> None:
        self.out: list[dict[str, Any]] = []
        self._by_pair = {v: k for k, v in names.items()}

    def message(self, item: Mapping[str, Any], where: str) -> None:
        role = _ROLES.get(str(item.get("role")))
        if role is None:
            raise TranslationError(f"{where}: role {_short(item.get('role'))} is not supported")
        content = _content(item.get("content"), f"{where}.content")
        if role == "assistant" and isinstance(content, list):
            raise TranslationError(f"{where}: an assistant message holds text only")
        self.out.append({"role": role, "content": content})

    def call(self, item: Mapping[str, Any], where: str) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
            raise TranslationError(f"{where}: a function_call needs a call_id and a name")
        ns = item.get("namespace")
        if isinstance(ns, str) and ns:
            name = self._by_pair.get((ns, name), flat_name(ns, name))
        args = item.get("arguments")
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else "{}"},
        }
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "assistant":
            # One assistant turn: its text and every call it made.
            last.setdefault("tool_calls", []).append(call)
        else:
            self.out.append({"role": "assistant", "content": None, "tool_calls": [call]})

    def output(self, item: Mapping[str, Any], where: str) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise TranslationError(f"{where}: a function_call_output needs a call_id")
        out = item.get("output")
        images: list[dict[str, Any]] = []
        if out is None or isinstance(out, str):
            text = out or ""
        else:
            content = _content(out, f"{where}.output")
            if isinstance(content, str):
                text = content
            else:  # chat tool messages hold text: images follow in a user message
                text = "\n".join(p["text"] for p in content if p["type"] == "text")
                images = [p for p in content if p["type"] != "text"]
        self.out.append({"role": "tool", "tool_call_id": call_id, "content": text})
        if images:
            self.out.append({"role": "user", "content": images})


def _messages(body: Mapping[str, Any], names: Mapping[str, tuple[str, str]]) -> list[Any]:
    msgs = _Messages(names)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        msgs.out.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise TranslationError("instructions must be a string")
    inp = body.get("input")
    if isinstance(inp, str):
        msgs.out.append({"role": "user", "content": inp})
        return msgs.out
    if not isinstance(inp, list):
        raise TranslationError("input must be a string or a list of items")
    for i, item in enumerate(inp):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise TranslationError(f"{where}: each item must be an object")
        kind = item.get("type")
        if kind == "message" or (kind is None and "role" in item):
            msgs.message(item, where)
        elif kind == "function_call":
            msgs.call(item, where)
        elif kind == "function_call_output":
            msgs.output(item, where)
        elif kind == "reasoning":
            continue  # the model's own notes, readable only by the model that wrote them
        elif kind == "item_reference":
            raise TranslationError(
                f"{where}: item_reference points at stored state; the gateway keeps none "
                "for this provider: send the items themselves"
            )
        else:
            raise TranslationError(f"{where}: item type {_short(kind)} is not supported here")
    if not msgs.out:
        raise TranslationError("input is empty")
    return msgs.out


def _function(tool: Mapping[str, Any], name: str) -> dict[str, Any]:
    params = tool.get("parameters")
    fn: dict[str, Any] = {
        "name": name,
        "parameters": params if isinstance(params, dict) else {"type": "object", "properties": {}},
    }
    if isinstance(tool.get("description"), str):
        fn["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _tools(
    tools: Any,
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]], list[str]]:
    """(chat tools, flattened names, dropped hosted tool types)."""
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    out: list[dict[str, Any]] = []
    names: dict[str, tuple[str, str]] = {}
    dropped: list[str] = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or not isinstance(kind, str):
            raise TranslationError(f"tools[{i}] must be an object with a type")
        if kind == "function":
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise TranslationError(f"tools[{i}]: a function tool needs a name")
            out.append(_function(tool, tool["name"]))
        elif kind == "namespace":
            ns, inner = tool.get("name"), tool.get("tools")
            if not isinstance(ns, str) or not ns or not isinstance(inner, list):
                raise TranslationError(f"tools[{i}]: a namespace tool needs a name and tools")
            for j, t in enumerate(inner):
                if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                    raise TranslationError(f"tools[{i}].tools[{j}] needs a name")
                if t.get("type", "function") != "function":
                    dropped.append(str(t.get("type"))[:_ECHO_LEN])
                    continue
                flat = flat_name(ns, t["name"])
                names[flat] = (ns, t["name"])
                out.append(_function(t, flat))
        else:
            dropped.append(kind[:_ECHO_LEN])  # hosted: runs at OpenAI, not on this provider
    return out, names, dropped


def _tool_choice(choice: Any, names: Mapping[str, tuple[str, str]]) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function" and isinstance(choice.get("name"), str):
            name, ns = choice["name"], choice.get("namespace")
            if isinstance(ns, str) and ns:  # a namespaced tool: its flattened name
                name = next((k for k, v in names.items() if v == (ns, name)), flat_name(ns, name))
            return {"type": "function", "function": {"name": name}}
        if kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
            return choice["mode"]
        return "auto"  # a hosted tool's choice: that tool was dropped
    raise TranslationError("tool_choice must be auto, none, required or an object")


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        schema.setdefault("name", "response")
        return {"type": "json_schema", "json_schema": schema}
    return None  # "text"


def to_chat(body: Mapping[str, Any]) -> ChatRequest:
    """The chat request that asks the same as the Responses ``body``."""
    for key in _STATEFUL:
        if body.get(key):
            raise TranslationError(
                f"{key}: the gateway keeps no state for this provider; send the whole "
                "conversation in input (and store: false)"
            )
    if body.get("background") is True:
        raise TranslationError("background responses need stored state; this provider has none")
    tools, names, dropped = _tools(body["tools"]) if body.get("tools") else ([], {}, [])
    out: dict[str, Any] = {"model": body.get("model", ""), "messages": _messages(body, names)}
    if isinstance(body.get("stream"), bool):
        out["stream"] = body["stream"]
    if isinstance(body.get("max_output_tokens"), int):
        out["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), int | float) and not isinstance(body.get(key), bool):
            out[key] = body[key]
    if isinstance(body.get("user"), str):
        out["user"] = body["user"]
    meta = body.get("metadata")
    if isinstance(meta, dict) and meta:
        out["metadata"] = meta
    if tools:
        out["tools"] = tools
        if body.get("tool_choice") is not None:
            out["tool_choice"] = _tool_choice(body["tool_choice"], names)
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    fmt = _response_format(body.get("text"))
    if fmt is not None:
        out["response_format"] = fmt
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if isinstance(effort, str) and effort:
        out["reasoning_effort"] = effort
    echo = {k: body[k] for k in _ECHO if k in body}
    return ChatRequest(out, names, tuple(dropped), echo)
