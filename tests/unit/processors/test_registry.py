"""Processors configured by name from the registry (max_tokens_cap)."""

from __future__ import annotations

import orjson
import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text
from extproc.core.events import Continue, RequestBody, RequestHeaders
from extproc.core.exchange import Exchange

CONFIG = """
hosts: [a.com]
api_key: k
processors:
- custom: {name: max_tokens_cap, config: {max_tokens: 256, fill: FILL}}
"""


async def upstream_body(body: dict, fill: bool = False) -> dict | None:
    rt = compile_config(load_text(CONFIG.replace("FILL", str(fill).lower())), {})
    ex = Exchange(rt)
    await ex.handle(RequestHeaders({":authority": "a.com", ":path": "/v1/chat/completions"}, False))
    d = await ex.handle(RequestBody(orjson.dumps(body), True))
    assert isinstance(d, Continue)
    return orjson.loads(d.body) if d.body is not None else None


MSGS = [{"role": "user", "content": "hi"}]


async def test_cap_lowers_max_tokens_above_it() -> None:
    assert (await upstream_body({"messages": MSGS, "max_tokens": 4000}))["max_tokens"] == 256  # type: ignore[index]
    out = await upstream_body({"messages": MSGS, "max_completion_tokens": 9000})
    assert out is not None and out["max_completion_tokens"] == 256


async def test_cap_keeps_smaller_values_and_the_exact_bytes() -> None:
    assert await upstream_body({"messages": MSGS, "max_tokens": 100}) is None


async def test_fill_sets_the_cap_when_the_client_sent_none() -> None:
    assert await upstream_body({"messages": MSGS}) is None
    out = await upstream_body({"messages": MSGS}, fill=True)
    assert out is not None and out["max_tokens"] == 256


@pytest.mark.parametrize(
    ("proc", "field", "words"),
    [
        ("{name: nosuch}", "processors[0].custom.name", "nosuch"),
        (
            "{name: max_tokens_cap, config: {max_tokens: -1}}",
            "processors[0].custom.config",
            "at least 1",
        ),
        (
            "{name: max_tokens_cap, config: {max_tokens: 5, colour: red}}",
            "processors[0].custom.config",
            "colour",
        ),
    ],
)
def test_config_errors_name_the_field(proc: str, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        compile_config(
            load_text(f"hosts: [a.com]\napi_key: k\nprocessors:\n- custom: {proc}\n", "cfg"), {}
        )
    found = dict(e.value.problems)
    assert words in found[f"cfg.{field}"]


async def test_ollama_requests_cap_options_num_predict() -> None:
    from extproc.core.request import OLLAMA_GENERATE, RequestContext
    from extproc.processors.max_tokens_cap import MaxTokensCap

    route = compile_config(load_text("hosts: [a.com]\napi_key: k\n"), {}).routes.routes[0]
    p = MaxTokensCap.from_config({"max_tokens": 50, "fill": True})
    c = RequestContext(route, {}, OLLAMA_GENERATE, {"prompt": "x", "options": {"num_predict": 500}})
    await p.process(c)
    assert c.body["options"]["num_predict"] == 50 and c.modified
    c = RequestContext(route, {}, OLLAMA_GENERATE, {"prompt": "x"})
    await p.process(c)
    assert c.body["options"] == {"num_predict": 50}


async def test_max_tokens_cap_follows_each_apis_field() -> None:
    from extproc.core.request import ANTHROPIC_MESSAGES, CHAT, OLLAMA_CHAT, RequestContext
    from extproc.processors.max_tokens_cap import MaxTokensCap

    route = compile_config(load_text("hosts: [a.com]\napi_key: k\n"), {}).routes.routes[0]
    fill = MaxTokensCap.from_config({"max_tokens": 50, "fill": True})
    keep = MaxTokensCap.from_config({"max_tokens": 50})
    c = RequestContext(route, {}, CHAT, {"messages": [], "max_completion_tokens": 90})
    await fill.process(c)
    assert c.body == {"messages": [], "max_completion_tokens": 50} and c.modified
    c = RequestContext(route, {}, ANTHROPIC_MESSAGES, {"messages": []})
    await fill.process(c)
    assert c.body == {"messages": [], "max_tokens": 50}
    # Ollama: options that are not an object are replaced only to fill the cap in.
    c = RequestContext(route, {}, OLLAMA_CHAT, {"messages": [], "options": "x"})
    await keep.process(c)
    assert c.body == {"messages": [], "options": "x"} and not c.modified
    await fill.process(c)
    assert c.body == {"messages": [], "options": {"num_predict": 50}} and c.modified
    c = RequestContext(route, {}, OLLAMA_CHAT, {"messages": [], "max_tokens": 900})
    await keep.process(c)
    assert c.body["max_tokens"] == 900 and not c.modified  # not Ollama's field


async def test_responses_requests_cap_max_output_tokens() -> None:
    from extproc.core.request import RESPONSES, RequestContext
    from extproc.processors.max_tokens_cap import MaxTokensCap

    route = compile_config(load_text("hosts: [a.com]\napi_key: k\n"), {}).routes.routes[0]
    p = MaxTokensCap.from_config({"max_tokens": 50, "fill": True})
    c = RequestContext(route, {}, RESPONSES, {"input": "x", "max_output_tokens": 500})
    await p.process(c)
    assert c.body["max_output_tokens"] == 50 and c.modified
    c = RequestContext(route, {}, RESPONSES, {"input": "x"})
    await p.process(c)
    assert c.body == {"input": "x", "max_output_tokens": 50}
