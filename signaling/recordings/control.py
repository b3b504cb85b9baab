"""Starting and stopping server-side recordings.

REST and signaling both come here. The media server records; this module decides who may
(`signaling.permissions`), tells everyone in the meeting, and hands a stopped recording to the
composition queue; `manifest` writes the rows as tracks start. State changes go through
`signaling.recordings.lifecycle`.

Across workers (docs/scaling.md) the recording row in the shared database is the truth: its
`worker_id` is the worker that records, its lease says that worker still lives, and a meeting
has at most one row in 'recording' (a partial unique index), so of two workers asked at once
exactly one starts. The worker that was asked records; while it does it receives every other
worker's publications through the pipes (`LiveMeetings.record`), even once its own people
have left. A stop asked anywhere else is sent to it as a command (`commands.StopRecording`),
as moderation does for acts on people another worker holds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sfu import RecordingError
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
from signaling.realtime.live import LiveMeetings
from signaling.recordings import commands, lifecycle
from signaling.recordings.jobs import ComposeQueue
from signaling.recordings.manifest import Manifest
from storage import chat, meetings, recordings, users
from storage.database import Database
from storage.models import Recording, User
from storage.types import utcnow

log = logging.getLogger(__name__)
STOP_WAIT_SECONDS = 10.0  # how long a stop asked of another worker is waited for
STOP_POLL_SECONDS = 0.1


@dataclass
class _Active:
    recording_id: int
    meeting_id: int


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
        # the worker recordings name as theirs (two apps in one process are two workers)
        self.worker_id = live.worker_id or WORKER_ID
        self.active: dict[str, _Active] = {}  # what this worker records, by room
        self._leases: asyncio.Task[None] | None = None

    # --- leases -----------------------------------------------------------------------------
    def keep_leases(self) -> None:
        """Keep the leases of this worker's recordings: while it lives, no leader's recovery
        takes them for interrupted. The same beat stops a recording nobody is left in."""
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
                    await recordings.renew_leases(db, ids, self.worker_id)
            except Exception:
                log.exception("could not renew the leases of recordings %s", ids)
            for room_id in list(self.active):
                try:
                    await self._stop_if_abandoned(room_id)
                except Exception:
                    log.exception("could not check who is left in %s", room_id)

    def _lapsed(self, recording: Recording) -> bool:
        """Its worker has not renewed the lease in time: it is gone."""
        beat = recording.heartbeat_at
        return beat is None or beat < utcnow() - self.jobs.lease

    # --- state ------------------------------------------------------------------------------
    async def state(self, room_id: str) -> RecordingState:
        """Whether the meeting is being recorded, by this worker or any other (`welcome`)."""
        active = self.active.get(room_id)
        if active is None and self.live.cluster is not None:
            async with self.database.session() as db:
                row = await self._live_row(db, room_id)
            if row is not None and not self._lapsed(row):
                return RecordingState(active=True, recording_id=row.id)
        return RecordingState(
            active=active is not None, recording_id=active.recording_id if active else None
        )

    @staticmethod
    async def _live_row(db: AsyncSession, room_id: str) -> Recording | None:
        meeting = await meetings.get_meeting(db, room_id)
        return None if meeting is None else await recordings.active_recording(db, meeting.id)

    # --- start ------------------------------------------------------------------------------
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
        if self.live.draining:
            raise ApiError(
                409, "recording-unavailable", "this server is going away: try again in a moment"
            )
        room = self.live.rooms.get(room_id)
        if not (room and room.peers) and not await self.live.remote_people(room_id):
            raise ApiError(409, "meeting-not-live", "nobody is in the meeting")
        if room_id in self.active:
            raise ApiError(409, "already-recording", "the meeting is being recorded")
        recording_id, directory = await self.claim(meeting.id, user.id)
        await self.begin_here(
            room_id,
            meeting.id,
            recording_id,
            directory,
            by=_person(user),
            note=f"{user.display_name} started recording",
        )
        log.info("recording %s started in %s by user %s", recording_id, room_id, user.id)
        return recording_id

    async def claim(
        self, meeting_id: int, started_by_id: int | None, *, recovered: bool = False
    ) -> tuple[int, Path]:
        """Make this worker's recording row of the meeting: 409 `already-recording` when
        another one is in progress anywhere in the deployment. The database decides, so of
        two workers claiming at once exactly one gets it. A recording whose worker's lease
        ran out is saved as interrupted first (what the leader would do within seconds)."""
        try:
            async with self.database.session() as db:
                existing = await recordings.active_recording(db, meeting_id)
                if existing is None:
                    recording = await lifecycle.begin(
                        db,
                        meeting_id=meeting_id,
                        started_by_id=started_by_id,
                        worker_id=self.worker_id,
                    )
                    return recording.id, self.jobs.directory(recording)
                lapsed = self._lapsed(existing)
        except IntegrityError:  # another worker's insert came first
            lapsed = False
        if not lapsed or recovered:
            raise ApiError(409, "already-recording", "the meeting is being recorded")
        await self.jobs.recover(stale_before=utcnow() - self.jobs.lease)
        return await self.claim(meeting_id, started_by_id, recovered=True)

    async def begin_here(
        self,
        room_id: str,
        meeting_id: int,
        recording_id: int,
        directory: Path,
        *,
        by: Person | None,
        note: str,
    ) -> None:
        """Record the claimed recording on this worker and tell the meeting."""

        async def failed(reason: str) -> None:
            await self.stop(room_id, None, reason=f"write error: {reason}")

        manifest = Manifest(self.database, self.live, room_id, recording_id, failed)
        try:
            self.live.media.start_recording(room_id, directory, manifest)
        except (RecordingError, OSError) as exc:
            async with self.database.session() as db:
                row = await recordings.get_recording(db, recording_id)
                if row is not None:
                    lifecycle.could_not_start(row, str(exc))
            raise ApiError(409, "recording-unavailable", str(exc)) from None
        self.active[room_id] = _Active(recording_id, meeting_id)
        await self.live.record(room_id, True)  # the other workers' publications too
        self.live.broadcast(room_id, RecordingStarted(recording_id=recording_id, by=by))
        await self._system_message(room_id, meeting_id, note)

    # --- stop -------------------------------------------------------------------------------
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
        """Stop the meeting's recording, whichever worker makes it; None when there is none
        (or its worker is gone: the leader's recovery saves what it wrote)."""
        if room_id in self.active:
            return await self.stop_here(room_id, user, reason=reason)
        if self.live.cluster is None:
            return None
        async with self.database.session() as db:
            row = await self._live_row(db, room_id)
        if row is None or row.worker_id in (None, self.worker_id):
            return None
        worker = str(row.worker_id)
        if not await self.live.cluster.alive(worker):
            return None
        asked = commands.StopRecording(
            recording_id=row.id, user_id=user.id if user else None, reason=reason
        )
        self.live.tell(worker, room_id, asked.model_dump())
        await self._until_stopped(row.id)
        return row.id

    async def _until_stopped(self, recording_id: int) -> None:
        """Wait (a bounded while) for the recording worker to carry a stop out, so what
        the asker does next (REST's answer, `meeting-ended`) comes after it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_WAIT_SECONDS
        while loop.time() < deadline:
            async with self.database.session() as db:
                row = await recordings.get_recording(db, recording_id)
            if row is None or row.state != "recording":
                return
            await asyncio.sleep(STOP_POLL_SECONDS)
        log.warning("recording %s: its worker has not stopped it yet", recording_id)

    async def stop_here(self, room_id: str, user: User | None, *, reason: str) -> int | None:
        """Stop this worker's recording of the meeting: finish the files, store the
        manifest, queue composition, tell the meeting."""
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
        await self.live.record(room_id, False)
        self.live.broadcast(
            room_id,
            RecordingStopped(
                recording_id=active.recording_id,
                by=_person(user) if user else None,
                reason=reason,
            ),
        )
        who = user.display_name if user else "Tertulia"
        await self._system_message(
            room_id, active.meeting_id, f"{who} stopped recording ({reason})"
        )
        log.info("recording %s stopped in %s: %s", active.recording_id, room_id, reason)
        return active.recording_id

    async def everyone_left(self, room_id: str) -> None:
        """The last person this worker held in the meeting left: once nobody is left on
        any worker, the recording stops (here, or on the worker that records). Never
        raises: the caller is a session leaving, which still has its visit to close."""
        try:
            if not await self.live.remote_people(room_id):
                await self.stop(room_id, None, reason="everyone left")
        except Exception:  # Redis or the database unreachable: the lease beat looks again
            log.exception("could not check whether anyone is left in %s", room_id)

    async def _stop_if_abandoned(self, room_id: str) -> None:
        """Two workers' last people leaving at once may each still see the other's in
        presence; the recording worker looks again on every lease beat."""
        room = self.live.rooms.get(room_id)
        if room_id in self.active and not (room and room.peers):
            if not await self.live.remote_people(room_id):
                await self.stop_here(room_id, None, reason="everyone left")

    async def stop_all(self, reason: str) -> None:
        for room_id in list(self.active):
            await self.stop_here(room_id, None, reason=reason)

    # --- asked by another worker --------------------------------------------------------------
    async def command(self, room_id: str, raw: dict[str, Any]) -> None:
        """A stop decided on another worker, for the recording this worker makes."""
        asked = commands.parse(room_id, raw)
        if not isinstance(asked, commands.StopRecording):
            return
        active = self.active.get(room_id)
        if active is None or active.recording_id != asked.recording_id:
            return  # stopped meanwhile
        user = None
        if asked.user_id is not None:
            async with self.database.session() as db:
                user = await users.get_user(db, asked.user_id)
        await self.stop_here(room_id, user, reason=asked.reason)

    # --- telling the meeting ------------------------------------------------------------------
    async def _system_message(self, room_id: str, meeting_id: int, text: str) -> None:
        async with self.database.session() as db:
            message = await chat.add_message(
                db, meeting_id=meeting_id, author_id=None, text=text, kind="system"
            )
            event = ChatPosted(message=ChatMessageOut.of(message))
        self.live.broadcast(room_id, event)
