"""Starting and stopping server-side recordings, and keeping their manifest.

REST and signaling both come here. The SFU records; this module decides who may, writes
the manifest rows as tracks start, tells everyone in the meeting, and hands a stopped
recording to the composition queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sfu import RecordedTrack, RecordingError, RecordingSummary
from signaling.compose_jobs import ComposeQueue, recordings_root
from signaling.events import chat_event
from signaling.live import LiveMeetings, LiveRoom
from storage import chat, meetings, recordings
from storage.database import Database
from storage.models import Meeting, User
from storage.types import utcnow

log = logging.getLogger(__name__)


class RecordingRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Active:
    recording_id: int
    meeting_id: int


class _Manifest:
    """The SFU's RecordingEvents for one recording: a row per track as it starts."""

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

    async def failed(self, reason: str) -> None:
        log.error(
            "recording %s in %s stopped by a write error: %s",
            self.recording_id,
            self.room_id,
            reason,
        )
        await self.control.stop(self.room_id, None, reason=f"write error: {reason}")


class RecordingControl:
    def __init__(self, database: Database, live: LiveMeetings, jobs: ComposeQueue) -> None:
        self.database = database
        self.live = live
        self.jobs = jobs
        self.active: dict[str, _Active] = {}

    def state(self, room_id: str) -> dict[str, Any]:
        active = self.active.get(room_id)
        return {
            "active": active is not None,
            "recording_id": active.recording_id if active else None,
        }

    async def _may_control(self, db: Any, meeting: Meeting, user: User) -> bool:
        if meeting.host_id == user.id:
            return True
        return await meetings.open_role(db, meeting.id, user.id) == "moderator"

    async def start(self, room_id: str, user: User) -> int:
        async with self.database.session() as db:
            meeting = await meetings.get_meeting(db, room_id)
            if meeting is None:
                raise RecordingRefused(404, "meeting-not-found", "no meeting has this id")
            if not meeting.enable_recording:
                raise RecordingRefused(
                    409, "recording-disabled", "this meeting's settings do not allow recording"
                )
            if not await self._may_control(db, meeting, user):
                raise RecordingRefused(
                    403, "not-moderator", "only the host or a moderator can start recording"
                )
            room = self.live.rooms.get(room_id)
            if room is None or not room.peers:
                raise RecordingRefused(409, "meeting-not-live", "nobody is in the meeting")
            if room_id in self.active:
                raise RecordingRefused(409, "already-recording", "the meeting is being recorded")
            recording = await recordings.create_recording(
                db, meeting_id=meeting.id, started_by_id=user.id, directory=""
            )
            recording.directory = f"recordings/{recording.id}"
            recording_id = recording.id
        directory = recordings_root(self.jobs.settings) / str(recording_id)
        try:
            self.live.media.start_recording(
                room_id, directory, _Manifest(self, room_id, recording_id)
            )
        except (RecordingError, OSError) as exc:
            async with self.database.session() as db:
                row = await recordings.get_recording(db, recording_id)
                if row is not None:
                    row.state, row.failure_reason, row.stopped_at = "failed", str(exc), utcnow()
            raise RecordingRefused(409, "recording-unavailable", str(exc)) from None
        self.active[room_id] = _Active(recording_id, room.meeting_id)
        room.broadcast(
            {
                "type": "recording-started",
                "recording_id": recording_id,
                "by": {"user_id": user.id, "display_name": user.display_name},
            }
        )
        await self._system_message(room, f"{user.display_name} started recording")
        log.info("recording %s started in %s by user %s", recording_id, room_id, user.id)
        return recording_id

    async def stop_by(self, room_id: str, user: User) -> int:
        """An explicit stop: host, moderator, or any admin."""
        async with self.database.session() as db:
            meeting = await meetings.get_meeting(db, room_id)
            if meeting is None:
                raise RecordingRefused(404, "meeting-not-found", "no meeting has this id")
            allowed = user.role == "admin" or await self._may_control(db, meeting, user)
        if not allowed:
            raise RecordingRefused(
                403, "not-moderator", "only the host, a moderator or an admin can stop recording"
            )
        recording_id = await self.stop(room_id, user, reason="stopped")
        if recording_id is None:
            raise RecordingRefused(409, "not-recording", "the meeting is not being recorded")
        return recording_id

    async def stop(self, room_id: str, user: User | None, *, reason: str) -> int | None:
        """Stop (if recording): finish the files, store the manifest, queue composition."""
        active = self.active.pop(room_id, None)
        if active is None:
            return None
        summary = await self.live.media.stop_recording(room_id)
        await self._store(active.recording_id, summary, user, reason)
        room = self.live.rooms.get(room_id)
        if room is not None:
            by = {"user_id": user.id, "display_name": user.display_name} if user else None
            room.broadcast(
                {
                    "type": "recording-stopped",
                    "recording_id": active.recording_id,
                    "by": by,
                    "reason": reason,
                }
            )
            who = user.display_name if user else "Tertulia"
            await self._system_message(room, f"{who} stopped recording ({reason})")
        log.info("recording %s stopped in %s: %s", active.recording_id, room_id, reason)
        return active.recording_id

    async def _store(
        self, recording_id: int, summary: RecordingSummary | None, user: User | None, reason: str
    ) -> None:
        async with self.database.session() as db:
            recording = await recordings.get_recording(db, recording_id)
            if recording is None:
                return
            recording.stopped_at = utcnow()
            recording.stopped_by_id = user.id if user else None
            if summary is not None:
                by_file = {s.track.name: s for s in summary.tracks}
                for track in recording.tracks:
                    if (found := by_file.get(track.file)) is not None:
                        track.duration_seconds = found.duration
                        track.size_bytes = found.size_bytes
                recording.duration_seconds = summary.duration
                recording.size_bytes = sum(s.size_bytes for s in summary.tracks)
            if summary is not None and summary.error:
                recording.state = "interrupted"
                recording.failure_reason = summary.error
            else:
                recording.state = "processing"
                recording.progress = 0.0
        if summary is not None and not summary.error:
            self.jobs.enqueue(recording_id)

    async def _system_message(self, room: LiveRoom, text: str) -> None:
        async with self.database.session() as db:
            message = await chat.add_message(
                db, meeting_id=room.meeting_id, author_id=None, text=text, kind="system"
            )
            event = chat_event(message)
        room.broadcast({"type": "chat", "message": event})

    async def stop_all(self, reason: str) -> None:
        for room_id in list(self.active):
            await self.stop(room_id, None, reason=reason)
