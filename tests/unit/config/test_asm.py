"""ASM documents (the wasm plugin's config, LLMProvider, LLMRoute) become native
providers and routes; errors name the fields the user wrote."""

import pytest

from extproc.compiler.compile import compile_config
from extproc.config import asm
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text
from extproc.config.v1 import config_pb2 as pb


def problems(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as e:
        compile_config(load_text(text, "cfg"), env or {})
    return e.value.problems


PLUGIN_YAML = """
hosts: ["dashscope.aliyuncs.com", "127.0.0.1:18000"]
api_key: "sk-plugin-secret"
allow_patterns: []
deny_patterns: [".*账号.*"]
intelligent_guard:
  host: dashscope.aliyuncs.com
  port: 443
  path: /compatible-mode/v1/chat/completions
  model: qwen-turbo
  api_key: "guard-secret"
"""


def test_plugin_config_is_accepted_verbatim() -> None:
    loaded = load_text(PLUGIN_YAML)
    assert len(loaded.plugins) == 1
    rt = compile_config(loaded, {})
    (route,) = rt.routes.routes
    assert route.hosts == ("dashscope.aliyuncs.com", "127.0.0.1:18000")
    assert [p.name for p in route.processors] == ["regex_guard", "llm_guard"]
    assert route.rewrite is False


LLM_DOCS = """
apiVersion: istio.alibabacloud.com/v1beta1
kind: LLMProvider
metadata: {name: dashscope-qwen}
spec:
  host: dashscope.aliyuncs.com
  path: /compatible-mode/v1/chat/completions
  configs:
    defaultConfig:
      openAIConfig: {model: qwen-1.8b-chat, stream: false, apiKey: "${API_KEY}"}
    routeSpecificConfigs:
      vip-route:
        openAIConfig: {model: qwen-turbo, stream: true, apiKey: "${API_KEY}"}
---
apiVersion: istio.alibabacloud.com/v1beta1
kind: LLMRoute
metadata: {name: dashscope-route}
spec:
  host: test.com
  rules:
  - name: vip-route
    matches:
    - headers:
        user-type: {exact: subscriber}
    backendRefs:
    - providerHost: dashscope.aliyuncs.com
  - backendRefs:
    - providerHost: dashscope.aliyuncs.com
"""


def test_asm_llm_provider_and_route() -> None:
    rt = compile_config(load_text(LLM_DOCS), {"API_KEY": "k"})
    vip, default = rt.routes.routes
    assert vip.name == "vip-route"
    assert vip.providers[0].name == "dashscope.aliyuncs.com@vip-route"
    assert vip.providers[0].default_model == "qwen-turbo"
    assert vip.providers[0].default_stream is True
    assert default.providers[0].default_model == "qwen-1.8b-chat"
    assert default.providers[0].type == "qwen"  # derived from the host
    assert default.providers[0].base_path == "/compatible-mode/v1"
    assert rt.routes.match("test.com", "/", {"user-type": "subscriber"}) is vip
    assert rt.routes.match("test.com", "/", {"user-type": "free"}) is default
    assert rt.routes.match("other.com", "/", {}) is None


def test_llm_provider_path_must_be_chat_completions() -> None:
    doc = "kind: LLMProvider\nspec: {host: h.com, path: /v1/foo, configs: {defaultConfig: {openAIConfig: {apiKey: k}}}}\n"
    found = problems(doc)
    assert any(p.endswith("spec.path") for p, _ in found)


def test_plugin_checks_come_first_and_errors_name_the_plugins_fields() -> None:
    text = """
hosts: [a.com]
api_key: k
deny_patterns: ["x"]
intelligent_guard: {host: h, api_key: g, on_error: maybe}
processors:
- prompt_decorator: {prepend: [{role: narrator, content: c}]}
- regex_guard: {allow_patterns: ["("]}
- {}
"""
    found = dict(problems(text))
    assert set(found) == {
        "cfg.intelligent_guard.on_error",
        "cfg.processors[0].prompt_decorator.prepend[0].role",
        "cfg.processors[1].regex_guard.allow_patterns[0]",
        "cfg.processors[2]",
    }
    fixed = text.replace("on_error: maybe", "on_error: allow").replace("narrator", "system")
    fixed = fixed.replace('"("', '"y"').replace("- {}\n", "")
    (route,) = compile_config(load_text(fixed), {}).routes.routes
    assert [p.name for p in route.processors] == [
        "regex_guard",
        "llm_guard",
        "prompt_decorator",
        "regex_guard",
    ]


def test_plugin_becomes_a_hostless_provider_and_a_route_that_keeps_the_path() -> None:
    plug = load_text('hosts: [a.com]\napi_key: "${K}"\ndefault_model: m\n').plugins[0][1]
    resolved: list[str] = []

    class Sink:
        def err(self, path: str, msg: str) -> None:
            raise AssertionError((path, msg))

        def secret(self, value: str, env: str, file: str, path: str, required: bool = False) -> str:
            resolved.append(path)
            return "key-from-env"

    prov, spec = asm.plugin(plug, "cfg", 3, Sink())
    assert (prov.name, prov.type, prov.host, list(prov.api_tokens)) == (
        "plugin-3",
        "generic",
        "",
        ["key-from-env"],
    )
    assert prov.default_model == "m" and resolved == ["cfg.api_key"]
    assert spec.route.provider == "plugin-3" and spec.route.rewrite.value is False
    assert list(spec.route.match.hosts) == ["a.com"] and spec.processor_paths == ()


def test_llm_route_errors_name_the_rule() -> None:
    text = LLM_DOCS.replace("user-type: {exact: subscriber}", "user-type: {regex: '('}")
    text = text.replace("    matches:\n", "    matches:\n    - headers: {a: {exact: b}}\n")
    found = dict(problems(text, {"API_KEY": "k"}))
    # The second match of rule 0: the path names the rule, not the route made from it.
    assert list(found) == ["cfg[doc 1].spec.rules[0].match.headers['user-type'].regex"]


def test_native_route_processor_paths() -> None:
    r = pb.Route()
    r.processors.add().regex_guard.deny_patterns.append("x")
    r.processors.add()
    spec = asm.native_route(r, "routes[2]")
    assert spec.processor_paths == (
        "routes[2].processors[0].regex_guard",
        "routes[2].processors[1]",
    )
