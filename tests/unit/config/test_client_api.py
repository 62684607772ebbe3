"""A route's client_api: the values accepted, and the errors naming the field."""

from __future__ import annotations

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text

PROVIDERS = """
providers:
- {name: q, type: qwen, api_tokens: [k]}
- {name: c, type: claude, api_tokens: [k]}
- {name: q-orig, type: qwen, api_tokens: [k], protocol: original}
- {name: c-orig, type: claude, api_tokens: [k], protocol: original}
"""


def problems(routes: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as e:
        compile_config(load_text(PROVIDERS + routes, "cfg"), {})
    return e.value.problems


@pytest.mark.parametrize("api", ["openai", "anthropic", "auto"])
@pytest.mark.parametrize("provider", ["q", "c", "c-orig"])
def test_accepted(api: str, provider: str) -> None:
    rt = compile_config(
        load_text(PROVIDERS + f"routes: [{{name: r, provider: {provider}, client_api: {api}}}]"),
        {},
    )
    assert rt.routes.routes[0].client_api == api


def test_unknown_value_names_the_field_and_the_choices() -> None:
    ((where, msg),) = problems("routes: [{name: r, provider: q, client_api: claude}]")
    assert where.endswith("routes[0].client_api")
    assert "openai, ollama, anthropic, responses, auto" in msg and "'claude'" in msg


@pytest.mark.parametrize("api", ["anthropic", "auto"])
def test_original_protocol_needs_a_claude_provider(api: str) -> None:
    ((where, msg),) = problems(f"routes: [{{name: r, provider: q-orig, client_api: {api}}}]")
    assert where.endswith("routes[0].client_api")
    assert "'q-orig'" in msg and "claude" in msg
