from __future__ import annotations

import os
from pathlib import Path

import pytest

from extproc.providers.secrets import SecretError, resolve_secret

SECRET = "sk-SECRET-value-123"
ENV = {"API_KEY": SECRET, "HOST_PART": "eu", "EMPTY": ""}
FIELD = "providers[0].api_tokens[1]"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain-literal", "plain-literal"),
        ("${API_KEY}", SECRET),
        ("Bearer ${API_KEY}", f"Bearer {SECRET}"),
        ("${HOST_PART}-${API_KEY}!", f"eu-{SECRET}!"),
        ("${EMPTY}", ""),
        ("$API_KEY", "$API_KEY"),  # only the braced form is a reference
        ("a${b-c}d", "a${b-c}d"),  # not a variable name: literal text
        ("${", "${"),
        ("${}", "${}"),
    ],
)
def test_literal_and_embedded_references(value: str, expected: str) -> None:
    assert resolve_secret(value, None, None, FIELD, environ=ENV) == expected


def test_env_by_name() -> None:
    assert resolve_secret(None, "API_KEY", None, FIELD, environ=ENV) == SECRET


def test_defaults_to_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_EXTPROC_TEST_SECRET", SECRET)
    assert resolve_secret(None, "LLM_EXTPROC_TEST_SECRET", None, FIELD) == SECRET
    assert resolve_secret("x${LLM_EXTPROC_TEST_SECRET}", None, None, FIELD) == f"x{SECRET}"
    assert os.environ["LLM_EXTPROC_TEST_SECRET"] == SECRET


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"{SECRET}\n", SECRET),
        (f"{SECRET}\r\n", SECRET),
        (f"{SECRET}\n\n", SECRET),
        (SECRET, SECRET),
        (f"  {SECRET} \n", f"  {SECRET} "),  # only newlines are stripped
        ("line1\nline2\n", "line1\nline2"),
    ],
)
def test_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "token"
    path.write_bytes(content.encode())
    assert resolve_secret(None, None, str(path), FIELD) == expected


def test_empty_literal_is_allowed() -> None:
    assert resolve_secret("", None, None, FIELD) == ""


def _assert_safe(error: SecretError) -> str:
    message = str(error)
    assert SECRET not in message
    assert "SECRET" not in repr(error)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    assert message.startswith(FIELD + ":")
    return message


@pytest.mark.parametrize(
    ("value", "env", "needle"),
    [
        ("${MISSING}", None, "environment variable MISSING is not set"),
        (f"{SECRET}${{MISSING}}", None, "environment variable MISSING is not set"),
        (None, "MISSING", "environment variable MISSING is not set"),
        (None, "not a name", "'not a name' is not a valid environment variable name"),
        (None, None, "no secret given"),
        (SECRET, "API_KEY", "set only one of value, env"),
    ],
)
def test_errors_name_field_and_variable(value: str | None, env: str | None, needle: str) -> None:
    with pytest.raises(SecretError) as info:
        resolve_secret(value, env, None, FIELD, environ=ENV)
    assert needle in _assert_safe(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(SecretError) as info:
        resolve_secret(None, None, str(path), FIELD)
    assert f"secret file {path} does not exist" in _assert_safe(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(SecretError) as info:
        resolve_secret(None, None, str(tmp_path), FIELD)
    assert f"cannot read secret file {tmp_path}" in _assert_safe(info.value)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "bin"
    path.write_bytes(b"\xff\xfe" + SECRET.encode())
    with pytest.raises(SecretError) as info:
        resolve_secret(None, None, str(path), FIELD)
    assert "is not UTF-8 text" in _assert_safe(info.value)


def test_value_and_file_conflict(tmp_path: Path) -> None:
    with pytest.raises(SecretError) as info:
        resolve_secret(SECRET, None, str(tmp_path / "f"), FIELD)
    assert "set only one of value, file" in _assert_safe(info.value)


def test_nul_byte_in_file_path() -> None:
    # Found by tests/fuzz: open() raised ValueError, not an error naming the field.
    with pytest.raises(SecretError) as info:
        resolve_secret(None, None, "/run/secrets/a\x00b", FIELD)
    assert "is not a valid path" in _assert_safe(info.value)
