"""The signaling WebSocket, listed in the route table so the API description names it."""

from __future__ import annotations

from aiohttp import web

from signaling.handlers.table import ROUTES
from signaling.realtime.session import meeting_socket


@ROUTES.route(
    "GET",
    "/api/meetings/{room_id}/ws",
    summary="Signaling WebSocket: authenticate with the first message (docs/protocol.md)",
    tag="signaling",
    auth=False,
    status=101,
    # 400: not a WebSocket upgrade; 403: a page of another origin; 429: too many sockets of
    # this address have not said hello yet. Refusals after the upgrade are close codes.
    errors=(400, 403, 429),
    headers=tuple(
        {"name": name, "in": "header", "required": True, "schema": schema}
        for name, schema in (
            ("Upgrade", {"type": "string", "enum": ["websocket"]}),
            ("Connection", {"type": "string", "enum": ["Upgrade"]}),
            ("Sec-WebSocket-Version", {"type": "string", "enum": ["13"]}),
            ("Sec-WebSocket-Key", {"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"}),
        )
    ),
)
async def meeting_websocket(request: web.Request) -> web.WebSocketResponse:
    return await meeting_socket(request)
