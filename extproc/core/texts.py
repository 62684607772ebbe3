"""Every text the model will read from a request: the one extraction the checks use.

`request_texts(endpoint, body)` returns (role, text) pairs: each message's
content (the text parts of a content array joined by "\\n", the one joining
rule), each tool call's arguments (role of the message that carries them),
Ollama's `prompt`/`system`/`suffix`, the embeddings `input`. Paths the gateway
does not know (OTHER) are read by shape: `messages`, `prompt`, `input`,
`system`, `instructions` wherever they appear (/v1/completions,
/v1/responses, Ollama's /api/embed).

Content the checks cannot read (a number where text goes, a content part of an
unknown type, token ids) raises `UnreadableContent` naming the field path; the
exchange answers 400 rather than forwarding it unchecked. Empty texts are left
out. Media parts (images, audio, files) carry no text for the checks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import orjson

from extproc.core.endpoints import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    CHAT,
    EMBEDDINGS,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    OTHER,
    RESPONSES,
)

__all__ = [
    "ROLES",
    "Text",
    "UnreadableContent",
    "config_roles",
    "content_text",
    "request_texts",
    "select",
]

# Roles a check may be limited to (config `roles`); message roles are compared lower-case.
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

Text = tuple[str, str]  # (role, text)

# Content parts with no text for the checks: media, and the model's own
# encrypted or redacted reasoning handed back to it.
_NO_TEXT = frozenset(
    {
        "image_url",
        "image",
        "input_image",
        "input_audio",
        "audio",
        "file",
        "input_file",
        "video_url",
        "video",
        "document",
        "redacted_thinking",
        "reasoning",
        "web_search_tool_result",
    }
)
# Part types whose text is in a field other than "text".
_TEXT_FIELD = {"refusal": "refusal", "thinking": "thinking"}
_ECHO = 40  # longest client-sent type name repeated in an error


class UnreadableContent(ValueError):
    """Content the checks cannot read; `path` names the field (`messages[0].content`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def under(self, prefix: str) -> UnreadableContent:
        """The same error with its path below `prefix`."""
        return UnreadableContent(prefix + self.path, self.reason)


_KIND = {str: "a string", int: "a number", float: "a number", bool: "a boolean"}
_KIND.update({dict: "an object", list: "an array", type(None): "null"})  # type: ignore[dict-item]


def _what(v: object) -> str:
    return _KIND.get(type(v), "an unknown value")


# Paths are built only on error: the readers below raise with a path relative
# to the value they were given, and each caller puts its own part in front.


def content_text(content: Any, path: str = "") -> str:
    """A content's text: a string, or the text of each part of an array joined by "\n"."""
    try:
        return _content(content)
    except UnreadableContent as e:
        raise e.under(path) from None


def _content(content: Any, nested: bool = False) -> str:
    if type(content) is str:
        return content
    if content is None:
        return ""
    if type(content) is not list:
        raise UnreadableContent(
            "", f"must be a string or an array of content parts, not {_what(content)}"
        )
    parts = []
    for k, part in enumerate(content):
        try:
            text = _part_text(part, nested)
        except UnreadableContent as e:
            raise e.under(f"[{k}]") from None
        if text:
            parts.append(text)
    return parts[0] if len(parts) == 1 else "\n".join(parts)


def _part_text(part: Any, nested: bool) -> str:
    if type(part) is not dict:
        raise UnreadableContent("", f"must be a content part object, not {_what(part)}")
    text = part.get("text")
    if type(text) is str:
        return text
    if text is not None:
        raise UnreadableContent(".text", f"must be a string, not {_what(text)}")
    kind = part.get("type")
    if type(kind) is not str:
        raise UnreadableContent("", "a content part needs a string type or a text")
    if kind in _NO_TEXT:
        return ""
    field = _TEXT_FIELD.get(kind)
    if field is not None:
        value = part.get(field)
        if type(value) is not str:
            raise UnreadableContent(f".{field}", f"must be a string, not {_what(value)}")
        return value
    if kind == "tool_use" or kind == "server_tool_use":  # Anthropic: a tool call's arguments
        return _json_text(part.get("input"), ".input")
    if kind == "tool_result" and not nested:  # one level: no unbounded recursion
        try:
            return _content(part.get("content"), nested=True)
        except UnreadableContent as e:
            raise e.under(".content") from None
    raise UnreadableContent(
        ".type", f"the gateway's checks cannot read a {kind[:_ECHO]!r} content part"
    )


def _json_text(value: Any, path: str) -> str:
    """Tool call arguments: a JSON string (OpenAI) or an object (Ollama, Anthropic)."""
    if value is None:
        return ""
    if type(value) is str:
        return value
    if type(value) is dict or type(value) is list:
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError:  # nested deeper than orjson writes
            raise UnreadableContent(path, "is nested too deeply") from None
    raise UnreadableContent(path, f"must be a string or an object, not {_what(value)}")


def _message(m: Any, out: list[Text]) -> None:
    if type(m) is not dict:
        raise UnreadableContent("", f"must be a message object, not {_what(m)}")
    role = m.get("role")
    if type(role) is not str:
        raise UnreadableContent(".role", f"must be a string, not {_what(role)}")
    if role not in ROLES:
        role = role.lower()
    c = m.get("content")
    if type(c) is str:
        if c:
            out.append((role, c))
    elif c is not None:
        try:
            text = _content(c)
        except UnreadableContent as e:
            raise e.under(".content") from None
        if text:
            out.append((role, text))
    calls = m.get("tool_calls")
    if calls is not None:
        if type(calls) is not list:
            raise UnreadableContent(".tool_calls", f"must be an array, not {_what(calls)}")
        for j, call in enumerate(calls):
            if type(call) is not dict:
                raise UnreadableContent(
                    f".tool_calls[{j}]", f"must be an object, not {_what(call)}"
                )
            fn = call.get("function")
            if fn is not None:
                try:
                    _function(fn, role, out)
                except UnreadableContent as e:
                    raise e.under(f".tool_calls[{j}].function") from None
    fn = m.get("function_call")  # the legacy single call
    if fn is not None:
        try:
            _function(fn, role, out)
        except UnreadableContent as e:
            raise e.under(".function_call") from None


def _function(fn: Any, role: str, out: list[Text]) -> None:
    if type(fn) is not dict:
        raise UnreadableContent("", f"must be an object, not {_what(fn)}")
    text = _json_text(fn.get("arguments"), ".arguments")
    if text:
        out.append((role, text))


def _messages(v: Any, path: str, out: list[Text]) -> None:
    if type(v) is not list:
        raise UnreadableContent(path, f"must be an array of message objects, not {_what(v)}")
    for i, m in enumerate(v):
        try:
            _message(m, out)
        except UnreadableContent as e:
            raise e.under(f"{path}[{i}]") from None


def _strings(v: Any, path: str, out: list[Text], items: bool = False) -> None:
    """A string or an array of strings (prompt, input); with `items`, also
    Responses API input items. Token ids are unreadable: the gateway has no tokenizer."""
    if type(v) is str:
        if v:
            out.append(("user", v))
        return
    if type(v) is not list:
        raise UnreadableContent(path, f"must be a string or an array of strings, not {_what(v)}")
    for k, item in enumerate(v):
        if type(item) is str:
            if item:
                out.append(("user", item))
        elif items and type(item) is dict:
            try:
                _input_item(item, out)
            except UnreadableContent as e:
                raise e.under(f"{path}[{k}]") from None
        elif type(item) is int or type(item) is list:
            raise UnreadableContent(
                f"{path}[{k}]", "token ids cannot be read by the gateway's checks; send text"
            )
        else:
            raise UnreadableContent(f"{path}[{k}]", f"must be a string, not {_what(item)}")


def _input(v: Any, path: str, out: list[Text]) -> None:
    _strings(v, path, out, items=True)


def _input_item(item: dict[str, Any], out: list[Text]) -> None:
    """One item of a Responses API `input` array."""
    kind = item.get("type")
    if "role" in item:
        _message(item, out)
    elif kind == "function_call":
        if text := _json_text(item.get("arguments"), ".arguments"):
            out.append(("assistant", text))
    elif kind == "function_call_output":
        if text := content_text(item.get("output"), ".output"):
            out.append(("tool", text))
    elif type(kind) is not str or kind not in _NO_TEXT:
        raise UnreadableContent("", "must be a message, a function call or a function call output")


def _system(v: Any, path: str, out: list[Text]) -> None:
    if text := content_text(v, path):
        out.append(("system", text))


_Reader = Callable[[Any, str, list[Text]], None]
_GENERIC: tuple[tuple[str, _Reader], ...] = (
    ("system", _system),
    ("instructions", _system),
    ("messages", _messages),
    ("prompt", _strings),
    ("suffix", _strings),
    ("context", _strings),
    ("input", _input),
)
# What each endpoint's provider reads; unknown paths are read by shape.
_FIELDS: dict[str, tuple[tuple[str, _Reader], ...]] = {
    CHAT: (("messages", _messages),),
    OLLAMA_CHAT: (("messages", _messages),),
    OLLAMA_GENERATE: (
        ("system", _system),
        ("prompt", _strings),
        ("suffix", _strings),
        ("context", _strings),  # token ids of an earlier answer: unreadable
    ),
    EMBEDDINGS: (("input", _strings),),
    ANTHROPIC_MESSAGES: (("system", _system), ("messages", _messages)),
    ANTHROPIC_COUNT_TOKENS: (("system", _system), ("messages", _messages)),
    # Responses API: the instructions, and every input item's text (messages of
    # any role, function call arguments and outputs).
    RESPONSES: (("instructions", _system), ("input", _input)),
    OTHER: _GENERIC,
}


def request_texts(endpoint: str, body: dict[str, Any]) -> list[Text]:
    """Every (role, text) the model will read from `body`; raises UnreadableContent."""
    out: list[Text] = []
    for field, read in _FIELDS.get(endpoint, _GENERIC):
        v = body.get(field)
        if v is not None:
            read(v, field, out)
    return out


def select(texts: list[Text], roles: Collection[str] | None) -> list[str]:
    """The texts of these roles (None: every role)."""
    if roles is None:
        return [t for _, t in texts]
    return [t for r, t in texts if r in roles]


def config_roles(values: Collection[str], path: str) -> tuple[frozenset[str] | None, list[Text]]:
    """A check's `roles` config: the roles (None: every role) and (path, problem) pairs."""
    problems = [
        (f"{path}[{i}]", f"{r!r} is not a role ({', '.join(sorted(ROLES))})")
        for i, r in enumerate(values)
        if r.lower() not in ROLES
    ]
    return frozenset(r.lower() for r in values) or None, problems
