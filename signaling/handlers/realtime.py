"""The signaling WebSocket, listed in the route table so the API description names it."""

from __future__ import annotations

from aiohttp import web

from signaling.handlers.table import ROUTES
from signaling.session import meeting_socket


@ROUTES.route(
    "GET",
    "/api/meetings/{room_id}/ws",
    summary="Signaling WebSocket: authenticate with the first message (docs/protocol.md)",
    tag="signaling",
    auth=False,
    status=101,
)
async def meeting_websocket(request: web.Request) -> web.WebSocketResponse:
    return await meeting_socket(request)
