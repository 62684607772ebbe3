"""Crashes tests/fuzz found in the config compiler: each is a ConfigError now."""

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as e:
        compile_config(load_text(text, "cfg"), {})
    return e.value.problems


def test_negative_token_cooldown() -> None:
    # TokenPool raised ValueError("cooldown_s must be >= 0").
    ((path, msg),) = problems(
        "providers: [{name: p, type: qwen, api_tokens: [k], token_cooldown: -3s}]\n"
        "routes: [{name: r, provider: p}]\n"
    )
    assert path == "providers[0].token_cooldown" and "negative" in msg


def test_nul_byte_in_a_secret_file_path() -> None:
    # open() raised ValueError("embedded null byte").
    ((path, msg),) = problems('hosts: [a.com]\napi_key_file: "/run/a\\0b"\n')
    assert path == "cfg.api_key" and "not a valid path" in msg
