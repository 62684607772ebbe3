"""The per-request log line: what it carries, and never a prompt or a key."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from extproc.core.record import ExchangeRecord
from extproc.core.request import RequestContext
from extproc.observability.logs import JsonFormatter, PromptCapture, log_exchange
from extproc.serving.options import ServeOptions
from extproc.serving.server import Server
from extproc.usage import Usage
from support import runtime

KEY = "ck-SECRET-9f8e7d"
CONFIG = f"""
providers: [{{name: q, type: qwen, api_tokens: [sk-PROVIDER-SECRET]}}]
routes: [{{name: r, provider: q, auth: {{required: true, key_sources: ["body:key"]}}}}]
consumers: [{{name: alice, keys: [{KEY}], token_budget: 50}}]
observability: {{debug_log_prompts: DEBUG}}
"""


def capture_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    fmt = JsonFormatter()
    return [orjson.loads(fmt.format(r)) for r in caplog.records if r.name == "extproc.requests"]


def record() -> ExchangeRecord:
    return ExchangeRecord(
        request_id="req-1",
        route="r",
        provider="q",
        consumer="alice",
        endpoint="chat",
        model_requested="m",
        model_served="m2",
        status=200,
        guard="allow",
        usage=Usage(3, 4, 7),
        started=1.0,
        first_byte=1.1,
        ended=1.5,
    )


def test_line_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "extproc.requests")
    log_exchange(record())
    (line,) = capture_lines(caplog)
    for k, v in {
        "request_id": "req-1",
        "route": "r",
        "provider": "q",
        "consumer": "alice",
        "status": 200,
        "guard": "allow",
        "blocked_reason": "",
        "input_tokens": 3,
        "output_tokens": 4,
        "total_tokens": 7,
        "duration_ms": 500.0,
    }.items():
        assert line[k] == v, k
    assert "prompts" not in line


def test_prompt_capture_masks_keys() -> None:
    rt = runtime(CONFIG.replace("DEBUG", "true"))
    pc = PromptCapture(k for k, _ in rt.consumer_keys)
    route = rt.routes.routes[0]
    ctx = RequestContext(
        route,
        {"x-request-id": "req-1"},
        "chat",
        {"messages": [{"role": "user", "content": f"my key is {KEY}"}], "key": KEY},
    )
    pc.capture(ctx)
    assert pc.pop(record()) == ["my key is [redacted]"]
    assert pc.pop(record()) is None


@pytest.mark.parametrize("debug", [False, True])
async def test_server_hooks_log_and_charge(caplog: pytest.LogCaptureFixture, debug: bool) -> None:
    caplog.set_level(logging.INFO, "extproc.requests")
    rt = runtime(CONFIG.replace("DEBUG", str(debug).lower()))
    srv = Server(rt, ServeOptions(metrics_port=0))
    assert srv.authenticate is not None
    route = rt.routes.routes[0]
    ctx = RequestContext(
        route,
        {"x-request-id": "req-1"},
        "chat",
        {"messages": [{"role": "user", "content": "hello there"}], "key": KEY},
    )
    assert await srv.authenticate(ctx) is None and ctx.consumer == "alice"
    rec = record()
    # As the exchange does: the admission's reservation goes in the record.
    rec.reservation = ctx.annotations["budget_reservation"]
    assert rec.reservation is not None and rec.reservation.tokens > 7
    srv.on_done(rec)
    (line,) = capture_lines(caplog)
    assert ("prompts" in line) is debug
    if debug:
        assert line["prompts"] == ["hello there"]
    text = orjson.dumps(line).decode()
    assert KEY not in text and "sk-PROVIDER-SECRET" not in text
    # The reservation was settled to the record's total tokens (by a task, as for every store).
    from extproc.budget import MemoryBudget

    await asyncio.gather(*srv._charges)
    assert isinstance(srv.budget, MemoryBudget) and (await srv.budget.usage("alice")).used == 7
    assert (
        srv.metrics.registry.get_sample_value(
            "llm_extproc_requests_total", {"route": "r", "provider": "q", "status_class": "2xx"}
        )
        == 1
    )
    await srv.stop()


def test_buffered_handler_batches_info_and_writes_warnings_at_once() -> None:
    import io

    from extproc.observability.logs import BufferedHandler

    out = io.StringIO()
    h = BufferedHandler(out, interval=3600)
    h.setFormatter(JsonFormatter())
    lg = logging.getLogger("test.buffered")
    lg.propagate = False
    lg.addHandler(h)
    lg.setLevel(logging.INFO)
    try:
        lg.info("one")
        lg.info("two")
        assert out.getvalue() == ""  # held until the interval, the size cap, or a warning
        lg.warning("three")
        lines = [orjson.loads(x)["msg"] for x in out.getvalue().splitlines()]
        assert lines == ["one", "two", "three"]
        lg.info("four")
        h.close()
        assert orjson.loads(out.getvalue().splitlines()[-1])["msg"] == "four"
    finally:
        lg.removeHandler(h)


def test_buffered_handler_flushes_on_its_interval() -> None:
    import io
    import time

    from extproc.observability.logs import BufferedHandler

    out = io.StringIO()
    h = BufferedHandler(out, interval=0.05)
    h.setFormatter(JsonFormatter())
    h.handle(logging.LogRecord("x", logging.INFO, __file__, 1, "tick", None, None))
    deadline = time.monotonic() + 5
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    h.close()
    assert orjson.loads(out.getvalue())["msg"] == "tick"


def test_fallback_request_and_attempt_lines(caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses

    from extproc.observability.logs import log_attempt

    caplog.set_level(logging.INFO, "extproc.requests")
    log_exchange(record())
    log_exchange(dataclasses.replace(record(), attempts=2, attempt_log="1:q:500,2:claude:200"))
    log_attempt(dataclasses.replace(record(), attempt=1, status=500, usage=None))
    plain, fallback, attempt = capture_lines(caplog)
    assert "attempts" not in plain and "attempt_statuses" not in plain
    assert fallback["msg"] == "request" and fallback["attempts"] == 2
    assert fallback["attempt_statuses"] == [
        {"attempt": 1, "provider": "q", "status": 500},
        {"attempt": 2, "provider": "claude", "status": 200},
    ]
    assert attempt["msg"] == "attempt"
    assert (attempt["attempt"], attempt["status"], attempt["request_id"]) == (1, 500, "req-1")
    assert "total_tokens" not in attempt  # tokens are the request's, counted once


async def test_server_does_not_charge_an_attempt(caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses

    from extproc.budget import MemoryBudget

    caplog.set_level(logging.INFO, "extproc.requests")
    srv = Server(runtime(CONFIG.replace("DEBUG", "false")), ServeOptions())
    assert isinstance(srv.budget, MemoryBudget)
    srv.on_done(dataclasses.replace(record(), attempt=2))
    assert not srv._charges  # no charge started
    ((line,)) = capture_lines(caplog)
    assert line["msg"] == "attempt"
    srv.on_done(dataclasses.replace(record(), attempts=2))  # the request: charged
    await asyncio.gather(*srv._charges)
    assert (await srv.budget.usage("alice")).used == 7
    await srv.stop()


def test_direct_request_line_has_the_formatters_shape(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In production (setup_logging's handler alone) the line skips the LogRecord;
    it must be the line JsonFormatter would have written."""
    import io
    import sys

    from extproc.observability import logs

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    try:
        logs.setup_logging("info")
        log_exchange(record())
        direct = root.handlers[0]
        direct.flush()
        line = orjson.loads(out.getvalue())
        # The same record through a LogRecord (a capture handler present too).
        root.addHandler(caplog.handler)
        caplog.set_level(logging.INFO, logger="extproc.requests")
        log_exchange(record())
        direct.flush()
        via_record = capture_lines(caplog)[-1]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        direct.close()
    # Both runs reach stderr, the second through the formatter.
    assert out.getvalue().count("\n") == 2
    line.pop("ts"), via_record.pop("ts")
    assert line == via_record
    assert list(line)[:3] == ["level", "logger", "msg"]
    assert KEY not in out.getvalue()
