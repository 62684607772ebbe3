"""Structured logs: one JSON object per line, never a prompt or a key."""

from __future__ import annotations

import logging
import sys
import time

import orjson

from extproc.core.exchange import ExchangeRecord

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


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
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
        "input_tokens": u.input_tokens if u else None,
        "output_tokens": u.output_tokens if u else None,
        "total_tokens": u.total_tokens if u else None,
        "duration_ms": round((rec.ended - rec.started) * 1000, 3)
        if rec.ended and rec.started
        else None,
        "ttfb_ms": round((rec.first_byte - rec.started) * 1000, 3)
        if rec.first_byte and rec.started
        else None,
    }


def log_exchange(rec: ExchangeRecord) -> None:
    if request_log.isEnabledFor(logging.INFO):
        request_log.info("request", extra={"fields": record_fields(rec)})


def monotonic_ms() -> float:
    return time.monotonic() * 1000
