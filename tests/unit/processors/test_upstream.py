"""The one upstream resolver of llm_guard and llm_rewrite: URL, path, key source,
timeout, and config errors by field path."""

from __future__ import annotations

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text
from extproc.processors.llm_guard import LlmGuard
from extproc.processors.llm_rewrite import LlmRewrite
from extproc.processors.upstream import DEFAULT_CHAT_PATH, Upstream, base_url, split_host_port

GUARD_KEY = "sk-guard-TOPSECRET-0123456789"


@pytest.mark.parametrize(
    ("host", "port", "tls", "url"),
    [
        ("guard.example.com", 443, None, "https://guard.example.com"),
        ("guard.example.com", 8443, True, "https://guard.example.com:8443"),
        ("guard.example.com", 80, None, "http://guard.example.com"),
        ("guard.example.com", 443, False, "http://guard.example.com:443"),
        ("10.0.0.1", 8080, None, "http://10.0.0.1:8080"),
        ("::1", 8080, None, "http://[::1]:8080"),
    ],
)
def test_base_url(host: str, port: int, tls: bool | None, url: str) -> None:
    assert base_url(host, port, tls) == url


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("h.test", ("h.test", None)),
        ("h.test:8080", ("h.test", 8080)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
    ],
)
def test_split_host_port(authority: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(authority) == expected


def test_split_host_port_rejects_a_bad_port() -> None:
    with pytest.raises(ValueError, match="port"):
        split_host_port("h.test:http")


PROVIDERS = """
providers:
- {name: remote, type: qwen, api_tokens: [sk-p]}
- {name: local, type: generic, base_url: "http://127.0.0.1:8000/v1", default_model: lm}
- {name: hostless, type: generic}
"""


def upstream_of(processor: str) -> Upstream:
    text = PROVIDERS + f"routes: [{{provider: remote, processors: [{processor}]}}]\n"
    (p,) = compile_config(load_text(text), {}).routes.routes[0].processors
    if isinstance(p, LlmGuard):
        return p.client.chat.upstream
    assert isinstance(p, LlmRewrite)
    return p.client.upstream


def test_own_host_for_both_processors() -> None:
    g = upstream_of(f"{{llm_guard: {{host: g.test, api_key: {GUARD_KEY}, timeout: 2s}}}}")
    assert (g.base_url, g.path, g.timeout_s, g.tokens) == (
        "https://g.test",
        DEFAULT_CHAT_PATH,
        2,
        None,
    )
    assert g.api_key == GUARD_KEY and GUARD_KEY not in repr(g)
    r = upstream_of("{llm_rewrite: {host: r.test, port: 8080, path: /v1/chat, model: m}}")
    assert (r.base_url, r.path, r.api_key) == ("http://r.test:8080", "/v1/chat", "")


def test_provider_reference_shares_the_pool() -> None:
    text = (
        PROVIDERS + "routes: [{provider: remote, processors: [{llm_guard: {provider: remote}}]}]\n"
    )
    rt = compile_config(load_text(text), {})
    (g,) = rt.routes.routes[0].processors
    assert isinstance(g, LlmGuard)
    up = g.client.chat.upstream
    assert up.tokens is rt.providers["remote"].tokens and up.api_key == ""
    assert (up.base_url, up.path) == (
        "https://dashscope.aliyuncs.com",
        "/compatible-mode/v1/chat/completions",
    )


def test_provider_reference_scheme_port_and_default_model() -> None:
    r = upstream_of("{llm_rewrite: {provider: local}}")
    assert (r.base_url, r.path, r.tokens) == ("http://127.0.0.1:8000", "/v1/chat/completions", None)
    assert r.default_model == "lm"
    r = upstream_of("{llm_rewrite: {provider: local, tls: true}}")
    assert r.base_url == "https://127.0.0.1:8000"


def problems(processor: str) -> dict[str, str]:
    text = PROVIDERS + f"routes: [{{provider: remote, processors: [{processor}]}}]\n"
    with pytest.raises(ConfigError) as e:
        compile_config(load_text(text), {})
    return dict(e.value.problems)


@pytest.mark.parametrize("kind", ["llm_guard", "llm_rewrite"])
@pytest.mark.parametrize(
    ("settings", "field", "words"),
    [
        ("{provider: nope}", "provider", "no provider named 'nope'"),
        ("{provider: hostless}", "provider", "has no host"),
        ("{api_key: k, model: m}", "host", "is required"),
        ("{host: h, port: 70000, api_key: k, model: m}", "port", "1-65535"),
        ("{host: h, path: v1/chat, api_key: k, model: m}", "path", "must start with '/'"),
        ("{host: h, timeout: 0s, api_key: k, model: m}", "timeout", "positive"),
        ("{host: h, on_error: maybe, api_key: k, model: m}", "on_error", "'maybe'"),
    ],
)
def test_errors_name_the_field(kind: str, settings: str, field: str, words: str) -> None:
    found = problems(f"{{{kind}: {settings}}}")
    path = f"routes[0].processors[0].{kind}.{field}"
    assert words in found[path], found
    assert GUARD_KEY not in str(found)


def test_only_the_guard_requires_a_key_and_only_the_rewriter_a_model() -> None:
    found = problems("{llm_guard: {host: h}}")
    assert found == {"routes[0].processors[0].llm_guard.api_key": "is required"}
    found = problems("{llm_rewrite: {host: h}}")
    assert found == {"routes[0].processors[0].llm_rewrite.model": "is required"}
