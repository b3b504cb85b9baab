"""A worker leaving hands its recordings over to the workers that stay (docs/recording.md).

The leaving worker stops each of its recordings as a normal stop would (files finished,
state 'processing', so the leader composes it; nothing is left 'recording' for recovery to
take for interrupted), then offers the meeting to every other live worker that holds people
of it (`commands.TakeOverRecording`). Each of them that is not leaving itself tries to claim
a new recording; the database's one-live-recording-per-meeting index lets exactly one
succeed, and that one records from then on and says so in the chat. When no other worker
holds anyone, the recording simply stops. Without a cluster (one process) there is nobody to
hand over to: the recordings stop, as they always did at shutdown.
"""

from __future__ import annotations

import logging
from typing import Any

from signaling.audit import AuditLog
from signaling.errors import ApiError
from signaling.realtime.live import LiveMeetings
from signaling.recordings import commands
from signaling.recordings.control import RecordingControl
from storage import meetings, recordings
from storage.database import Database

log = logging.getLogger(__name__)
STOPPED_FOR = "server shutting down"
CONTINUED = "Recording continues on another server after a restart"


class HandOver:
    def __init__(self, control: RecordingControl, audit: AuditLog) -> None:
        self.control = control
        self.audit = audit

    @property
    def live(self) -> LiveMeetings:
        return self.control.live

    @property
    def database(self) -> Database:
        return self.control.database

    async def give(self) -> None:
        """This worker is leaving: stop each recording cleanly and offer it to the workers
        that still hold people of the meeting."""
        for room_id, active in list(self.control.active.items()):
            try:
                await self._give(room_id, active.recording_id)
            except Exception:
                log.exception("could not hand over the recording of %s", room_id)
        await self.control.stop_all(STOPPED_FOR)  # anything the loop could not

    async def _give(self, room_id: str, recording_id: int) -> None:
        async with self.database.session() as db:
            row = await recordings.get_recording(db, recording_id)
            started_by = row.started_by_id if row is not None else None
        heirs = sorted({worker for worker, _ in await self.live.elsewhere(room_id)})
        await self.control.stop_here(room_id, None, reason=STOPPED_FOR)
        offer = commands.TakeOverRecording(previous_id=recording_id, started_by_id=started_by)
        for worker in heirs:
            self.live.tell(worker, room_id, offer.model_dump())
        log.info(
            "recording %s of %s stopped for the drain; offered to %d workers",
            recording_id,
            room_id,
            len(heirs),
        )

    async def take(self, room_id: str, raw: dict[str, Any]) -> None:
        """Another worker left while recording this meeting: record it here if this worker
        holds people of it and claims it first."""
        offer = commands.parse(room_id, raw)
        if not isinstance(offer, commands.TakeOverRecording) or self.live.draining:
            return
        room = self.live.rooms.get(room_id)
        if room is None or not room.peers:
            return
        async with self.database.session() as db:
            meeting = await meetings.get_meeting(db, room_id)
        if meeting is None or meeting.status == "ended" or not meeting.enable_recording:
            return
        try:
            recording_id, directory = await self.control.claim(meeting.id, offer.started_by_id)
        except ApiError:
            return  # another worker claimed it first (or someone started one meanwhile)
        try:
            await self.control.begin_here(
                room_id, meeting.id, recording_id, directory, by=None, note=CONTINUED
            )
        except ApiError as refused:
            log.warning("could not take over the recording of %s: %s", room_id, refused.message)
            return
        await self.audit.record(
            None,
            "recording-start",
            room_id=room_id,
            recording_id=recording_id,
            detail=f"hand-over of recording {offer.previous_id}",
        )
        log.info(
            "recording %s of %s continues here (hand-over of %s)",
            recording_id,
            room_id,
            offer.previous_id,
        )
