"""Exchange inputs that raised instead of deciding (found by tests/fuzz)."""

from __future__ import annotations

import orjson
import pytest

from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.core.events import (
    Continue,
    Reject,
    RequestBody,
    RequestHeaders,
    ResponseBody,
    ResponseHeaders,
)
from extproc.core.exchange import Exchange, ExchangeRecord

CONFIG = """
providers:
- {name: c, type: claude, api_tokens: [k]}
- {name: g, type: gemini, api_tokens: [k]}
routes:
- {name: claude, match: {hosts: [claude.test]}, provider: c}
- {name: gemini, match: {hosts: [gemini.test]}, provider: g}
"""


@pytest.mark.parametrize("host", ["claude.test", "gemini.test"])
@pytest.mark.parametrize("upstream", [b"not json", b"[1, 2]", b'"text"', b""])
async def test_upstream_body_that_is_no_json_object_is_a_502(host: str, upstream: bytes) -> None:
    # The translators raise TranslationError for it; the exchange let it escape.
    done: list[ExchangeRecord] = []
    ex = Exchange(compile_config(load_text(CONFIG), {}), on_done=done.append)
    h = {":authority": host, ":path": "/v1/chat/completions", "content-type": "application/json"}
    await ex.handle(RequestHeaders(h, False))
    body = {"model": "m", "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    assert isinstance(await ex.handle(RequestBody(orjson.dumps(body), True)), Continue)
    rh = {":status": "200", "content-type": "application/json"}
    await ex.handle(ResponseHeaders(rh, False))
    d = await ex.handle(ResponseBody(upstream, True))
    assert isinstance(d, Reject) and d.status == 502
    err = orjson.loads(d.body)["error"]
    assert err["code"] == "bad_upstream" and "not a JSON object" in err["message"]
    (rec,) = done  # the record says what the client got
    assert rec.upstream_error and rec.status == 502 and rec.blocked_reason == "bad_upstream"
