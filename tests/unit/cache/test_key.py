"""The cache key: what changes the answer is in it, what does not is not."""

from __future__ import annotations

from typing import Any

from extproc.cache.control import client_directives
from extproc.cache.key import cache_key, has_tool_result, normalised_body
from extproc.cache.policy import CachePolicy

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}


DEFAULT = CachePolicy()


def key(policy: CachePolicy = DEFAULT, **kw: Any) -> str:
    args: dict[str, Any] = {
        "route": "r",
        "provider": "p",
        "model": "mapped",
        "endpoint": "chat",
        "consumer": "alice",
        "headers": {},
        "body": BODY,
    }
    args.update(kw)
    return cache_key(policy, **args)


def test_delivery_fields_do_not_change_the_key() -> None:
    k = key()
    for extra in (
        {"stream": True},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"user": "u-1"},
        {"metadata": {"user_id": "x"}},
    ):
        assert key(body={**BODY, **extra}) == k, extra
    # Key order and JSON spelling do not matter either.
    assert key(body=dict(reversed(list(BODY.items())))) == k


def test_what_changes_the_answer_changes_the_key() -> None:
    k = key()
    assert key(body={**BODY, "temperature": 0.3}) != k
    assert key(body={**BODY, "seed": 1}) != k
    assert key(body={**BODY, "messages": [{"role": "user", "content": "hi!"}]}) != k
    assert key(route="r2") != k
    assert key(provider="p2") != k
    assert key(model="other") != k
    assert key(endpoint="anthropic_messages") != k


def test_consumers_are_isolated_unless_shared() -> None:
    assert key(consumer="alice") != key(consumer="bob")
    assert key(consumer="alice") != key(consumer="")
    shared = CachePolicy(shared=True)
    assert key(shared, consumer="alice") == key(shared, consumer="bob")


def test_key_includes_headers() -> None:
    p = CachePolicy(key_includes=("anthropic-beta",))
    a = key(p, headers={"anthropic-beta": "x"})
    assert a != key(p, headers={"anthropic-beta": "y"})
    assert a != key(p, headers={})
    assert key(headers={"anthropic-beta": "x"}) == key(headers={})  # not listed: ignored


def test_key_holds_no_prompt() -> None:
    k = key()
    assert len(k) == 64 and "hi" not in k
    assert b"stream" not in normalised_body({"stream": True, "a": 1})


def test_tool_results() -> None:
    assert has_tool_result({"messages": [{"role": "tool", "content": "42"}]})
    assert has_tool_result(
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]}
    )
    assert has_tool_result({"input": [{"type": "function_call_output", "output": "x"}]})
    assert not has_tool_result(BODY)
    assert not has_tool_result({"messages": "x", "input": "y"})


def test_cache_control() -> None:
    assert client_directives({}) == (True, True)
    assert client_directives({"cache-control": "no-cache"}) == (False, True)
    assert client_directives({"cache-control": "No-Store"}) == (True, False)
    assert client_directives({"cache-control": "max-age=0, no-store, no-cache"}) == (False, False)
    assert client_directives({"pragma": "no-cache"}) == (False, True)
