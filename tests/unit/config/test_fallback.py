"""Route fallback/retry config: the chain, the defaults, every error by field path."""

from __future__ import annotations

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.fallback import RETRY_ON
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime

PROVIDERS = """
providers:
- {name: qwen, type: qwen, api_tokens: [sk-q]}
- {name: qwen2, type: qwen, api_tokens: [sk-q2]}
- {name: claude, type: claude, api_tokens: [sk-c]}
- {name: llama, type: ollama, base_url: "http://127.0.0.1:11434"}
"""


def compile_routes(routes: str) -> Runtime:
    return compile_config(load_text(PROVIDERS + "routes:\n" + routes, "cfg"), {})


def problems(routes: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as e:
        compile_routes(routes)
    return e.value.problems


def test_a_route_without_fallback_or_retry_has_no_chain() -> None:
    rt = compile_routes("- {name: r, provider: qwen}\n")
    assert rt.routes.routes[0].fallback is None


def test_fallback_chain_starts_with_the_weighted_providers_then_the_list() -> None:
    rt = compile_routes(
        "- name: r\n"
        "  providers: [{provider: qwen, weight: 3}, {provider: qwen2, weight: 1}]\n"
        "  fallback: [claude, qwen]\n"
    )
    fb = rt.routes.routes[0].fallback
    assert fb is not None
    assert fb.groups == ((("qwen", 3), ("qwen2", 1)), (("claude", 1),), (("qwen", 1),))
    assert [p.name for p in fb.providers] == ["qwen", "qwen2", "claude"]
    # Defaults: every condition, one attempt per group, no per-try timeout.
    assert fb.retry_on == RETRY_ON
    assert fb.max_attempts == 3
    assert fb.per_try_timeout_s == 0.0


def test_retry_alone_retries_the_same_providers() -> None:
    rt = compile_routes(
        "- name: r\n"
        "  provider: qwen\n"
        "  retry: {retry_on: ['429'], max_attempts: 2, per_try_timeout: 2.5s}\n"
    )
    fb = rt.routes.routes[0].fallback
    assert fb is not None
    assert fb.groups == ((("qwen", 1),),)
    assert (fb.retry_on, fb.max_attempts, fb.per_try_timeout_s) == (("429",), 2, 2.5)


def test_errors_name_their_field_paths() -> None:
    got = problems(
        "- name: r\n"
        "  provider: qwen\n"
        "  fallback: [nope, claude]\n"
        "  rewrite: false\n"
        "  retry: {retry_on: ['5xx', '404'], max_attempts: 11, per_try_timeout: 0s}\n"
    )
    paths = {p for p, _ in got}
    assert paths == {
        "routes[0].fallback[0]",
        "routes[0].rewrite",
        "routes[0].retry.retry_on[1]",
        "routes[0].retry.max_attempts",
        "routes[0].retry.per_try_timeout",
    }
    assert any("no provider named 'nope'" in m for _, m in got)
    assert any("'404'" in m and "429" in m for _, m in got)


def test_an_ollama_route_falls_back_only_to_ollama_providers() -> None:
    got = problems("- {name: r, provider: llama, client_api: ollama, fallback: [claude]}\n")
    assert got == [
        (
            "routes[0].fallback[0]",
            "an Ollama-API route needs ollama providers; 'claude' is 'claude'",
        )
    ]


def test_order_puts_groups_whose_keys_all_cool_down_last() -> None:
    rt = compile_routes(
        "- name: r\n"
        "  providers: [{provider: qwen, weight: 3}, {provider: qwen2, weight: 1}]\n"
        "  fallback: [claude, llama]\n"
    )
    fb = rt.routes.routes[0].fallback
    assert fb is not None
    assert fb.order() == (0, 1, 2)
    pools = {n: rt.providers[n].tokens for n in ("qwen", "qwen2", "claude")}
    pools["qwen"].report("sk-q", 429)  # type: ignore[union-attr]
    assert fb.order() == (0, 1, 2)  # qwen2 still serves the weighted group
    pools["qwen2"].report("sk-q2", 429)  # type: ignore[union-attr]
    pools["claude"].report("sk-c", 401)  # type: ignore[union-attr]
    # llama needs no key: it is always ready.
    assert fb.order() == (2, 0, 1)
