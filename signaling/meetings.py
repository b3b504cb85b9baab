"""What can happen to a meeting, decided once for the REST API and the WebSocket alike.

The REST handlers and the signaling session are two doors into the same rules: admitting a
person (the waiting room, locks, bars, seats, ended meetings), ending a meeting for everyone,
the last person leaving, the server shutting down. Each use case here checks permissions
(`signaling.permissions`), changes the database, writes the audit trail, and then tells the
live meeting (`signaling.realtime.live`) and the recorder (`signaling.recordings.control`), in
that order. Refusals are `ApiError`s: REST sends them as responses, the WebSocket as error
events (with close code 4000 + status during the handshake). The waiting room's queue is in
`signaling.admission`, moderation in `signaling.moderation`, timed endings in
`signaling.lifecycle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from signaling.audit import Actor, AuditLog
from signaling.errors import ApiError
from signaling.identifiers import is_room_id
from signaling.permissions import Action, may, meeting_role, require
from signaling.realtime.events import MeetingSettingsInfo, MeetingUpdated
from signaling.realtime.live import LiveMeetings
from signaling.recordings.control import RecordingControl
from storage import access, meetings
from storage.database import Database
from storage.models import Meeting, ParticipantRole, User
from storage.types import utcnow

ENDED_BY_HOST = "the host ended the meeting"


async def load_meeting(db: AsyncSession, room_id: str) -> Meeting:
    """The meeting, or 404 (also for what cannot be a room id: it never reaches a query)."""
    meeting = await meetings.get_meeting(db, room_id) if is_room_id(room_id) else None
    if meeting is None:
        raise ApiError(404, "meeting-not-found", "no meeting has this id")
    return meeting


async def role_in(db: AsyncSession, meeting: Meeting, user: User) -> ParticipantRole | None:
    return meeting_role(meeting, await access.get_member(db, meeting.id, user.id), user)


async def authorize(db: AsyncSession, room_id: str, user: User, action: Action) -> Meeting:
    """Load the meeting and require that the user may take the action in it."""
    meeting = await load_meeting(db, room_id)
    require(user, await role_in(db, meeting, user), action)
    return meeting


def settings_info(meeting: Meeting) -> MeetingSettingsInfo:
    return MeetingSettingsInfo.model_validate(meeting, from_attributes=True)


@dataclass(frozen=True)
class Seat:
    """Admitted: a visit is open (or held, over REST)."""

    joined: meetings.JoinResult
    role: ParticipantRole


@dataclass(frozen=True)
class Wait:
    """Held in the waiting room until a moderator decides."""

    meeting: Meeting


class MeetingService:
    def __init__(
        self,
        database: Database,
        live: LiveMeetings,
        recordings: RecordingControl,
        audit: AuditLog,
        knock_retry_seconds: int = 600,
    ) -> None:
        self.database = database
        self.live = live
        self.recordings = recordings
        self.audit = audit
        self.knock_retry = timedelta(seconds=knock_retry_seconds)

    async def admit(
        self, room_id: str, actor: Actor, *, hold: timedelta | None = None
    ) -> Seat | Wait:
        """Let the person in, or say they must wait (`hold`: only hold a seat that long,
        for REST). Refusals: 404 `meeting-not-found`; 403 `barred` (removed for good),
        `denied-recently` (a moderator refused them and the retry time has not passed);
        423 `meeting-locked` (nobody new while locked); 409 `meeting-ended`, `meeting-full`.

        Who waits: in a meeting that requires approval, anyone the permission table does not
        let skip the waiting room (host, moderators, admins) and who has not been admitted
        before. The decision reads only what the server stored; nothing a client sends can
        change it. See `storage.meetings.join_meeting` for the seat rules and why they hold
        under concurrent joins.
        """
        user = actor.user
        async with self.audit.refusals(actor, "meeting-join", room_id=room_id):
            async with self.database.session() as db:
                meeting = await load_meeting(db, room_id)
                if meeting.status == "ended":
                    raise ApiError(409, "meeting-ended", "this meeting has ended")
                member = await access.get_member(db, meeting.id, user.id)
                role = meeting_role(meeting, member, user)
                privileged = may(user, role, Action.SKIP_WAITING_ROOM)
                admitted = member is not None and member.admitted_at is not None
                if member is not None and member.barred and not privileged:
                    raise ApiError(403, "barred", "you were removed from this meeting")
                if meeting.locked and not privileged and not admitted:
                    raise ApiError(423, "meeting-locked", "the meeting is locked")
                if meeting.require_approval and not privileged and not admitted:
                    now = utcnow()
                    if member is not None and member.denied_until and member.denied_until > now:
                        wait = int((member.denied_until - now).total_seconds()) + 1
                        raise ApiError(
                            403,
                            "denied-recently",
                            f"a moderator refused you; you may ask again in {wait} s",
                            headers={"Retry-After": str(wait)},
                        )
                    return Wait(meeting)
                try:
                    joined = await meetings.join_meeting(
                        db, room_id, user.id, hold=hold, worker_id=self.live.worker_id
                    )
                except meetings.MeetingEnded:
                    raise ApiError(409, "meeting-ended", "this meeting has ended") from None
                except meetings.MeetingFull:
                    raise ApiError(409, "meeting-full", "this meeting is full") from None
                if not admitted and role != "host":
                    await access.admit(db, meeting.id, user.id)
                seat_role: ParticipantRole = (
                    role if role in ("host", "moderator") else "participant"
                )
                joined.participation.role = seat_role
                await db.refresh(joined.meeting, ["host"])
        if not admitted and role != "host" and hold is None:
            await self.audit.record(actor, "meeting-join", room_id=room_id, detail="admitted")
        return Seat(joined, seat_role)

    async def end(self, room_id: str, actor: Actor) -> Meeting:
        """End the meeting for everyone: 404, 403 `not-moderator`, 409 `meeting-ended`."""
        async with self.audit.refusals(actor, "meeting-end", room_id=room_id):
            async with self.database.session() as db:
                meeting = await authorize(db, room_id, actor.user, Action.END_MEETING)
                if meeting.status == "ended":
                    raise ApiError(409, "meeting-ended", "this meeting has already ended")
                await meetings.end_meeting(db, meeting)
        await self.audit.record(actor, "meeting-end", room_id=room_id)
        await self.close_live(room_id, ENDED_BY_HOST)
        return meeting

    async def end_by_server(self, room_id: str, reason: str) -> bool:
        """End the meeting without anyone asking (the lifecycle's timeouts); False when it
        had ended already."""
        async with self.database.session() as db:
            meeting = await meetings.get_meeting(db, room_id)
            if meeting is None or meeting.status == "ended":
                return False
            await meetings.end_meeting(db, meeting)
        await self.audit.record(None, "meeting-auto-end", room_id=room_id, detail=reason)
        await self.close_live(room_id, reason)
        return True

    async def delete(self, room_id: str, actor: Actor) -> None:
        """Delete the meeting (host or admin): 404, 403 `not-host`; everyone inside goes."""
        async with self.audit.refusals(actor, "meeting-delete", room_id=room_id):
            async with self.database.session() as db:
                meeting = await authorize(db, room_id, actor.user, Action.EDIT_MEETING)
                await meetings.delete_meeting(db, meeting)
        await self.audit.record(actor, "meeting-delete", room_id=room_id)
        await self.close_live(room_id, ENDED_BY_HOST)

    def changed(self, meeting: Meeting) -> None:
        """Tell everyone inside that the meeting's host or settings changed."""
        room = self.live.rooms.get(meeting.room_id)
        if room is None:
            return
        was_present = room.host_present
        room.enable_chat = meeting.enable_chat
        room.title, room.may_be_recorded = meeting.title, meeting.enable_recording
        room.host_id = meeting.host_id
        room.broadcast(MeetingUpdated(host_id=meeting.host_id, settings=settings_info(meeting)))
        room.refresh_waiting(was_present)

    async def close_live(self, room_id: str, reason: str) -> None:
        """The meeting is over: store its recording, then tell everyone (those waiting too)
        and disconnect them."""
        await self.recordings.stop(room_id, None, reason="meeting ended")
        self.live.end(room_id, reason)

    async def left(self, room_id: str) -> None:
        """Someone left: once nobody is inside on this worker, forget the room, and stop the
        recording once nobody is left on any worker."""
        room = self.live.rooms.get(room_id)
        if room is None or room.peers:
            return
        await self.recordings.everyone_left(room_id)
        self.live.forget_if_empty(room_id)  # unless someone came in meanwhile

    async def shutdown(self) -> None:
        """The server is stopping: store the recordings, then send everyone away."""
        await self.recordings.stop_all("server shutting down")
        self.live.send_everyone_away()
