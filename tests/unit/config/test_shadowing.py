"""Routes an earlier route hides: unreachable ones are config errors naming
the field path; overlaps that skip a later route's auth are warnings."""

from __future__ import annotations

import logging

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text

PROVIDERS = """
providers:
- name: p
  type: openai
  api_tokens: [sk-x]
consumers:
- name: c
  keys: [ck-1]
routes:
"""


def config(*routes: str) -> str:
    return PROVIDERS + "".join(routes)


ANY_HOST_MESSAGES = """- name: msgs
  match: {path_prefix: /v1/messages}
  provider: p
  client_api: anthropic
  auth: {required: true}
"""
HOST_ROUTE = """- name: host
  match: {hosts: [claude.test.com]}
  provider: p
"""


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("match: {}", "match: {hosts: [a.test]}"),
        ("match: {hosts: [a.test]}", "match: {hosts: ['a.test:8080'], path_prefix: /v1}"),
        ("match: {hosts: ['*.test']}", "match: {hosts: [a.b.test]}"),
        ("match: {path_prefix: /v1}", "match: {path_prefix: /v1/chat}"),
    ],
)
def test_a_route_an_earlier_one_always_wins_over_is_an_error(earlier: str, later: str) -> None:
    text = config(
        f"- name: first\n  {earlier}\n  provider: p\n",
        f"- name: second\n  {later}\n  provider: p\n",
    )
    with pytest.raises(ConfigError) as ei:
        compile_config(load_text(text), {})
    msg = str(ei.value)
    assert "routes[1].match" in msg and "unreachable" in msg and "'first'" in msg


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("match: {hosts: [a.test]}", "match: {hosts: [b.test]}"),
        ("match: {hosts: ['a.test:8080']}", "match: {hosts: [a.test]}"),
        ("match: {path_prefix: /v1/chat}", "match: {path_prefix: /v1}"),
        ("match: {headers: {x-team: {exact: a}}}", "match: {}"),
    ],
)
def test_routes_that_only_overlap_compile(earlier: str, later: str) -> None:
    text = config(
        f"- name: first\n  {earlier}\n  provider: p\n",
        f"- name: second\n  {later}\n  provider: p\n",
    )
    assert len(compile_config(load_text(text), {}).routes.routes) == 2


def test_an_open_route_taking_some_of_an_auth_routes_requests_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="extproc.config"):
        compile_config(load_text(config(HOST_ROUTE, ANY_HOST_MESSAGES)), {})
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "routes[1]" in warning and "'host'" in warning and "without its auth" in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="extproc.config"):
        compile_config(load_text(config(ANY_HOST_MESSAGES, HOST_ROUTE)), {})
    assert caplog.records == []


def test_unmatched_must_be_refuse_or_pass_through() -> None:
    with pytest.raises(ConfigError, match="unmatched: must be 'refuse' or 'pass_through'"):
        compile_config(load_text(config(HOST_ROUTE) + "unmatched: skip\n"), {})
    rt = compile_config(load_text(config(HOST_ROUTE) + "unmatched: pass_through\n"), {})
    assert rt.unmatched_pass_through
    assert not compile_config(load_text(config(HOST_ROUTE)), {}).unmatched_pass_through
