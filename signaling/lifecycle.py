"""A meeting's life after it starts: ending it when it has been empty too long, and at its
scheduled end when the host asked for that (with a warning five minutes before).

`scheduled` → `active` happens in `storage.meetings.join_meeting` (the first join), `ended`
by the host in `MeetingService.end`; this module is the server's own clock. A sweep every
`TERTULIA_LIFECYCLE_INTERVAL_SECONDS` reads the database (not this process's memory), so it
also ends meetings left active by a previous run of the server. Ending goes through
`MeetingService.end_by_server`: recordings are stopped cleanly, every socket (the waiting
room's too) is told and closed, and the audit trail records it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from signaling.config import Settings
from signaling.meetings import MeetingService
from signaling.realtime.events import MeetingEnding
from signaling.realtime.live import LiveMeetings
from storage import meetings
from storage.database import Database
from storage.types import utcnow

log = logging.getLogger(__name__)
WARN_BEFORE = timedelta(minutes=5)
EMPTY = "the meeting was empty for too long"
SCHEDULE_OVER = "the meeting's scheduled time is over"


class Lifecycle:
    def __init__(
        self,
        database: Database,
        live: LiveMeetings,
        meetings_: MeetingService,
        settings: Settings,
    ) -> None:
        self.database = database
        self.live = live
        self.meetings = meetings_
        self.empty_timeout = settings.empty_meeting_timeout_seconds
        self.interval = settings.lifecycle_interval_seconds
        self._warned: set[tuple[str, datetime]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="meeting-lifecycle")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a database hiccup must not stop the clock for good
                log.exception("meeting lifecycle sweep failed")
            await asyncio.sleep(self.interval)

    async def close_visits_of_dead_workers(self) -> int:
        """Several workers: the visits of a worker that is gone (its lease ran out) ended
        with it, or its meetings would never be empty and its seats never free."""
        cluster = self.live.cluster
        if cluster is None:
            return 0
        async with self.database.session() as db:
            workers = await meetings.visit_workers(db)
            dead = [worker for worker in workers if not await cluster.alive(worker)]
            closed = await meetings.close_visits_of(db, dead)
        if closed:
            log.info("closed %d visits of workers that are gone: %s", closed, ", ".join(dead))
        return closed

    async def sweep(self) -> list[str]:
        """End what is due and warn what is near; returns the room ids ended."""
        await self.close_visits_of_dead_workers()
        now = utcnow()
        ended: list[str] = []
        async with self.database.session() as db:
            empty = (
                await meetings.empty_since_before(db, now - timedelta(seconds=self.empty_timeout))
                if self.empty_timeout
                else []
            )
            scheduled = await meetings.ending_on_schedule(db, now + WARN_BEFORE)
        for meeting in empty:
            room = self.live.rooms.get(meeting.room_id)
            if room is None or not room.peers:  # nobody here either (belt and braces)
                if await self.meetings.end_by_server(meeting.room_id, EMPTY):
                    ended.append(meeting.room_id)
        for meeting in scheduled:
            assert meeting.scheduled_start is not None
            end = meeting.scheduled_start + timedelta(minutes=meeting.duration_minutes)
            if end <= now:
                if await self.meetings.end_by_server(meeting.room_id, SCHEDULE_OVER):
                    ended.append(meeting.room_id)
            elif end - now <= WARN_BEFORE and (meeting.room_id, end) not in self._warned:
                self._warned.add((meeting.room_id, end))
                room = self.live.rooms.get(meeting.room_id)
                if room is not None:
                    room.broadcast(MeetingEnding(at=end, seconds=int((end - now).total_seconds())))
        if ended:
            log.info("lifecycle: ended %d meetings: %s", len(ended), ", ".join(ended))
            self._warned = {w for w in self._warned if w[0] not in ended}
        return ended
