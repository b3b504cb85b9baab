"""The waiting room and moderation over REST: the same use cases as the signaling messages
(`signaling.admission`, `signaling.moderation`), so both doors obey one set of rules."""

from __future__ import annotations

from aiohttp import web

from signaling.auth import current_user
from signaling.errors import ApiError
from signaling.handlers.actor import actor_of
from signaling.handlers.bodies import json_model, parse_body, path_id, path_room_id
from signaling.handlers.table import ROUTES
from signaling.keys import DATABASE, LIVE, MODERATION, WAITING_ROOM
from signaling.meetings import authorize
from signaling.permissions import Action
from signaling.schemas import (
    AdmittedOut,
    Enabled,
    KnockOut,
    Locked,
    MutedCount,
    MuteRequest,
    ParticipantList,
    ParticipantOut,
    RemoveRequest,
    RoleRequest,
    WaitingList,
)

MEETING = "/api/meetings/{room_id}"
PERSON = MEETING + "/participants/{participant_id}"
WAITING = MEETING + "/waiting/{participant_id}"
MAX_PARTICIPANT_ID = 64


def _participant_id(request: web.Request) -> str:
    value = request.match_info["participant_id"]
    if len(value) > MAX_PARTICIPANT_ID or not value.startswith("p-"):
        raise ApiError(404, "not-in-meeting", "nobody with this id is in the meeting")
    return value


@ROUTES.route(
    "GET",
    MEETING + "/waiting",
    summary="The waiting room's queue, oldest knock first (host, moderators, admins)",
    tag="moderation",
    response=WaitingList,
    errors=(403, 404),
)
async def waiting_list(request: web.Request) -> web.Response:
    user = await current_user(request)
    room_id = path_room_id(request)
    await request.app[WAITING_ROOM].authorize(room_id, actor_of(request, user), "see-waiting")
    queue = await request.app[WAITING_ROOM].queue(room_id)
    return json_model(WaitingList(items=[KnockOut(**k.model_dump()) for k in queue]))


@ROUTES.route(
    "POST",
    WAITING + "/admit",
    summary="Let one waiting person in (the first decision wins)",
    tag="moderation",
    response=KnockOut,
    errors=(403, 404),
)
async def admit(request: web.Request) -> web.Response:
    user = await current_user(request)
    knock = await request.app[WAITING_ROOM].admit(
        path_room_id(request), actor_of(request, user), _participant_id(request)
    )
    return json_model(KnockOut(**knock.model_dump()))


@ROUTES.route(
    "POST",
    WAITING + "/deny",
    summary="Refuse one waiting person (they may not knock again for a while)",
    tag="moderation",
    response=KnockOut,
    errors=(403, 404),
)
async def deny(request: web.Request) -> web.Response:
    user = await current_user(request)
    knock = await request.app[WAITING_ROOM].deny(
        path_room_id(request), actor_of(request, user), _participant_id(request)
    )
    return json_model(KnockOut(**knock.model_dump()))


@ROUTES.route(
    "POST",
    MEETING + "/waiting/admit-all",
    summary="Let everyone waiting in",
    tag="moderation",
    response=AdmittedOut,
    errors=(403, 404),
)
async def admit_all(request: web.Request) -> web.Response:
    user = await current_user(request)
    admitted = await request.app[WAITING_ROOM].admit_all(
        path_room_id(request), actor_of(request, user)
    )
    return json_model(AdmittedOut(admitted=[KnockOut(**k.model_dump()) for k in admitted]))


@ROUTES.route(
    "PUT",
    MEETING + "/waiting-room",
    summary="Switch the waiting room on or off (host, admins); off lets everyone waiting in",
    tag="moderation",
    body=Enabled,
    response=Enabled,
    errors=(403, 404, 409),
)
async def set_waiting_room(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await parse_body(request, Enabled)
    meeting = await request.app[WAITING_ROOM].set_enabled(
        path_room_id(request), actor_of(request, user), body.enabled
    )
    return json_model(Enabled(enabled=meeting.require_approval))


@ROUTES.route(
    "PUT",
    MEETING + "/lock",
    summary="Lock or unlock the meeting: nobody new gets in while locked",
    tag="moderation",
    body=Locked,
    response=Locked,
    errors=(403, 404, 409),
)
async def lock(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await parse_body(request, Locked)
    meeting = await request.app[MODERATION].lock(
        path_room_id(request), actor_of(request, user), body.locked
    )
    return json_model(Locked(locked=meeting.locked))


@ROUTES.route(
    "GET",
    MEETING + "/participants",
    summary="Who is in the meeting now, hands and moderator stops included",
    tag="moderation",
    response=ParticipantList,
    errors=(403, 404),
)
async def participants(request: web.Request) -> web.Response:
    user = await current_user(request)
    room_id = path_room_id(request)
    async with request.app[DATABASE].session() as db:
        await authorize(db, room_id, user, Action.SEE_PARTICIPANTS)
    room = request.app[LIVE].rooms.get(room_id)
    people = [p.describe() for p in room.peers.values()] if room else []
    items = [ParticipantOut.model_validate(p.model_dump()) for p in people]
    return json_model(ParticipantList(items=items))


@ROUTES.route(
    "POST",
    PERSON + "/mute",
    summary="Stop forwarding someone's microphone, camera or screen (they are told)",
    tag="moderation",
    body=MuteRequest,
    status=204,
    errors=(403, 404),
)
async def mute(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await parse_body(request, MuteRequest)
    await request.app[MODERATION].mute(
        path_room_id(request), actor_of(request, user), _participant_id(request), body.sources
    )
    return web.Response(status=204)


@ROUTES.route(
    "POST",
    PERSON + "/allow-unmute",
    summary="Let a muted person turn their sources on again",
    tag="moderation",
    status=204,
    errors=(403, 404),
)
async def allow_unmute(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[MODERATION].allow_unmute(
        path_room_id(request), actor_of(request, user), _participant_id(request)
    )
    return web.Response(status=204)


@ROUTES.route(
    "POST",
    MEETING + "/mute-all",
    summary="Mute every microphone but the caller's (and the host's, unless the host asks)",
    tag="moderation",
    response=MutedCount,
    errors=(403, 404),
)
async def mute_all(request: web.Request) -> web.Response:
    user = await current_user(request)
    muted = await request.app[MODERATION].mute_all(path_room_id(request), actor_of(request, user))
    return json_model(MutedCount(muted=muted))


@ROUTES.route(
    "POST",
    PERSON + "/remove",
    summary="Send someone out of the meeting; `bar` keeps them out for good",
    tag="moderation",
    body=RemoveRequest,
    status=204,
    errors=(403, 404),
)
async def remove(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await parse_body(request, RemoveRequest)
    await request.app[MODERATION].remove(
        path_room_id(request), actor_of(request, user), _participant_id(request), bar=body.bar
    )
    return web.Response(status=204)


@ROUTES.route(
    "PUT",
    MEETING + "/members/{user_id}/role",
    summary="Make someone a moderator or a participant, or hand over the host role (host, admins)",
    tag="moderation",
    body=RoleRequest,
    response=RoleRequest,
    errors=(403, 404, 409),
)
async def set_role(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await parse_body(request, RoleRequest)
    target = path_id(request, "user_id", "user-not-found", "user")
    await request.app[MODERATION].set_role(
        path_room_id(request), actor_of(request, user), target, body.role
    )
    return json_model(RoleRequest(role=body.role))
