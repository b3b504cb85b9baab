"""One error shape everywhere: {"error": {"code", "message"}}; never a stack trace."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A request body must arrive within this many seconds once its headers have (a client that
# trickles a body would otherwise hold a handler and a socket for as long as it likes).
BODY_TIMEOUT_SECONDS = 10.0


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status, headers=headers)


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "request-timeout",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    except ValidationError as exc:
        return error_response(
            422, "validation-failed", "the request is not valid", validation_details(exc)
        )
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        code = HTTP_CODES.get(exc.status, "http-error")
        return error_response(exc.status, code, exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal-error", "an internal error occurred")


def parse_json(raw: bytes | str) -> Any:
    """JSON text to Python; ValueError for anything that is not JSON we accept.

    Nesting deep enough to exhaust the parser's recursion is refused as malformed rather
    than escaping as RecursionError.
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(str(exc)) from None


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, with 415 / 413 / 408 / 400 for the ways it can be wrong."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported-media-type", "send a JSON body (application/json)")
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "payload-too-large", "the request body is too large") from None
    except TimeoutError:
        raise ApiError(408, "request-timeout", "the request body arrived too slowly") from None
    try:
        return parse_json(raw)
    except ValueError as exc:
        raise ApiError(
            400, "malformed-json", f"the request body is not valid JSON ({exc})"
        ) from None
