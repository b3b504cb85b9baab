"""Signaling's door to the waiting room and moderation: one message, one use case.

The rules are in `signaling.admission` and `signaling.moderation`, shared with REST; this
module only maps the protocol's messages (`messages.py`) onto them, so `Session._dispatch`
stays a short list.
"""

from __future__ import annotations

from aiohttp import web

from signaling.audit import Actor
from signaling.keys import MODERATION, WAITING_ROOM

from .messages import (
    Admit,
    AdmitAll,
    AllowUnmute,
    Deny,
    Lock,
    ModerationMessage,
    Mute,
    MuteAll,
    Remove,
    SetRole,
    WaitingRoom,
)

MODERATION_MESSAGES = (
    Admit,
    Deny,
    AdmitAll,
    WaitingRoom,
    Lock,
    Mute,
    MuteAll,
    AllowUnmute,
    Remove,
    SetRole,
)


async def moderate(
    app: web.Application, room_id: str, actor: Actor, message: ModerationMessage
) -> None:
    waiting_room, moderation = app[WAITING_ROOM], app[MODERATION]
    match message:
        case Admit():
            await waiting_room.admit(room_id, actor, message.participant_id)
        case Deny():
            await waiting_room.deny(room_id, actor, message.participant_id)
        case AdmitAll():
            await waiting_room.admit_all(room_id, actor)
        case WaitingRoom():
            await waiting_room.set_enabled(room_id, actor, message.enabled)
        case Lock():
            await moderation.lock(room_id, actor, message.locked)
        case Mute():
            await moderation.mute(room_id, actor, message.participant_id, message.sources)
        case MuteAll():
            await moderation.mute_all(room_id, actor)
        case AllowUnmute():
            await moderation.allow_unmute(room_id, actor, message.participant_id)
        case Remove():
            await moderation.remove(room_id, actor, message.participant_id, bar=message.bar)
        case SetRole():
            await moderation.set_role_of(room_id, actor, message.participant_id, message.role)
