"""Every text the model will read from a request: the one extraction the checks use.

`request_texts(endpoint, body)` returns (role, text) pairs: each message's
content (the text parts of a content array joined by "\\n", the one joining
rule), its `name`, each tool call's arguments (role of the message that
carries them), Anthropic `document` blocks with a text or content source
(and their title and context), Ollama's `prompt`/`system`/`suffix`/`template`, the
embeddings `input`. What the client declares for the model to read is a
"system" text: each tool's (or legacy function's) name, description and
every string of its parameter schema (`parameters`, `input_schema`: property
descriptions, enums, titles, property names), and the structured-output
schemas (`response_format`, the Responses API's `text.format`, Ollama's
`format`). Paths the gateway does not know (OTHER) are read by shape:
`messages`, `prompt`, `input`, `system`, `instructions`, `tools`,
`functions`, `response_format`, `text` wherever they appear
(/v1/completions, /v1/responses, Ollama's /api/embed).

Content the checks cannot read (a number where text goes, a content part of an
unknown type, token ids) raises `UnreadableContent` naming the field path; the
exchange answers 400 rather than forwarding it unchecked. Empty texts are left
out. Media parts (images, audio, files) carry no text for the checks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import orjson

from extproc.content.endpoints import (
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
    if kind == "document":
        return _document(part)
    raise UnreadableContent(
        ".type", f"the gateway's checks cannot read a {kind[:_ECHO]!r} content part"
    )


def _document(part: dict[str, Any]) -> str:
    """An Anthropic document block: its title, context and a text or content
    source (a PDF, base64 or by URL, is media: no text for the checks)."""
    out = []
    for field in ("title", "context"):
        v = part.get(field)
        if type(v) is str:
            if v:
                out.append(v)
        elif v is not None:
            raise UnreadableContent(f".{field}", f"must be a string, not {_what(v)}")
    src = part.get("source")
    if type(src) is not dict:
        raise UnreadableContent(".source", f"must be an object, not {_what(src)}")
    kind = src.get("type")
    if kind == "text":
        data = src.get("data")
        if type(data) is not str:
            raise UnreadableContent(".source.data", f"must be a string, not {_what(data)}")
        out.append(data)
    elif kind == "content":
        try:
            out.append(_content(src.get("content"), nested=True))
        except UnreadableContent as e:
            raise e.under(".source.content") from None
    elif kind not in ("base64", "url", "file"):
        raise UnreadableContent(".source.type", "must be text, content, base64, url or file")
    return "\n".join(t for t in out if t)


_MAX_DEPTH = 32  # a schema nested deeper is refused, not walked without bound
_MAX_STRINGS = 10_000


def _schema_strings(v: Any, path: str, out: list[str], depth: int = 0) -> None:
    """Every string a model reads in a JSON value (a tool's parameter schema, an
    output schema): string values, and property names."""
    if depth > _MAX_DEPTH or len(out) > _MAX_STRINGS:
        raise UnreadableContent(path, "is nested too deeply or too large for the gateway's checks")
    if type(v) is str:
        if v:
            out.append(v)
    elif type(v) is dict:
        for k, item in v.items():
            if type(item) is dict and k in _NAMED_MAPS:
                out.extend(name for name in item if type(name) is str)
            _schema_strings(item, path, out, depth + 1)
    elif type(v) is list:
        for item in v:
            _schema_strings(item, path, out, depth + 1)


# Schema keywords whose object keys are names the model reads (property names).
_NAMED_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})


def _declared(v: Any, path: str, out: list[Text]) -> None:
    """A structured-output schema (or any declaration the model reads): one
    "system" text of its strings."""
    strings: list[str] = []
    _schema_strings(v, path, strings)
    if strings:
        out.append(("system", "\n".join(strings)))


def _tools(v: Any, path: str, out: list[Text]) -> None:
    """Tools (OpenAI chat, Responses, Anthropic, Ollama) or legacy functions:
    one "system" text per tool with every string the model reads of it."""
    if type(v) is not list:
        raise UnreadableContent(path, f"must be an array of tools, not {_what(v)}")
    for i, tool in enumerate(v):
        if type(tool) is not dict:
            raise UnreadableContent(f"{path}[{i}]", f"must be a tool object, not {_what(tool)}")
        _declared(tool, f"{path}[{i}]", out)


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
    name = m.get("name")  # the participant's name: the model reads it too
    if type(name) is str:
        if name:
            out.append((role, name))
    elif name is not None:
        raise UnreadableContent(".name", f"must be a string, not {_what(name)}")
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


def _format(v: Any, path: str, out: list[Text]) -> None:
    """Ollama's `format`: "json" (no text) or a JSON schema."""
    if type(v) is not str:
        _declared(v, path, out)


_GENERIC: tuple[tuple[str, _Reader], ...] = (
    ("system", _system),
    ("instructions", _system),
    ("messages", _messages),
    ("prompt", _strings),
    ("suffix", _strings),
    ("context", _strings),
    ("input", _input),
    ("tools", _tools),
    ("functions", _tools),
    ("response_format", _declared),
    ("text", _declared),  # the Responses API's output format: {"format": {... schema}}
)
_CHAT_DECLARED: tuple[tuple[str, _Reader], ...] = (
    ("tools", _tools),
    ("functions", _tools),
    ("response_format", _declared),
)
_ANTHROPIC: tuple[tuple[str, _Reader], ...] = (
    ("system", _system),
    ("messages", _messages),
    ("tools", _tools),
)
# What each endpoint's provider reads; unknown paths are read by shape.
_FIELDS: dict[str, tuple[tuple[str, _Reader], ...]] = {
    CHAT: (("messages", _messages), *_CHAT_DECLARED),
    OLLAMA_CHAT: (("messages", _messages), ("tools", _tools), ("format", _format)),
    OLLAMA_GENERATE: (
        ("system", _system),
        ("template", _system),  # the prompt template (wraps prompt and system)
        ("prompt", _strings),
        ("suffix", _strings),
        ("context", _strings),  # token ids of an earlier answer: unreadable
        ("format", _format),
    ),
    EMBEDDINGS: (("input", _strings),),
    ANTHROPIC_MESSAGES: _ANTHROPIC,
    ANTHROPIC_COUNT_TOKENS: _ANTHROPIC,
    # Responses API: the instructions, every input item's text (messages of any
    # role, function call arguments and outputs), the tools and the output format.
    RESPONSES: (
        ("instructions", _system),
        ("input", _input),
        ("tools", _tools),
        ("text", _declared),
    ),
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
