import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text

PLUGIN_JSON = (
    '{"hosts": ["dashscope.aliyuncs.com"], "api_key": "k", "allow_patterns": [], '
    '"deny_patterns": [".*账号.*"], "intelligent_guard": {"host": "h", "port": 443, '
    '"path": "/p", "model": "qwen-turbo", "api_key": "g"}}'
)


def problems(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as e:
        compile_config(load_text(text, "cfg"), env or {})
    return e.value.problems


def test_plugin_config_as_json_document() -> None:
    rt = compile_config(load_text(PLUGIN_JSON), {})
    assert rt.routes.routes[0].hosts == ("dashscope.aliyuncs.com",)


def test_camel_case_keys_work_like_snake_case() -> None:
    rt = compile_config(load_text('hosts: [a.com]\napiKey: k\ndenyPatterns: ["x"]\n'), {})
    assert [p.name for p in rt.routes.routes[0].processors] == ["regex_guard"]


def test_unknown_field_is_an_error_naming_it() -> None:
    ((path, msg),) = problems("hosts: [a.com]\napi_key: k\ndeny_pattern: [x]\n")
    assert path == "cfg"
    assert "deny_pattern" in msg


def test_unknown_nested_field_names_its_place() -> None:
    ((_, msg),) = problems("hosts: [a.com]\nintelligent_guard: {host: h, api_key: k, modle: x}\n")
    assert "modle" in msg and "IntelligentGuard" in msg


def test_bad_regex_is_an_error_naming_the_pattern_and_field() -> None:
    ((path, msg),) = problems('hosts: [a.com]\ndeny_patterns: ["ok", "(?<=a)b"]\n')
    assert path == "cfg.deny_patterns[1]"
    assert "(?<=a)b" in msg


def test_guard_without_key_is_an_error() -> None:
    ((path, msg),) = problems("hosts: [a.com]\nintelligent_guard: {host: h, port: 443}\n")
    assert path == "cfg.intelligent_guard.api_key"
    assert "required" in msg


def test_every_error_is_reported_at_once() -> None:
    found = problems('hosts: ["a b"]\ndeny_patterns: ["("]\nallow_patterns: ["["]\n')
    assert len(found) == 3


def test_invalid_yaml_reports_line() -> None:
    ((_, msg),) = problems("hosts: [a.com\n")
    assert "line" in msg


def test_durations_are_strings_like_envoy() -> None:
    text = "hosts: [a.com]\nintelligent_guard: {host: h, api_key: k, timeout: 2.5s}\n"
    rt = compile_config(load_text(text), {})
    guard = rt.routes.routes[0].processors[0]
    assert guard.client is not None  # type: ignore[attr-defined]
    ((_, msg),) = problems(
        "hosts: [a.com]\nintelligent_guard: {host: h, api_key: k, timeout: 10}\n"
    )
    assert "timeout" in msg or "Duration" in msg


def test_secret_from_environment_and_missing_variable() -> None:
    rt = compile_config(load_text('hosts: [a.com]\napi_key: "${KEY}"\n'), {"KEY": "from-env"})
    assert rt.providers["plugin-0"].tokens is not None
    assert rt.providers["plugin-0"].tokens.pick() == "from-env"
    ((path, msg),) = problems('hosts: [a.com]\napi_key: "${NOPE}"\n')
    assert path == "cfg.api_key" and "NOPE" in msg


def test_errors_never_echo_secret_values() -> None:
    found = problems(
        'hosts: [a.com]\napi_key: "sk-VERYSECRET"\nintelligent_guard: {api_key: "g-SECRET2"}\n'
    )
    text = str(found)
    assert "VERYSECRET" not in text and "SECRET2" not in text


def test_unknown_kind_is_an_error() -> None:
    ((path, msg),) = problems("kind: WasmPlugin\nspec: {}\n")
    assert path == "cfg.kind" and "WasmPlugin" in msg


def test_native_route_references_are_checked() -> None:
    text = """
providers:
- {name: a, type: qwen, api_tokens: [k]}
- {name: a, type: qwen, api_tokens: [k]}
- {name: b, type: nosuch}
routes:
- {name: r, match: {hosts: [x.com]}, provider: missing}
"""
    found = dict(problems(text))
    assert "duplicate" in found["providers[1].name"]
    assert "nosuch" in found["providers[2].type"]
    assert "missing" in found["routes[0].provider"]


def test_model_mapping_mapping_form_keeps_order() -> None:
    text = """
providers:
- name: p
  type: qwen
  api_tokens: [k]
  model_mapping:
    "gpt-4*": qwen-max
    "gpt-*": qwen-plus
    "*": qwen-turbo
routes:
- {name: r, match: {hosts: [x.com]}, provider: p}
"""
    rt = compile_config(load_text(text), {})
    m = rt.providers["p"].mapper
    assert m is not None
    assert (m.map("gpt-4o"), m.map("gpt-3.5"), m.map("llama")) == (
        "qwen-max",
        "qwen-plus",
        "qwen-turbo",
    )


def test_zero_durations_disable_or_are_rejected() -> None:
    rt = compile_config(
        load_text("hosts: [a.com]\nintelligent_guard: {host: h, api_key: k, cache_ttl: 0s}\n"), {}
    )
    assert rt.routes.routes[0].processors[0].client._cache is None  # type: ignore[attr-defined]
    found = dict(
        problems("hosts: [a.com]\nintelligent_guard: {host: h, api_key: k, timeout: 0s}\n")
    )
    assert "positive" in found["cfg.intelligent_guard.timeout"]
    found = dict(problems("routes: []\nbudgets: {window: 0s}\n"))
    assert "positive" in found["budgets.window"]


def test_explicit_false_is_not_the_default() -> None:
    text = """
providers: [{name: p, type: qwen, api_tokens: [k]}]
routes: [{name: r, match: {hosts: [x.com]}, provider: p, allow_streaming: false, rewrite: false}]
"""
    (route,) = compile_config(load_text(text), {}).routes.routes
    assert (
        route.allow_streaming is False
        and route.rewrite is False
        and route.allow_non_streaming is True
    )


@pytest.mark.parametrize(
    "text",
    [
        'providers:\n- {name: p, type: qwen, api_tokens: "sk-SECRETSTR"}\nroutes: []\n',
        'hosts: [a.com]\napi_key: ["sk-SECRETSTR"]\n',
        'hosts: [a.com]\nintelligent_guard: {host: h, api_key: {nested: "sk-SECRETSTR"}}\n',
        "consumers:\n- {name: c, keys: sk-SECRETSTR}\nroutes: []\n",
    ],
)
def test_parse_errors_redact_values_of_credential_fields(text: str) -> None:
    found = problems(text)
    assert found
    assert "SECRETSTR" not in str(found)


def test_a_short_credential_value_does_not_mangle_the_message() -> None:
    # The value is still redacted where it stands alone; words around it stay whole.
    found = str(problems('providers:\n- {name: p, type: qwen, api_tokens: "r"}\nroutes: []\n'))
    assert "which is [redacted]" in found
    assert "Failed to parse api_tokens field: repeated field api_tokens" in found
