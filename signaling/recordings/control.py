"""Starting and stopping server-side recordings, and keeping their manifest.

REST and signaling both come here. The media server records; this module decides who may
(`signaling.permissions`), writes the manifest rows as tracks start, tells everyone in the
meeting, and hands a stopped recording to the composition queue. Its state changes go
through `signaling.recordings.lifecycle`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sfu import RecordedTrack, RecordingError
from signaling.audit import Actor, AuditLog
from signaling.errors import ApiError
from signaling.leader import WORKER_ID
from signaling.permissions import Action, require
from signaling.realtime.events import (
    ChatMessageOut,
    ChatPosted,
    Person,
    RecordingStarted,
    RecordingState,
    RecordingStopped,
)
from signaling.realtime.live import LiveMeetings, LiveRoom
from signaling.recordings import lifecycle
from signaling.recordings.jobs import ComposeQueue
from storage import chat, meetings, recordings
from storage.database import Database
from storage.models import User

log = logging.getLogger(__name__)


@dataclass
class _Active:
    recording_id: int
    meeting_id: int


class _Manifest:
    """The media server's RecordingEvents for one recording: a row per track as it starts."""

    def __init__(self, control: RecordingControl, room_id: str, recording_id: int) -> None:
        self.control, self.room_id, self.recording_id = control, room_id, recording_id

    async def track_started(self, track: RecordedTrack) -> None:
        room = self.control.live.rooms.get(self.room_id)
        peer = room.peers.get(track.participant_id) if room else None
        async with self.control.database.session() as db:
            await recordings.add_track(
                db,
                self.recording_id,
                user_id=peer.user_id if peer else None,
                participant_id=track.participant_id,
                display_name=peer.display_name if peer else track.participant_id,
                kind=track.kind,
                source=track.source,
                file=track.name,
                codec=track.codec,
                start_offset=track.start_offset,
            )

    async def speaker_changed(self, participant_id: str | None, offset: float) -> None:
        if participant_id is None:
            return
        room = self.control.live.rooms.get(self.room_id)
        peer = room.peers.get(participant_id) if room else None
        async with self.control.database.session() as db:
            await recordings.add_speaker(
                db,
                self.recording_id,
                at_seconds=offset,
                participant_id=participant_id,
                user_id=peer.user_id if peer else None,
                display_name=peer.display_name if peer else participant_id,
            )

    async def failed(self, reason: str) -> None:
        log.error(
            "recording %s in %s stopped by a write error: %s",
            self.recording_id,
            self.room_id,
            reason,
        )
        await self.control.stop(self.room_id, None, reason=f"write error: {reason}")


def _person(user: User) -> Person:
    return Person(user_id=user.id, display_name=user.display_name)


class RecordingControl:
    def __init__(
        self, database: Database, live: LiveMeetings, jobs: ComposeQueue, audit: AuditLog
    ) -> None:
        self.database = database
        self.live = live
        self.jobs = jobs
        self.audit = audit
        self.active: dict[str, _Active] = {}
        self._leases: asyncio.Task[None] | None = None

    def keep_leases(self) -> None:
        """Keep the leases of this worker's recordings: while it lives, no leader's recovery
        takes them for interrupted."""
        self._leases = asyncio.create_task(self._renew_leases(), name="recording-leases")

    async def stop_leases(self) -> None:
        if self._leases is not None:
            self._leases.cancel()
            await asyncio.gather(self._leases, return_exceptions=True)

    async def _renew_leases(self) -> None:
        period = self.jobs.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            ids = [active.recording_id for active in self.active.values()]
            if not ids:
                continue
            try:
                async with self.database.session() as db:
                    await recordings.renew_leases(db, ids, WORKER_ID)
            except Exception:
                log.exception("could not renew the leases of recordings %s", ids)

    def state(self, room_id: str) -> RecordingState:
        active = self.active.get(room_id)
        return RecordingState(
            active=active is not None, recording_id=active.recording_id if active else None
        )

    async def start(self, room_id: str, user: User, address: str | None = None) -> int:
        """Start recording (host, moderators, admins); audited, refusals included."""
        actor = Actor(user, address)
        async with self.audit.refusals(actor, "recording-start", room_id=room_id):
            recording_id = await self._start(room_id, user)
        await self.audit.record(
            actor, "recording-start", room_id=room_id, recording_id=recording_id
        )
        return recording_id

    async def _start(self, room_id: str, user: User) -> int:
        async with self.database.session() as db:
            meeting = await meetings.get_meeting(db, room_id)
            if meeting is None:
                raise ApiError(404, "meeting-not-found", "no meeting has this id")
            if not meeting.enable_recording:
                raise ApiError(
                    409, "recording-disabled", "this meeting's settings do not allow recording"
                )
            require(user, await meetings.role_of(db, meeting, user.id), Action.START_RECORDING)
            room = self.live.rooms.get(room_id)
            if room is None or not room.peers:
                raise ApiError(409, "meeting-not-live", "nobody is in the meeting")
            if room_id in self.active:
                raise ApiError(409, "already-recording", "the meeting is being recorded")
            recording = await lifecycle.begin(db, meeting_id=meeting.id, started_by_id=user.id)
            recording_id, directory = recording.id, self.jobs.directory(recording)
        try:
            self.live.media.start_recording(
                room_id, directory, _Manifest(self, room_id, recording_id)
            )
        except (RecordingError, OSError) as exc:
            async with self.database.session() as db:
                row = await recordings.get_recording(db, recording_id)
                if row is not None:
                    lifecycle.could_not_start(row, str(exc))
            raise ApiError(409, "recording-unavailable", str(exc)) from None
        self.active[room_id] = _Active(recording_id, room.meeting_id)
        room.broadcast(RecordingStarted(recording_id=recording_id, by=_person(user)))
        await self._system_message(room, f"{user.display_name} started recording")
        log.info("recording %s started in %s by user %s", recording_id, room_id, user.id)
        return recording_id

    async def stop_by(self, room_id: str, user: User, address: str | None = None) -> int:
        """An explicit stop: host, moderator, or any admin; audited, refusals included."""
        actor = Actor(user, address)
        async with self.audit.refusals(actor, "recording-stop", room_id=room_id):
            async with self.database.session() as db:
                meeting = await meetings.get_meeting(db, room_id)
                if meeting is None:
                    raise ApiError(404, "meeting-not-found", "no meeting has this id")
                role = await meetings.role_of(db, meeting, user.id)
            require(user, role, Action.STOP_RECORDING)
            recording_id = await self.stop(room_id, user, reason="stopped")
            if recording_id is None:
                raise ApiError(409, "not-recording", "the meeting is not being recorded")
        await self.audit.record(actor, "recording-stop", room_id=room_id, recording_id=recording_id)
        return recording_id

    async def stop(self, room_id: str, user: User | None, *, reason: str) -> int | None:
        """Stop (if recording): finish the files, store the manifest, queue composition."""
        active = self.active.pop(room_id, None)
        if active is None:
            return None
        summary = await self.live.media.stop_recording(room_id)
        async with self.database.session() as db:
            recording = await recordings.get_recording(db, active.recording_id)
            compose = recording is not None and lifecycle.stopped(
                recording, summary, user.id if user else None
            )
        if compose:
            self.jobs.enqueue(active.recording_id)
        room = self.live.rooms.get(room_id)
        if room is not None:
            room.broadcast(
                RecordingStopped(
                    recording_id=active.recording_id,
                    by=_person(user) if user else None,
                    reason=reason,
                )
            )
            who = user.display_name if user else "Tertulia"
            await self._system_message(room, f"{who} stopped recording ({reason})")
        log.info("recording %s stopped in %s: %s", active.recording_id, room_id, reason)
        return active.recording_id

    async def _system_message(self, room: LiveRoom, text: str) -> None:
        async with self.database.session() as db:
            message = await chat.add_message(
                db, meeting_id=room.meeting_id, author_id=None, text=text, kind="system"
            )
            event = ChatPosted(message=ChatMessageOut.of(message))
        room.broadcast(event)

    async def stop_all(self, reason: str) -> None:
        for room_id in list(self.active):
            await self.stop(room_id, None, reason=reason)
