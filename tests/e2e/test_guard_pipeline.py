"""The request pipeline through the real Envoy: the intelligent guard (the
fake plays the guard model), llm_rewrite, prompt_decorator, context and regex
patterns. The fake records every call, so each test checks who was called,
with which key and which body."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fake_provider import Scripted
from harness import Stack

pytestmark = pytest.mark.e2e

PROVIDER_KEY = "sk-provider-PIPELINE"
GUARD_KEY = "sk-guard-PIPELINE"
REWRITE_KEY = "sk-rewrite-PIPELINE"
CLIENT_KEY = "sk-client-PIPELINE"
GUARD_PATH = "/compatible-mode/v1/chat/completions"  # the guard's default path
PROVIDER_PATH = "/v1/chat/completions"  # what the clients send (the plugin keeps it)
CONTEXT_TEXT = "Company handbook: the office opens at 9."


def config(port: int, context_file: Path) -> str:
    guard = (
        f"host: 127.0.0.1\n  port: {port}\n  api_key: {GUARD_KEY}\n  tls: false\n  timeout: 0.5s"
    )
    return f"""
hosts: ["guarded.test"]
api_key: {PROVIDER_KEY}
default_model: qwen-turbo
intelligent_guard:
  {guard}
  on_error: deny
---
hosts: ["guard-fail-open.test"]
api_key: {PROVIDER_KEY}
intelligent_guard:
  {guard}
  on_error: allow
---
providers:
- {{name: up, type: generic, host: upstream.fake, base_path: /v1, api_tokens: [{PROVIDER_KEY}]}}
routes:
- name: rewrite
  match: {{hosts: [rewrite.test]}}
  provider: up
  processors:
  - llm_rewrite: {{host: 127.0.0.1, port: {port}, tls: false, model: rewriter, api_key: {REWRITE_KEY}}}
- name: decorate
  match: {{hosts: [decorate.test]}}
  provider: up
  processors:
  - prompt_decorator:
      prepend: [{{role: system, content: "You are terse."}}]
      append: [{{role: user, content: "Answer in French."}}]
  - context: {{file: "{context_file}"}}
- name: regex
  match: {{hosts: [regex.test]}}
  provider: up
  processors:
  - regex_guard:
      deny_patterns: ["(?i)password"]
      allow_patterns: ["^[A-Za-z0-9 ?!.,]*$"]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("pipeline")
    ctx = tmp / "context.txt"
    ctx.write_text(CONTEXT_TEXT)
    # The config needs the fake's port: a callable gets it once the fake runs.
    with Stack(tmp, lambda port: config(port, ctx)) as s:
        yield s


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    stack.fake.take()
    with httpx.Client(base_url=stack.url, timeout=15) as c:
        yield c


_seq = iter(range(10**6))


def ask(c: httpx.Client, host: str, text: str) -> httpx.Response:
    # A unique suffix: the guard's verdict cache must not answer for the fake.
    body = {"messages": [{"role": "user", "content": text}]}
    return c.post(
        PROVIDER_PATH,
        json=body,
        headers={"host": host, "authorization": f"Bearer {CLIENT_KEY}"},
    )


def unique(text: str) -> str:
    return f"{text} {next(_seq)}"


def split(stack: Stack) -> tuple[list[Any], list[Any]]:
    """(guard/rewrite calls, provider calls) the fake received."""
    recs = stack.fake.take()
    aux = [r for r in recs if r.path == GUARD_PATH]
    prov = [r for r in recs if r.path != GUARD_PATH]
    return aux, prov


def system_prompt(rec: Any) -> str:
    return " ".join(m["content"] for m in rec.json()["messages"] if m["role"] == "system")


# ---------------------------------------------------------------- intelligent guard


def test_guard_denies_and_provider_never_called(stack: Stack, client: httpx.Client) -> None:
    r = ask(client, "guarded.test", unique("Here is the CONFIDENTIAL roadmap"))
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert "the text discloses confidential information" in err["message"]
    assert err["code"] == "guard_denied"
    guard, prov = split(stack)
    assert prov == []  # the provider never saw the request
    (g,) = guard
    assert "inspector" in system_prompt(g)
    assert g.headers["authorization"] == f"Bearer {GUARD_KEY}"
    assert g.headers["host"].startswith("127.0.0.1")


def test_guard_allows_and_keys_stay_apart(stack: Stack, client: httpx.Client) -> None:
    text = unique("What is the weather like?")
    r = ask(client, "guarded.test", text)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].endswith(f"last_user={text}")
    guard, prov = split(stack)
    (g,), (p,) = guard, prov
    # The guard judged the user's text with its own key ...
    assert text in json.dumps(g.json())
    assert g.headers["authorization"] == f"Bearer {GUARD_KEY}"
    # ... the provider got the request with its key, and never the guard's.
    assert p.path == PROVIDER_PATH and p.headers["host"] == "guarded.test"
    assert p.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert p.json() == {"messages": [{"role": "user", "content": text}], "model": "qwen-turbo"}
    for rec, foreign in ((p, GUARD_KEY), (g, PROVIDER_KEY), (p, CLIENT_KEY), (g, CLIENT_KEY)):
        assert foreign not in json.dumps(rec.headers) and foreign.encode() not in rec.body


def test_guard_timeout_on_error_deny_is_503(stack: Stack, client: httpx.Client) -> None:
    verdict = json.dumps({"result": "allow", "reason": "late"})
    late = {"choices": [{"message": {"role": "assistant", "content": verdict}}]}
    stack.fake.script(GUARD_PATH, Scripted(200, json.dumps(late).encode(), delay_s=2.0))
    t0 = time.monotonic()
    r = ask(client, "guarded.test", unique("harmless words"))
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "guard_unavailable"
    assert time.monotonic() - t0 < 1.8  # the 0.5s guard timeout, not the fake's 2s
    guard, prov = split(stack)
    assert len(guard) == 1 and prov == []


def test_guard_timeout_on_error_allow_passes(stack: Stack, client: httpx.Client) -> None:
    verdict = json.dumps({"result": "deny", "reason": "too late to matter"})
    late = {"choices": [{"message": {"role": "assistant", "content": verdict}}]}
    stack.fake.script(GUARD_PATH, Scripted(200, json.dumps(late).encode(), delay_s=2.0))
    text = unique("harmless words")
    r = ask(client, "guard-fail-open.test", text)
    assert r.status_code == 200, r.text
    guard, prov = split(stack)
    assert len(guard) == 1  # the guard was asked (and timed out)
    (p,) = prov
    assert p.json()["messages"][0]["content"] == text
    assert p.headers["authorization"] == f"Bearer {PROVIDER_KEY}"


# ---------------------------------------------------------------- llm_rewrite


def test_llm_rewrite_changes_what_the_provider_receives(stack: Stack, client: httpx.Client) -> None:
    r = client.post(
        PROVIDER_PATH,
        headers={"host": "rewrite.test", "authorization": f"Bearer {CLIENT_KEY}"},
        json={"model": "m", "messages": [{"role": "user", "content": "cheap flights paris"}]},
    )
    assert r.status_code == 200, r.text
    aux, prov = split(stack)
    (rw,), (p,) = aux, prov
    assert "Rewrite the user's message" in system_prompt(rw)
    assert rw.json()["model"] == "rewriter"
    assert rw.headers["authorization"] == f"Bearer {REWRITE_KEY}"
    assert p.path == "/v1/chat/completions" and p.headers["host"] == "upstream.fake"
    assert p.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert p.json()["messages"] == [{"role": "user", "content": "REWRITTEN: cheap flights paris"}]
    assert REWRITE_KEY.encode() not in p.body and REWRITE_KEY not in json.dumps(p.headers)
    assert r.json()["choices"][0]["message"]["content"].endswith(
        "last_user=REWRITTEN: cheap flights paris"
    )


# ---------------------------------------------------------------- decorator + context


def test_prompt_decorator_and_context(stack: Stack, client: httpx.Client) -> None:
    r = client.post(
        PROVIDER_PATH,
        headers={"host": "decorate.test"},
        json={"model": "m", "messages": [{"role": "user", "content": "When do we open?"}]},
    )
    assert r.status_code == 200, r.text
    aux, prov = split(stack)
    assert aux == []
    (p,) = prov
    msgs = p.json()["messages"]
    assert msgs == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": CONTEXT_TEXT},
        {"role": "user", "content": "When do we open?"},
        {"role": "user", "content": "Answer in French."},
    ]
    assert p.headers["content-length"] == str(len(p.body))


# ---------------------------------------------------------------- regex patterns


@pytest.mark.parametrize(
    ("text", "status", "code"),
    [
        ("What is my PassWord", 403, "content_denied"),
        ("Hello there!", 200, None),
        ("Hello <script>", 403, "content_not_allowed"),
    ],
)
def test_regex_patterns(
    stack: Stack, client: httpx.Client, text: str, status: int, code: str | None
) -> None:
    r = ask(client, "regex.test", text)
    assert r.status_code == status, r.text
    _, prov = split(stack)
    if code is None:
        assert len(prov) == 1 and prov[0].json()["messages"][0]["content"] == text
    else:
        assert r.json()["error"]["code"] == code
        assert prov == []
