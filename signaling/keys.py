"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from aiohttp import web

from signaling.config import Settings
from signaling.tokens import TokenService
from storage.database import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
TOKENS = web.AppKey("tokens", TokenService)


class MeetingHooks:
    """What the REST API tells the live side when a meeting ends or is deleted.

    The signaling rooms (WebSocket + media) replace this with their own implementation; on
    its own the REST API has nobody live to tell.
    """

    async def meeting_ended(self, room_id: str) -> None:
        return None


MEETING_HOOKS = web.AppKey("meeting_hooks", MeetingHooks)
