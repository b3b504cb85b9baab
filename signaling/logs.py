"""Logs as text (the default) or JSON lines (`TERTULIA_LOG_FORMAT=json`), and the ids that
say what a record is about.

A JSON line holds `time` (UTC, RFC 3339), `level`, `logger`, `message`, `worker_id`, and,
when known, `request_id`, `room_id`, `participant_id` (and `exception` with its traceback).
The ids live in context variables, so every record logged by a task knows them without being
told: `request_ids` (a middleware) gives each HTTP request its id, and the signaling session
binds its room and participant (`bind`) in the tasks it runs. Tasks started on behalf of a
session (the media server's, for instance) inherit the ids of the session that started them.
A record's own `extra={"room_id": ...}` wins over the context.

`worker_id` is the process id until there are several worker processes (issue 13).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID_HEADER = "X-Request-Id"
# An incoming X-Request-Id is kept only if it is a short token that is safe to log and echo.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
ROOM_ID: ContextVar[str | None] = ContextVar("room_id", default=None)
PARTICIPANT_ID: ContextVar[str | None] = ContextVar("participant_id", default=None)
IDS = {"request_id": REQUEST_ID, "room_id": ROOM_ID, "participant_id": PARTICIPANT_ID}
REQUEST_ID_KEY = web.RequestKey("request_id", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def worker_id() -> str:
    """Which process wrote a record (the process id, until workers have ids of their own)."""
    return str(os.getpid())


def bind(**ids: str | None) -> None:
    """Set ids (`room_id`, `participant_id`, `request_id`) for the rest of this task and the
    tasks it starts from now on."""
    for name, value in ids.items():
        IDS[name].set(value)


@contextmanager
def scope(**ids: str | None) -> Iterator[None]:
    """Every id unset except those given, until the block ends (then as before)."""
    tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = [
        (var, var.set(ids.get(name))) for name, var in IDS.items()
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in IDS.items():
            value = getattr(record, name, None) or var.get()
            if value is not None:
                entry[name] = str(value)
        entry["worker_id"] = worker_id()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, log_format: str) -> None:
    """Log to standard error at `level`, as text or JSON lines (`TERTULIA_LOG_FORMAT`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level, handlers=[handler])


def request_id_of(header: str | None) -> str:
    """The client's X-Request-Id when it is a short safe token; otherwise a new one."""
    if header is not None and SAFE_REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(8)


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request its id: in the logs of everything it does, and in the response's
    X-Request-Id (see `install`). No id of an earlier request or session leaks past it."""
    request_id = request_id_of(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = request_id
    with scope(request_id=request_id):
        return await handler(request)


def install(app: web.Application) -> None:
    """Echo each request's id as X-Request-Id on its response, whatever prepares it (a
    handler, a WebSocket upgrade, an HTTP error raised past the middlewares)."""

    async def add_header(request: web.Request, response: web.StreamResponse) -> None:
        request_id = request.get(REQUEST_ID_KEY)
        if request_id is not None:
            response.headers[REQUEST_ID_HEADER] = request_id

    app.on_response_prepare.append(add_header)


class RequestAccessLogger(AccessLogger):
    """aiohttp's access log line, with the request's id (it is written after the request's
    own context has ended)."""

    def log(self, request: Any, response: web.StreamResponse, time: float) -> None:
        token = REQUEST_ID.set(request.get(REQUEST_ID_KEY))
        try:
            super().log(request, response, time)
        finally:
            REQUEST_ID.reset(token)
