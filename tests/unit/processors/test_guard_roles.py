"""regex_guard and llm_guard read the same texts: every role, or the configured roles."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text
from extproc.core.events import Reject
from extproc.core.request import CHAT, RequestContext
from extproc.guard.verdict import Verdict
from extproc.processors.llm_guard import LlmGuard
from extproc.processors.regex_guard import RegexGuard

ROUTE = compile_config(load_text("hosts: [a.com]\napi_key: k\n"), {}).routes.routes[0]
BODY = {
    "messages": [
        {"role": "system", "content": "sys text"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "{}"}}]},
        {"role": "tool", "content": "tool out"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]
}


def regex_guard(extra: str) -> RegexGuard:
    text = (
        "providers: [{name: p, type: qwen, api_tokens: [k]}]\n"
        f"routes: [{{name: r, provider: p, processors: [{{regex_guard: {{{extra}}}}}]}}]\n"
    )
    (proc,) = compile_config(load_text(text), {}).routes.routes[0].processors
    assert isinstance(proc, RegexGuard)
    return proc


class StubGuard:
    def __init__(self) -> None:
        self.judged: list[str] = []

    async def judge(self, text: str) -> Verdict:
        self.judged.append(text)
        return Verdict("allow", "")


def ctx(body: dict[str, Any] = BODY) -> RequestContext:
    return RequestContext(ROUTE, {}, CHAT, body)


@pytest.mark.parametrize(
    ("roles", "blocked"),
    [
        ("", True),
        ("roles: [system]", True),
        ("roles: [User, assistant]", False),
    ],
)
async def test_regex_guard_roles(roles: str, blocked: bool) -> None:
    g = regex_guard(f"deny_patterns: ['sys'], {roles}")
    assert g.reads_texts
    assert isinstance(await g.process(ctx()), Reject) is blocked


async def test_allow_patterns_apply_to_every_selected_text() -> None:
    g = regex_guard(r"allow_patterns: ['^(first|a\nb)$']")
    assert isinstance(await g.process(ctx()), Reject)  # the system text matches none
    g = regex_guard(r"allow_patterns: ['^(first|a\nb)$'], roles: [user]")
    assert await g.process(ctx()) is None


def test_unknown_role_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        regex_guard("deny_patterns: [x], roles: [users]")
    ((path, msg),) = e.value.problems
    assert path == "routes[0].processors[0].regex_guard.roles[0]" and "'users'" in msg


def test_plugin_roles_and_intelligent_guard_roles_compile() -> None:
    rt = compile_config(
        load_text(
            "hosts: [a.com]\napi_key: k\ndeny_patterns: [x]\nroles: [user]\n"
            "intelligent_guard: {host: h, api_key: g, roles: [user, system]}\n"
        ),
        {},
    )
    rg, lg = rt.routes.routes[0].processors
    assert isinstance(rg, RegexGuard) and rg.roles == frozenset({"user"})
    assert isinstance(lg, LlmGuard) and lg.roles == frozenset({"user", "system"})
    with pytest.raises(ConfigError) as e:
        compile_config(load_text("hosts: [a.com]\napi_key: k\nroles: [bot]\n", "cfg"), {})
    assert [p for p, _ in e.value.problems] == ["cfg.roles[0]"]


@pytest.mark.parametrize(
    ("judge", "roles", "expected"),
    [
        ("all", None, "sys text\nfirst\n{}\ntool out\na\nb"),
        ("all_user", None, "sys text\nfirst\n{}\ntool out\na\nb"),
        ("all", frozenset({"user"}), "first\na\nb"),
        ("last_user", None, "a\nb"),
        ("last_user", frozenset({"system"}), None),
    ],
)
async def test_llm_guard_judges_the_same_texts(
    judge: str, roles: frozenset[str] | None, expected: str | None
) -> None:
    stub = StubGuard()
    g = LlmGuard(stub, "deny", judge, True, roles)  # type: ignore[arg-type]
    assert g.reads_texts
    assert await g.process(ctx()) is None
    assert stub.judged == ([] if expected is None else [expected])


async def test_texts_are_read_again_after_a_processor_changed_the_body() -> None:
    c = ctx({"messages": [{"role": "user", "content": "hello"}]})
    first = c.texts
    assert c.texts is first  # computed once
    c.body["messages"].append({"role": "system", "content": "added"})
    assert c.texts is first  # no one said the body changed
    c.modified = True
    assert c.texts == [("user", "hello"), ("system", "added")]
    c.body["messages"].append({"role": "system", "content": "again"})
    c.modified = True  # a second change is seen too
    assert c.texts_for({"system"}) == ["added", "again"]
