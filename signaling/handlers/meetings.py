"""Meetings REST API: create, list, read, change, delete, join, end."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from signaling.auth import current_user
from signaling.errors import ApiError
from signaling.handlers.actor import actor_of
from signaling.handlers.bodies import json_model, parse_body, parse_query, path_room_id
from signaling.handlers.table import ROUTES
from signaling.keys import AUDIT, DATABASE, MEETINGS, SETTINGS, WAITING_ROOM
from signaling.meetings import Seat, authorize, load_meeting
from signaling.permissions import Action
from signaling.schemas import (
    HostOut,
    JoinResponse,
    MeetingCreate,
    MeetingListQuery,
    MeetingOut,
    MeetingPage,
    MeetingPatch,
    MeetingSettingsOut,
)
from storage import meetings
from storage.models import Meeting, User
from storage.types import utcnow

MEETING_PATH = "/api/meetings/{room_id}"
# A meeting may be scheduled a little in the past (a form filled in just before the hour),
# not further: such a meeting would be listed as upcoming although its time has gone.
PAST_START_GRACE = timedelta(minutes=5)
# A REST join holds a seat this long for the signaling connection that should follow.
SEAT_HOLD_SECONDS = 60


def meeting_out(request: web.Request, meeting: Meeting, viewer: User) -> MeetingOut:
    base = request.app[SETTINGS].resolved_public_url
    return MeetingOut(
        room_id=meeting.room_id,
        title=meeting.title,
        description=meeting.description,
        host=HostOut.model_validate(meeting.host),
        scheduled_start=meeting.scheduled_start,
        duration_minutes=meeting.duration_minutes,
        settings=MeetingSettingsOut.model_validate(meeting, from_attributes=True),
        status=meeting.status,  # type: ignore[arg-type]
        started_at=meeting.started_at,
        ended_at=meeting.ended_at,
        created_at=meeting.created_at,
        updated_at=meeting.updated_at,
        join_url=f"{base}/m/{meeting.room_id}",
        is_host=meeting.host_id == viewer.id,
    )


def _check_start(start: datetime | None) -> None:
    if start is not None and start < utcnow() - PAST_START_GRACE:
        raise ApiError(
            422,
            "validation-failed",
            "the request is not valid",
            [{"field": "scheduled_start", "message": "must not be in the past"}],
        )


@ROUTES.route(
    "POST",
    "/api/meetings",
    summary="Create a meeting",
    tag="meetings",
    body=MeetingCreate,
    response=MeetingOut,
    status=201,
)
async def create_meeting(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await parse_body(request, MeetingCreate)
    _check_start(body.scheduled_start)
    async with request.app[DATABASE].session() as session:
        meeting = await meetings.create_meeting(
            session,
            host_id=user.id,
            title=body.title,
            description=body.description,
            scheduled_start=body.scheduled_start,
            duration_minutes=body.duration_minutes,
            **body.settings.model_dump(),
        )
        out = meeting_out(request, meeting, user)
    return json_model(out, status=201)


@ROUTES.route(
    "GET",
    "/api/meetings",
    summary="The caller's meetings (hosted or joined), upcoming first",
    tag="meetings",
    query=MeetingListQuery,
    response=MeetingPage,
)
async def list_meetings(request: web.Request) -> web.Response:
    user = await current_user(request)
    query = parse_query(request, MeetingListQuery)
    async with request.app[DATABASE].session() as session:
        rows, total = await meetings.list_meetings_for_user(
            session, user.id, when=query.when, limit=query.limit, offset=query.offset
        )
        items = [meeting_out(request, m, user) for m in rows]
    return json_model(MeetingPage(items=items, total=total, limit=query.limit, offset=query.offset))


@ROUTES.route(
    "GET",
    MEETING_PATH,
    summary="One meeting",
    tag="meetings",
    response=MeetingOut,
    errors=(404,),
)
async def get_meeting(request: web.Request) -> web.Response:
    user = await current_user(request)
    async with request.app[DATABASE].session() as session:
        meeting = await load_meeting(session, path_room_id(request))
        out = meeting_out(request, meeting, user)
    return json_model(out)


@ROUTES.route(
    "PATCH",
    MEETING_PATH,
    summary="Change a meeting (host or admin)",
    tag="meetings",
    body=MeetingPatch,
    response=MeetingOut,
    errors=(404, 409),
)
async def patch_meeting(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await parse_body(request, MeetingPatch)
    # fields left out are MISSING, and not dumped; settings are stored as columns too
    changes = body.model_dump(exclude={"settings"}) | body.model_dump().get("settings", {})
    actor, room_id = actor_of(request, user), path_room_id(request)
    async with request.app[AUDIT].refusals(actor, "meeting-update", room_id=room_id):
        async with request.app[DATABASE].session() as session:
            meeting = await authorize(session, room_id, user, Action.EDIT_MEETING)
            if meeting.status == "ended":
                raise ApiError(409, "meeting-ended", "an ended meeting cannot be changed")
            if changes.get("scheduled_start", meeting.scheduled_start) != meeting.scheduled_start:
                _check_start(changes["scheduled_start"])
            await meetings.update_meeting(session, meeting, **changes)
            out = meeting_out(request, meeting, user)
    await request.app[AUDIT].record(
        actor, "meeting-update", room_id=room_id, detail=", ".join(sorted(changes))
    )
    await request.app[WAITING_ROOM].settings_changed(meeting, actor)
    return json_model(out)


@ROUTES.route(
    "DELETE",
    MEETING_PATH,
    summary="Delete a meeting (host or admin)",
    tag="meetings",
    status=204,
    errors=(404,),
)
async def delete_meeting(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[MEETINGS].delete(path_room_id(request), actor_of(request, user))
    return web.Response(status=204)


@ROUTES.route(
    "POST",
    MEETING_PATH + "/join",
    summary="Hold a seat for the signaling connection that follows, or learn one must wait",
    tag="meetings",
    response=JoinResponse,
    errors=(403, 404, 409, 423),
)
async def join_meeting(request: web.Request) -> web.Response:
    user = await current_user(request)
    admission = await request.app[MEETINGS].admit(
        path_room_id(request), actor_of(request, user), hold=timedelta(seconds=SEAT_HOLD_SECONDS)
    )
    if not isinstance(admission, Seat):
        out = JoinResponse(
            status="waiting",
            meeting=meeting_out(request, admission.meeting, user),
            participation_id=None,
            role=None,
            joined_at=None,
            held_until=None,
        )
        return json_model(out)
    joined = admission.joined
    out = JoinResponse(
        status="admitted",
        meeting=meeting_out(request, joined.meeting, user),
        participation_id=joined.participation.id,
        role=admission.role,
        joined_at=joined.participation.joined_at,
        held_until=joined.participation.held_until,
    )
    return json_model(out)


@ROUTES.route(
    "POST",
    MEETING_PATH + "/end",
    summary="End the meeting for everyone (host, moderators, admins)",
    tag="meetings",
    response=MeetingOut,
    errors=(403, 404, 409),
)
async def end_meeting(request: web.Request) -> web.Response:
    user = await current_user(request)
    meeting = await request.app[MEETINGS].end(path_room_id(request), actor_of(request, user))
    return json_model(meeting_out(request, meeting, user))
