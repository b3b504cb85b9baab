"""Recording control (start/stop) and the recordings library: list, detail, files, delete.

Admins see every recording; a meeting's host sees that meeting's; nobody else. File paths
come from the database (server-generated names), never from the request.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from signaling.auth import (
    bearer_token,
    current_user,
    refuse_token,
    request_address,
    user_for_token,
)
from signaling.errors import ApiError
from signaling.handlers.bodies import json_model, parse_id, parse_query, path_id, path_room_id
from signaling.handlers.table import ROUTES
from signaling.keys import DATABASE, JOBS, RECORDINGS, TOKENS
from signaling.permissions import Action, host_role, may, require
from signaling.recordings import lifecycle
from signaling.schemas import (
    HostOut,
    RecordingAccess,
    RecordingDetail,
    RecordingListQuery,
    RecordingMeetingOut,
    RecordingOut,
    RecordingPage,
    RecordingSpeakerOut,
    RecordingStarted,
    RecordingTrackOut,
)
from signaling.tokens import TokenError
from storage import audit, recordings, users
from storage.models import AuditOutcome, Recording, User

RECORDING = "/api/recordings/{recording_id}"
MEETING_RECORDING = "/api/meetings/{room_id}/recording"


def recording_out(recording: Recording, started_by: User | None) -> RecordingOut:
    return RecordingOut(**_fields(recording, started_by))


def _fields(recording: Recording, started_by: User | None) -> dict[str, Any]:
    names = list(dict.fromkeys(t.display_name for t in recording.tracks))
    return {
        "id": recording.id,
        "meeting": RecordingMeetingOut(
            room_id=recording.meeting.room_id, title=recording.meeting.title
        ),
        "started_at": recording.started_at,
        "stopped_at": recording.stopped_at,
        "started_by": HostOut.model_validate(started_by) if started_by else None,
        "state": recording.state,
        "failure_reason": recording.failure_reason,
        "duration_seconds": recording.duration_seconds,
        "size_bytes": recording.size_bytes,
        "composed_size_bytes": recording.composed_size_bytes,
        "progress": recording.progress,
        "participants": names,
    }


def _recording_id(request: web.Request) -> int:
    return path_id(request, "recording_id", "recording-not-found", "recording")


async def _load(request: web.Request, user: User, action: str) -> Recording:
    """The recording, if the user may see it; a refusal is audited as `action`, refused."""
    async with request.app[DATABASE].session() as db:
        recording = await recordings.get_recording(db, _recording_id(request))
    if recording is None:
        raise ApiError(404, "recording-not-found", "no such recording")
    try:
        require(user, host_role(recording.meeting.host_id, user), Action.SEE_RECORDINGS)
    except ApiError as refusal:
        detail = f"{refusal.code}: {refusal.message}"
        await _audit(request, user, action, recording, detail, outcome="refused")
        raise
    return recording


async def _audit(
    request: web.Request,
    user: User,
    action: str,
    recording: Recording,
    detail: str,
    outcome: AuditOutcome = "ok",
) -> None:
    async with request.app[DATABASE].session() as db:
        await audit.record(
            db,
            user_id=user.id,
            action=action,
            outcome=outcome,
            recording_id=recording.id,
            room_id=recording.meeting.room_id,
            address=request_address(request),
            detail=detail,
        )


# --- control ------------------------------------------------------------------------------


@ROUTES.route(
    "POST",
    MEETING_RECORDING,
    summary="Start recording the meeting (host or moderator)",
    tag="recordings",
    response=RecordingStarted,
    status=201,
    errors=(404, 409),
)
async def start_recording(request: web.Request) -> web.Response:
    user = await current_user(request)
    recording_id = await request.app[RECORDINGS].start(path_room_id(request), user)
    return json_model(RecordingStarted(recording_id=recording_id), status=201)


@ROUTES.route(
    "DELETE",
    MEETING_RECORDING,
    summary="Stop recording (host, moderator or admin)",
    tag="recordings",
    response=RecordingStarted,
    errors=(404, 409),
)
async def stop_recording(request: web.Request) -> web.Response:
    user = await current_user(request)
    recording_id = await request.app[RECORDINGS].stop_by(path_room_id(request), user)
    return json_model(RecordingStarted(recording_id=recording_id))


# --- library ------------------------------------------------------------------------------


@ROUTES.route(
    "GET",
    "/api/recordings",
    summary="Recordings you may see, newest first",
    tag="recordings",
    query=RecordingListQuery,
    response=RecordingPage,
)
async def list_recordings(request: web.Request) -> web.Response:
    user = await current_user(request)
    query = parse_query(request, RecordingListQuery)
    async with request.app[DATABASE].session() as db:
        rows, total = await recordings.list_recordings(
            db,
            # everyone's for those who may see any meeting's recordings, else their meetings'
            host_id=None if may(user, None, Action.SEE_RECORDINGS) else user.id,
            room_id=query.room_id,
            started_from=query.started_from,
            started_to=query.started_to,
            text=query.q,
            limit=query.limit,
            offset=query.offset,
        )
        items = [
            recording_out(r, await users.get_user(db, r.started_by_id) if r.started_by_id else None)
            for r in rows
        ]
    return json_model(
        RecordingPage(items=items, total=total, limit=query.limit, offset=query.offset)
    )


@ROUTES.route(
    "GET",
    RECORDING,
    summary="One recording with its tracks",
    tag="recordings",
    response=RecordingDetail,
    errors=(404,),
)
async def get_recording(request: web.Request) -> web.Response:
    user = await current_user(request)
    recording = await _load(request, user, "view")
    async with request.app[DATABASE].session() as db:
        starter = (
            await users.get_user(db, recording.started_by_id) if recording.started_by_id else None
        )
    tracks = [
        RecordingTrackOut(
            id=t.id,
            participant_id=t.participant_id,
            user_id=t.user_id,
            display_name=t.display_name,
            kind=t.kind,  # type: ignore[arg-type]
            source=t.source,  # type: ignore[arg-type]
            codec=t.codec,
            start_offset=t.start_offset,
            duration_seconds=t.duration_seconds,
            size_bytes=t.size_bytes,
        )
        for t in recording.tracks
    ]
    await _audit(request, user, "view", recording, "detail")
    speakers = [RecordingSpeakerOut.model_validate(s) for s in recording.speakers]
    return json_model(
        RecordingDetail(**_fields(recording, starter), tracks=tracks, speakers=speakers)
    )


@ROUTES.route(
    "DELETE",
    RECORDING,
    summary="Delete a recording: files and rows",
    tag="recordings",
    status=204,
    errors=(404, 409),
)
async def delete_recording(request: web.Request) -> web.Response:
    user = await current_user(request)
    recording = await _load(request, user, "delete")
    if recording.state == "recording":
        raise ApiError(409, "still-recording", "stop the recording before deleting it")
    await request.app[JOBS].delete(recording)
    async with request.app[DATABASE].session() as db:
        row = await recordings.get_recording(db, recording.id)
        if row is not None:
            await db.delete(row)
        await audit.record(
            db,
            user_id=user.id,
            action="delete",
            recording_id=recording.id,
            room_id=recording.meeting.room_id,
            address=request_address(request),
            detail=f"{recording.meeting.title} ({recording.size_bytes} bytes)",
        )
    return web.Response(status=204)


@ROUTES.route(
    "POST",
    RECORDING + "/compose",
    summary="Compose (again) a failed or interrupted recording",
    tag="recordings",
    response=RecordingOut,
    status=202,
    errors=(404, 409),
)
async def compose_recording(request: web.Request) -> web.Response:
    user = await current_user(request)
    recording = await _load(request, user, "compose")
    async with request.app[DATABASE].session() as db:
        row = await recordings.get_recording(db, recording.id)
        if row is None:
            raise ApiError(404, "recording-not-found", "no such recording")
        lifecycle.compose_again(row)
        out = recording_out(row, None)
    request.app[JOBS].enqueue(recording.id)
    return json_model(out, status=202)


@ROUTES.route(
    "POST",
    RECORDING + "/access",
    summary="Short-lived links to the recording's files",
    tag="recordings",
    response=RecordingAccess,
    errors=(404,),
)
async def recording_access(request: web.Request) -> web.Response:
    user = await current_user(request)
    recording = await _load(request, user, "access")
    ttl = 600
    token = request.app[TOKENS].issue_media(user.id, recording.id, ttl)
    base = f"/api/recordings/{recording.id}"
    return json_model(
        RecordingAccess(
            access=token,
            expires_in=ttl,
            file_url=f"{base}/file?access={token}" if recording.composed_file else None,
            track_urls={
                str(t.id): f"{base}/tracks/{t.id}/file?access={token}" for t in recording.tracks
            },
        )
    )


async def _file_user(request: web.Request) -> User:
    """Files open with a bearer token or with a media link (`?access=`) for this recording."""
    access = request.query.get("access")
    address = request_address(request)
    if access is None:
        return await user_for_token(request.app, bearer_token(request), address)
    recording_id = _recording_id(request)
    try:
        user_id = request.app[TOKENS].verify_media(access, recording_id)
    except TokenError as exc:
        error = ApiError(401, exc.code, exc.message)
        raise await refuse_token(request.app, error, address, recording_id=recording_id) from None
    async with request.app[DATABASE].session() as db:
        user = await users.get_user(db, user_id)
    if user is None or not user.is_active:
        error = ApiError(403, "account-disabled", "this account is disabled")
        raise await refuse_token(
            request.app, error, address, user.id if user else None, recording_id
        )
    return user


def _file_action(request: web.Request) -> str:
    return "download" if request.query.get("download") == "1" else "stream"


async def _send_file(
    request: web.Request, user: User, recording: Recording, path: Path, what: str
) -> web.FileResponse:
    root = request.app[JOBS].directory(recording)
    if not path.is_relative_to(root) or not await asyncio.to_thread(path.is_file):
        raise ApiError(404, "file-not-found", "that file is not available")
    start = _range_start(request, (await asyncio.to_thread(path.stat)).st_size)
    download = request.query.get("download") == "1"
    first_request = start in (None, 0)
    if download or first_request:  # not once per range request of a seeking player
        await _audit(request, user, _file_action(request), recording, what)
    response = web.FileResponse(path)
    if download:
        response.headers["Content-Disposition"] = (
            f'attachment; filename="recording-{recording.id}-{path.name}"'
        )
    return response


def _range_start(request: web.Request, size: int) -> int | None:
    """Where a `Range: bytes=…` request starts; 416 in the error shape for a Range header
    that is malformed, names several ranges, or lies beyond the file (aiohttp's own 416
    has no body)."""
    try:
        start = request.http_range.start
    except ValueError:  # not one well-formed `bytes=` range
        pass
    else:
        if start is None or 0 <= start < size or (start < 0 and size > 0):
            return start
    raise ApiError(
        416,
        "range-not-satisfiable",
        "send one byte range within the file, e.g. Range: bytes=0-1023",
        headers={"Content-Range": f"bytes */{size}"},
    )


@ROUTES.route(
    "GET",
    RECORDING + "/file",
    summary="The composed file (Range supported)",
    tag="recordings",
    content_type="video/mp4",
    errors=(404, 416),
)
async def composed_file(request: web.Request) -> web.StreamResponse:
    user = await _file_user(request)
    recording = await _load(request, user, _file_action(request))
    if not recording.composed_file:
        raise ApiError(404, "file-not-found", "the recording has not been composed")
    path = request.app[JOBS].directory(recording) / recording.composed_file
    return await _send_file(request, user, recording, path, "composed")


@ROUTES.route(
    "GET",
    RECORDING + "/tracks/{track_id}/file",
    summary="One track file (Range supported)",
    tag="recordings",
    content_type="video/webm",
    errors=(404, 416),
)
async def track_file(request: web.Request) -> web.StreamResponse:
    user = await _file_user(request)
    recording = await _load(request, user, _file_action(request))
    track_id = parse_id(request.match_info["track_id"])
    track = next((t for t in recording.tracks if t.id == track_id), None)
    if track is None:
        raise ApiError(404, "file-not-found", "no such track")
    path = request.app[JOBS].directory(recording) / track.file
    return await _send_file(request, user, recording, path, f"track {track.id}")
