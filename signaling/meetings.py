"""What can happen to a meeting, decided once for the REST API and the WebSocket alike.

The REST handlers and the signaling session are two doors into the same rules: admitting a
person (seats, ended meetings), ending a meeting for everyone, the last person leaving,
the server shutting down. Each use case here checks permissions (`signaling.permissions`),
changes the database, and then tells the live meeting (`signaling.realtime.live`) and the
recorder (`signaling.recordings.control`), in that order. Refusals are `ApiError`s: REST
sends them as responses, the WebSocket as error events (with close code 4000 + status
during the handshake). The waiting room's admission and moderation decisions belong here.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from signaling.errors import ApiError
from signaling.identifiers import is_room_id
from signaling.permissions import Action, host_role, require
from signaling.realtime.live import LiveMeetings
from signaling.recordings.control import RecordingControl
from storage import meetings
from storage.database import Database
from storage.models import Meeting, User

ENDED_BY_HOST = "the host ended the meeting"


async def _load(db: AsyncSession, room_id: str) -> Meeting:
    """The meeting, or 404 (also for what cannot be a room id: it never reaches a query)."""
    meeting = await meetings.get_meeting(db, room_id) if is_room_id(room_id) else None
    if meeting is None:
        raise ApiError(404, "meeting-not-found", "no meeting has this id")
    return meeting


class MeetingService:
    def __init__(
        self, database: Database, live: LiveMeetings, recordings: RecordingControl
    ) -> None:
        self.database = database
        self.live = live
        self.recordings = recordings

    async def admit(
        self, room_id: str, user: User, *, hold: timedelta | None = None
    ) -> meetings.JoinResult:
        """Open the person's visit (`hold`: only hold a seat that long, for REST): 404
        `meeting-not-found`, 409 `meeting-ended` or `meeting-full`. See
        `storage.meetings.join_meeting` for the seat rules and why they hold under
        concurrent joins."""
        async with self.database.session() as db:
            await _load(db, room_id)
            try:
                joined = await meetings.join_meeting(db, room_id, user.id, hold=hold)
            except meetings.MeetingEnded:
                raise ApiError(409, "meeting-ended", "this meeting has ended") from None
            except meetings.MeetingFull:
                raise ApiError(409, "meeting-full", "this meeting is full") from None
            await db.refresh(joined.meeting, ["host"])
        return joined

    async def end(self, room_id: str, user: User) -> Meeting:
        """End the meeting for everyone: 404, 403 `not-host`, 409 `meeting-ended`."""
        async with self.database.session() as db:
            meeting = await _load(db, room_id)
            require(user, host_role(meeting.host_id, user), Action.END_MEETING)
            if meeting.status == "ended":
                raise ApiError(409, "meeting-ended", "this meeting has already ended")
            await meetings.end_meeting(db, meeting)
        await self.close_live(room_id, ENDED_BY_HOST)
        return meeting

    async def delete(self, room_id: str, user: User) -> None:
        """Delete the meeting (host or admin): 404, 403 `not-host`; everyone inside goes."""
        async with self.database.session() as db:
            meeting = await _load(db, room_id)
            require(user, host_role(meeting.host_id, user), Action.EDIT_MEETING)
            await meetings.delete_meeting(db, meeting)
        await self.close_live(room_id, ENDED_BY_HOST)

    async def close_live(self, room_id: str, reason: str) -> None:
        """The meeting is over: store its recording, then tell everyone and disconnect them."""
        await self.recordings.stop(room_id, None, reason="meeting ended")
        self.live.end(room_id, reason)

    async def left(self, room_id: str) -> None:
        """Someone left: once nobody is inside, stop the recording and forget the room."""
        room = self.live.rooms.get(room_id)
        if room is None or room.peers:
            return
        await self.recordings.stop(room_id, None, reason="everyone left")
        self.live.forget_if_empty(room_id)  # unless someone came in meanwhile

    async def shutdown(self) -> None:
        """The server is stopping: store the recordings, then send everyone away."""
        await self.recordings.stop_all("server shutting down")
        self.live.send_everyone_away()
