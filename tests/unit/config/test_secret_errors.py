"""A secret that cannot be resolved is reported once, under its field path."""

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text

CONFIG = """
providers:
- {name: a, type: qwen, api_tokens: [k]}
- {name: b, type: claude, api_tokens: ["${ANTHROPIC_API_KEY}"]}
routes:
- {name: r, match: {hosts: [a.com]}, provider: b}
"""


def test_missing_variable_names_the_field_path_once() -> None:
    with pytest.raises(ConfigError) as e:
        compile_config(load_text(CONFIG, "cfg"), {})
    ((path, msg),) = e.value.problems
    assert path == "providers[1].api_tokens[0]"
    assert msg == "environment variable ANTHROPIC_API_KEY is not set"
    assert str(e.value) == (
        "providers[1].api_tokens[0]: environment variable ANTHROPIC_API_KEY is not set"
    )


@pytest.mark.parametrize(
    ("snippet", "field"),
    [
        ("api_key_env: NOPE", "cfg.api_key"),
        ("api_key_file: /nonexistent/secret", "cfg.api_key"),
    ],
)
def test_env_and_file_sources_name_the_field_path_once(snippet: str, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        compile_config(load_text(f"hosts: [a.com]\n{snippet}\n", "cfg"), {})
    ((path, msg),) = e.value.problems
    assert path == field
    assert field not in msg
