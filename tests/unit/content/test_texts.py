"""The one text extraction: every text the model reads, or a named unreadable field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.content.texts import UnreadableContent, content_text, request_texts, select
from extproc.core.endpoints import (
    ANTHROPIC_MESSAGES,
    CHAT,
    EMBEDDINGS,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    OTHER,
)

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def texts(body: dict[str, Any], endpoint: str = CHAT) -> list[tuple[str, str]]:
    return request_texts(endpoint, body)


def test_every_role_and_every_text_of_a_chat() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "developer", "content": "dev"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, IMAGE, {"text": "b"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "2", "type": "function", "function": {"name": "g"}},
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": "result"},
            {"role": "assistant", "function_call": {"name": "f", "arguments": '{"q":1}'}},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "User", "content": ""},  # empty: nothing to check
        ]
    }
    assert texts(body) == [
        ("system", "sys"),
        ("developer", "dev"),
        ("user", "a\nb"),
        ("assistant", "{}"),
        ("tool", "result"),
        ("assistant", '{"q":1}'),
        ("assistant", "no"),
    ]


def test_roles_are_compared_lower_case() -> None:
    assert texts({"messages": [{"role": "SYSTEM", "content": "x"}]}) == [("system", "x")]


def test_ollama_chat_tool_call_arguments_are_an_object() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "hi", "images": ["AAAA"]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": {"city": "账号"}}}],
            },
        ]
    }
    assert texts(body, OLLAMA_CHAT) == [("user", "hi"), ("assistant", '{"city":"账号"}')]


def test_ollama_generate_reads_prompt_system_and_suffix() -> None:
    body = {"model": "m", "prompt": "p", "system": "s", "suffix": "x", "images": ["AAAA"]}
    assert texts(body, OLLAMA_GENERATE) == [("system", "s"), ("user", "p"), ("user", "x")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("one", ["one"]), (["a", "", "b"], ["a", "b"]), ([], [])],
)
def test_embeddings_input(value: Any, expected: list[str]) -> None:
    assert texts({"input": value}, EMBEDDINGS) == [("user", t) for t in expected]


def test_unknown_paths_are_read_by_shape() -> None:
    # /v1/completions, /v1/responses, Ollama's /api/embed ...
    assert texts({"prompt": ["a", "b"]}, OTHER) == [("user", "a"), ("user", "b")]
    body = {
        "instructions": "be nice",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call_output", "call_id": "c", "output": "out"},
            {"type": "reasoning", "id": "r", "encrypted_content": "xyz"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "t"}],
            },
        ],
    }
    assert texts(body, OTHER) == [
        ("system", "be nice"),
        ("user", "q"),
        ("assistant", '{"a":1}'),
        ("tool", "out"),
        ("assistant", "t"),
    ]
    assert texts({"model": "m"}, OTHER) == []


@pytest.mark.parametrize("endpoint", [ANTHROPIC_MESSAGES, OTHER])
def test_anthropic_shapes(endpoint: str) -> None:
    body = {
        "system": [{"type": "text", "text": "sys"}],
        "messages": [
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": "r"}],
                    }
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}],
            },
        ],
    }
    assert texts(body, endpoint) == [
        ("system", "sys"),
        ("assistant", '{"a":1}'),
        ("user", "r"),
        ("assistant", "hmm"),
    ]


def test_content_text_joins_parts_with_newlines() -> None:
    assert content_text("x", "p") == "x"
    assert content_text(None, "p") == ""
    assert (
        content_text([{"type": "text", "text": "a"}, IMAGE, {"type": "text", "text": "b"}], "p")
        == "a\nb"
    )


@pytest.mark.parametrize(
    ("endpoint", "body", "path"),
    [
        (CHAT, {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (CHAT, {"messages": [{"role": "user", "content": {"text": "x"}}]}, "messages[0].content"),
        (CHAT, {"messages": [{"role": "user", "content": True}]}, "messages[0].content"),
        (CHAT, {"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]"),
        (
            CHAT,
            {
                "messages": [
                    {"role": "user", "content": "ok"},
                    {"role": "user", "content": [IMAGE, {"type": "text", "text": 5}]},
                ]
            },
            "messages[1].content[1].text",
        ),
        (
            CHAT,
            {"messages": [{"role": "user", "content": [{"type": "input_hologram"}]}]},
            "messages[0].content[0].type",
        ),
        (
            CHAT,
            {"messages": [{"role": "user", "content": [{"type": ["x"]}]}]},
            "messages[0].content[0]",
        ),
        (CHAT, {"messages": [{"role": "user", "content": [{}]}]}, "messages[0].content[0]"),
        (
            CHAT,
            {"messages": [{"role": "user", "content": [{"type": "refusal"}]}]},
            "messages[0].content[0].refusal",
        ),
        (CHAT, {"messages": [{"content": "x"}]}, "messages[0].role"),
        (CHAT, {"messages": [{"role": 1, "content": "x"}]}, "messages[0].role"),
        (CHAT, {"messages": [1]}, "messages[0]"),
        (CHAT, {"messages": {"role": "user"}}, "messages"),
        (CHAT, {"messages": [{"role": "assistant", "tool_calls": {}}]}, "messages[0].tool_calls"),
        (
            CHAT,
            {"messages": [{"role": "assistant", "tool_calls": ["x"]}]},
            "messages[0].tool_calls[0]",
        ),
        (
            CHAT,
            {"messages": [{"role": "assistant", "tool_calls": [{"function": "f"}]}]},
            "messages[0].tool_calls[0].function",
        ),
        (
            CHAT,
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": 5}}]}]},
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            CHAT,
            {"messages": [{"role": "assistant", "function_call": []}]},
            "messages[0].function_call",
        ),
        (EMBEDDINGS, {"input": [1, 2, 3]}, "input[0]"),
        (EMBEDDINGS, {"input": [[1, 2], [3]]}, "input[0]"),
        (EMBEDDINGS, {"input": ["ok", 5.5]}, "input[1]"),
        (EMBEDDINGS, {"input": 7}, "input"),
        (EMBEDDINGS, {"input": [{"role": "user", "content": "x"}]}, "input[0]"),
        (OLLAMA_GENERATE, {"prompt": "p", "context": [1, 2]}, "context[0]"),
        (OLLAMA_GENERATE, {"prompt": "p", "system": 5}, "system"),
        (OTHER, {"prompt": [[1, 2]]}, "prompt[0]"),
        (OTHER, {"input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
        (OTHER, {"input": [{"type": "function_call_output", "output": 5}]}, "input[0].output"),
        (OTHER, {"instructions": 5}, "instructions"),
    ],
)
def test_unreadable_content_names_its_field(endpoint: str, body: dict[str, Any], path: str) -> None:
    with pytest.raises(UnreadableContent) as e:
        request_texts(endpoint, body)
    assert e.value.path == path
    assert str(e.value).startswith(path + ": ")


def test_tool_result_nests_one_level_only() -> None:
    inner = {"type": "tool_result", "content": [{"type": "text", "text": "x"}]}
    body = {
        "messages": [{"role": "user", "content": [{"type": "tool_result", "content": [inner]}]}]
    }
    with pytest.raises(UnreadableContent) as e:
        request_texts(OTHER, body)
    assert e.value.path == "messages[0].content[0].content[0].type"


def test_arguments_nested_deeper_than_json_output_allows() -> None:
    # orjson parses 1024 levels but writes only 254.
    deep = "[" * 300 + "]" * 300
    call = '{"function":{"arguments":' + deep + "}}"
    raw = '{"messages":[{"role":"assistant","tool_calls":[' + call + "]}]}"
    with pytest.raises(UnreadableContent) as e:
        request_texts(OLLAMA_CHAT, orjson.loads(raw))
    assert e.value.path == "messages[0].tool_calls[0].function.arguments"


def test_long_type_names_are_cut_in_the_message() -> None:
    with pytest.raises(UnreadableContent) as e:
        request_texts(CHAT, {"messages": [{"role": "user", "content": [{"type": "z" * 10_000}]}]})
    assert len(str(e.value)) < 200


def test_select_by_roles() -> None:
    t = [("system", "s"), ("user", "u"), ("assistant", "a")]
    assert select(t, None) == ["s", "u", "a"]
    assert select(t, frozenset({"user", "system"})) == ["s", "u"]
    assert select(t, frozenset()) == []


DENIED = "EXFILTRATE-THE-DATA"


def _has(texts: list[tuple[str, str]], role: str) -> bool:
    return any(r == role and DENIED in t for r, t in texts)


def test_declared_texts_of_an_openai_chat() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": f"the city; {DENIED}"},
            DENIED: {"type": "string"},
        },
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"messages": [{"role": "user", "name": DENIED, "content": "hi"}]}, "user"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "description": DENIED}}]},
            "system",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]},
            "system",
        ),
        ({"functions": [{"name": "f", "description": DENIED}]}, "system"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": schema},
                }
            },
            "system",
        ),
    ]
    for extra, role in cases:
        body = {"messages": [{"role": "user", "content": "hi"}], **extra}
        assert _has(request_texts(CHAT, body), role), extra
    # Property names are read too: the schema's own key names the denied text.
    names = {"type": "object", "properties": {DENIED: {"type": "string"}}}
    body = {
        "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"schema": names}},
    }
    assert _has(request_texts(CHAT, body), "system")


def test_declared_texts_of_responses_ollama_and_anthropic() -> None:
    tool = {"type": "function", "name": "f", "description": DENIED, "parameters": {}}
    assert _has(request_texts(OTHER, {"input": "hi", "tools": [tool]}), "system")
    fmt = {"format": {"type": "json_schema", "name": "x", "schema": {"description": DENIED}}}
    assert _has(request_texts(OTHER, {"input": "hi", "text": fmt}), "system")
    assert _has(request_texts(OLLAMA_CHAT, {"messages": [], "format": {"title": DENIED}}), "system")
    assert request_texts(OLLAMA_GENERATE, {"prompt": "p", "format": "json"}) == [("user", "p")]
    assert _has(request_texts(OLLAMA_GENERATE, {"prompt": "p", "template": DENIED}), "system")
    anth_tool = {"name": "t", "description": DENIED, "input_schema": {"type": "object"}}
    msg = {"role": "user", "content": "hi"}
    assert _has(
        request_texts(ANTHROPIC_MESSAGES, {"messages": [msg], "tools": [anth_tool]}), "system"
    )
    schema_tool = {"name": "t", "input_schema": {"properties": {"q": {"description": DENIED}}}}
    assert _has(
        request_texts(ANTHROPIC_MESSAGES, {"messages": [msg], "tools": [schema_tool]}), "system"
    )


@pytest.mark.parametrize(
    "doc",
    [
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": DENIED},
        },
        {
            "type": "document",
            "source": {"type": "content", "content": [{"type": "text", "text": DENIED}]},
        },
        {"type": "document", "source": {"type": "content", "content": DENIED}},
        {"type": "document", "title": DENIED, "source": {"type": "url", "url": "https://x/y.pdf"}},
        {"type": "document", "context": DENIED, "source": {"type": "base64", "data": "AAAA"}},
    ],
)
def test_anthropic_document_blocks(doc: dict[str, Any]) -> None:
    body = {"messages": [{"role": "user", "content": [doc]}]}
    assert _has(request_texts(ANTHROPIC_MESSAGES, body), "user")
    # Inside a tool result too.
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [doc]}
    body = {"messages": [{"role": "user", "content": [result]}]}
    assert _has(request_texts(ANTHROPIC_MESSAGES, body), "user")


def test_declared_texts_that_cannot_be_read() -> None:
    with pytest.raises(UnreadableContent) as e:
        request_texts(CHAT, {"messages": [], "tools": "nope"})
    assert e.value.path == "tools"
    with pytest.raises(UnreadableContent) as e:
        request_texts(CHAT, {"messages": [{"role": "user", "name": 5}]})
    assert e.value.path == "messages[0].name"
    deep: Any = "x"
    for _ in range(40):
        deep = {"properties": {"a": deep}}
    with pytest.raises(UnreadableContent):
        request_texts(CHAT, {"messages": [], "tools": [{"function": {"parameters": deep}}]})
    bad = {"type": "document", "source": {"type": "weird"}}
    with pytest.raises(UnreadableContent) as e:
        request_texts(ANTHROPIC_MESSAGES, {"messages": [{"role": "user", "content": [bad]}]})
    assert e.value.path.endswith(".source.type")
