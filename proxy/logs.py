"""structlog set-up: JSON lines for machines, colours for people on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

# Keys whose values are never printed, whatever a caller passes by mistake.
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "cookie",
        "set-cookie",
        "token",
        "secret",
        "password",
        "headers",
        "text",
        "body",
    }
)


def _redact(_logger: object, _name: str, event: dict) -> dict:
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "[redacted]"
    return event


class _LibraryLogs(logging.Handler):
    """aiohttp's and asyncio's own loggers, through structlog. Their messages may quote
    the raw request head (a parse error on a line carrying `Authorization` or a cookie),
    so only the logger, the level and the exception's type are kept, never the text."""

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        structlog.get_logger(record.name).log(
            record.levelno,
            "library_error" if record.levelno >= logging.WARNING else "library_log",
            logger=record.name,
            error=type(exc).__name__ if exc is not None else None,
            # aiohttp's own text for parse errors is a fixed phrase ("Error handling
            # request", "Unhandled exception"): the template, never the arguments.
            message=record.msg if isinstance(record.msg, str) else None,
        )


class _Migrations(logging.Handler):
    """Alembic's progress ("Running upgrade 0010 -> 0011, <what it does>"): revision ids
    and dmgate's own migration docstrings, so the whole text is kept."""

    def emit(self, record: logging.LogRecord) -> None:
        # Not its "Context impl SQLiteImpl." at every start: only what a migration does.
        if str(record.msg).startswith("Running "):
            structlog.get_logger("dmgate.store").info("migration", message=record.getMessage())


def _route_library_logs() -> None:
    handler = _LibraryLogs()
    # The root too: a library that calls logging.basicConfig() at import (wordllama does)
    # would otherwise print plain-text lines into the JSON stream.
    logging.root.handlers = [handler]
    logging.root.setLevel(logging.WARNING)
    for name in ("aiohttp", "asyncio"):
        lib = logging.getLogger(name)
        lib.handlers = [handler]
        lib.propagate = False  # else Python's last-resort handler prints the raw text
        lib.setLevel(logging.WARNING)
    migrations = logging.getLogger("alembic.runtime.migration")
    migrations.handlers = [_Migrations()]
    migrations.propagate = False
    migrations.setLevel(logging.INFO)


class AccessLog(AbstractAccessLogger):
    """DMGATE_ACCESS_LOG=true: one structured line per request. The path only: a query
    can carry tokens, and headers carry credentials."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        structlog.get_logger("dmgate.access").info(
            "http_request",
            method=request.method,
            path=request.path[:300],
            status=response.status,
            duration_ms=round(time * 1000, 3),
            bytes_sent=response.body_length,
        )


def configure_logging(fmt: str | None, level: str = "info") -> None:
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        # One write per line (PrintLogger writes the newline separately): with several
        # workers on one stream, lines would otherwise run into each other.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_library_logs()
