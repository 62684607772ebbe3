"""A Generation: everything a new stream takes from one config."""

from __future__ import annotations

from extproc.consumers.auth import Authenticator
from extproc.core.record import ExchangeRecord
from extproc.core.request import RequestContext
from extproc.observability.logs import PromptCapture
from extproc.serving.generation import build_generation
from support import runtime as compile_runtime

KEY = "ck-gen-5d1f0a"
CONFIG = f"""
providers: [{{name: q, type: qwen, api_tokens: [sk-p]}}]
routes: [{{name: r, provider: q, auth: {{required: true, key_sources: ["body:key"]}}}}]
consumers: [{{name: alice, keys: [{KEY}]}}]
observability: {{debug_log_prompts: DEBUG}}
"""


def runtime(debug: bool):  # type: ignore[no-untyped-def]
    return compile_runtime(CONFIG.replace("DEBUG", str(debug).lower()))


def test_without_prompt_logging_the_authenticator_is_the_hook() -> None:
    gen = build_generation(runtime(False), None, lambda p, r: None)
    assert gen.prompts is None
    assert isinstance(gen.authenticate, Authenticator)


async def test_with_prompt_logging_the_hook_captures_masked_texts_and_reports_them() -> None:
    reported: list[tuple[PromptCapture | None, ExchangeRecord]] = []
    rt = runtime(True)
    gen = build_generation(rt, None, lambda p, r: reported.append((p, r)))
    assert gen.prompts is not None and gen.authenticate is not None
    ctx = RequestContext(
        rt.routes.routes[0],
        {"x-request-id": "req-7"},
        "chat",
        {"messages": [{"role": "user", "content": f"key {KEY}"}], "key": KEY},
    )
    assert await gen.authenticate(ctx) is None and ctx.consumer == "alice"
    rec = ExchangeRecord(request_id="req-7")
    gen.on_done(rec)
    ((prompts, got),) = reported
    # on_done reports with this generation's capture, whatever is current later.
    assert got is rec and prompts is gen.prompts
    assert prompts is not None and prompts.pop(rec) == ["key [redacted]"]


def test_a_generations_exchanges_use_its_runtime_and_hooks() -> None:
    gen = build_generation(runtime(True), None, lambda p, r: None)
    ex = gen.exchange()
    assert ex.runtime is gen.runtime and ex.authenticate is gen.authenticate
