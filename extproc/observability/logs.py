"""Structured logs: one JSON object per line, never a prompt or a key."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import IO

import orjson

from extproc.core.record import ExchangeRecord
from extproc.core.request import RequestContext

request_log = logging.getLogger("extproc.requests")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # Type and message only: a traceback's locals could hold secrets.
            out["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return orjson.dumps(out).decode()


class BufferedHandler(logging.Handler):
    """Writes formatted lines in batches: at most every `interval` seconds,
    when `max_bytes` are pending, or at once for warnings and errors.

    One write(2) per request line was a measurable share of the per-request
    cost; batching keeps the line-per-request log while Envoy, like here,
    flushes its access log on an interval too.
    """

    def __init__(self, stream: IO[str], interval: float = 0.1, max_bytes: int = 64 << 10) -> None:
        super().__init__()
        self._stream = stream
        self._pending: list[str] = []
        self._size = 0
        self._max = max_bytes
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-flush", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        self.add_line(line, urgent=record.levelno >= logging.WARNING)

    def add_line(self, line: str, urgent: bool = False) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line)
            self._size += len(line)
            urgent = urgent or self._size >= self._max
        if urgent:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._pending, self._size = self._pending, [], 0
        if lines:
            try:
                self._stream.write("".join(lines))
                self._stream.flush()
            except (OSError, ValueError):
                pass  # stderr closed at exit: nothing sensible left to do

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()


# The handler setup_logging installed: request lines go to it directly (see
# _emit) while it is still the only one.
_direct: BufferedHandler | None = None


def setup_logging(level: str = "info") -> None:
    global _direct
    handler = BufferedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _direct = handler
    root.setLevel(level.upper())
    # httpx logs full URLs at INFO; ours carry no secrets, but keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def record_fields(rec: ExchangeRecord) -> dict[str, object]:
    u = rec.usage
    return {
        "request_id": rec.request_id,
        "route": rec.route,
        "provider": rec.provider,
        "consumer": rec.consumer,
        "endpoint": rec.endpoint,
        "model_requested": rec.model_requested,
        "model_served": rec.model_served,
        "stream": rec.stream,
        "status": rec.status,
        "blocked_reason": rec.blocked_reason,
        "guard": rec.guard,
        "cache": rec.cache or None,
        "input_tokens": u.input_tokens if u else None,
        "output_tokens": u.output_tokens if u else None,
        "total_tokens": u.total_tokens if u else None,
        "duration_ms": round((rec.ended - rec.started) * 1000, 3)
        if rec.ended and rec.started
        else None,
        "ttfb_ms": round((rec.first_byte - rec.started) * 1000, 3)
        if rec.first_byte and rec.started
        else None,
        "cost_usd": rec.cost,
        "overhead_ms": {
            "request": round(rec.overhead_request * 1000, 3),
            "response": round(rec.work_response * 1000, 3),
        },
    }


def log_exchange(rec: ExchangeRecord, prompts: list[str] | None = None) -> None:
    """The request's one log line. `prompts` only with observability.debug_log_prompts."""
    if request_log.isEnabledFor(logging.INFO):
        fields = record_fields(rec)
        if rec.attempts:
            fields["attempts"] = rec.attempts
            fields["attempt_statuses"] = rec.attempt_statuses()
        if prompts is not None:
            fields["prompts"] = prompts
        _emit("request", fields)


def log_attempt(rec: ExchangeRecord) -> None:
    """One line per attempt of a fallback route (the request's own line follows)."""
    if request_log.isEnabledFor(logging.INFO):
        f = record_fields(rec)
        fields = {k: f[k] for k in _ATTEMPT_FIELDS}
        fields["attempt"] = rec.attempt
        _emit("attempt", fields)


def _emit(msg: str, fields: dict[str, object]) -> None:
    """A request log line. The request log is data, like Envoy's access log:
    while setup_logging's handler is the only one (production), the line is
    built here, in JsonFormatter's shape, and handed to it without a
    LogRecord (a measurable share of the per-request cost); any other setup
    (a test's capture handler, an embedding application) gets a LogRecord."""
    root_handlers = logging.root.handlers
    d = _direct
    if d is None or len(root_handlers) != 1 or root_handlers[0] is not d or request_log.handlers:
        request_log.info(msg, extra={"fields": fields})
        return
    line = {"ts": round(time.time(), 3), "level": "info", "logger": request_log.name, "msg": msg}
    line.update(fields)
    d.add_line(orjson.dumps(line).decode() + "\n")


_ATTEMPT_FIELDS = (
    "request_id",
    "route",
    "provider",
    "consumer",
    "model_served",
    "stream",
    "status",
    "blocked_reason",
    "duration_ms",
    "ttfb_ms",
)


class PromptCapture:
    """observability.debug_log_prompts: keeps each request's user texts until
    its log line is written. Configured consumer keys are masked out of the
    texts (a key pasted into a prompt is still a key); the `key` body field is
    never a user text. Bounded: the oldest entries go first."""

    def __init__(self, secrets: Iterable[bytes] = (), max_pending: int = 10_000) -> None:
        self._secrets = tuple(
            sorted({s.decode("utf-8", "replace") for s in secrets if s}, key=len, reverse=True)
        )
        self._pending: OrderedDict[str, list[str]] = OrderedDict()
        self._max = max_pending

    def mask(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, "[redacted]")
        return text

    def capture(self, ctx: RequestContext) -> None:
        rid = ctx.headers.get("x-request-id", "")
        if not rid:
            return
        self._pending[rid] = [self.mask(t) for t in ctx.user_texts()]
        while len(self._pending) > self._max:
            self._pending.popitem(last=False)

    def pop(self, rec: ExchangeRecord) -> list[str] | None:
        return self._pending.pop(rec.request_id, None) if rec.request_id else None
