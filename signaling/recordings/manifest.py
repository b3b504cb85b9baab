"""A recording's manifest as the media server writes it: a row per track as it starts, and
the dominant speaker's timeline.

The recorder records every publication of the room, its own people's and those piped in from
other workers alike; the names stored with each track and speaker come from this worker's
peers, or from presence in Redis for people another worker holds (`LiveMeetings.whereabouts`).
Names seen once are kept, so a person who leaves before their last speaker change is still
named.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sfu import RecordedTrack
from signaling.realtime.live import LiveMeetings
from storage import recordings
from storage.database import Database

log = logging.getLogger(__name__)


class Manifest:
    """The media server's `RecordingEvents` for one recording."""

    def __init__(
        self,
        database: Database,
        live: LiveMeetings,
        room_id: str,
        recording_id: int,
        failed: Callable[[str], Awaitable[None]],
    ) -> None:
        self.database, self.live = database, live
        self.room_id, self.recording_id = room_id, recording_id
        self._failed = failed
        self._names: dict[str, tuple[int | None, str]] = {}

    async def who(self, participant_id: str) -> tuple[int | None, str]:
        """(user id, display name) of a participant on this worker or another one; the
        participant id itself when nobody knows them any more."""
        room = self.live.rooms.get(self.room_id)
        peer = room.peers.get(participant_id) if room else None
        if peer is not None:
            self._names[participant_id] = (peer.user_id, peer.display_name)
        elif participant_id not in self._names:
            try:
                found = await self.live.whereabouts(self.room_id, participant_id)
            except Exception:  # Redis unreachable: the track is still recorded, unnamed
                log.exception("could not look up %s in %s", participant_id, self.room_id)
                found = None
            if found is not None:
                self._names[participant_id] = (found[1].user_id, found[1].display_name)
        return self._names.get(participant_id, (None, participant_id))

    async def track_started(self, track: RecordedTrack) -> None:
        user_id, name = await self.who(track.participant_id)
        async with self.database.session() as db:
            await recordings.add_track(
                db,
                self.recording_id,
                user_id=user_id,
                participant_id=track.participant_id,
                display_name=name,
                kind=track.kind,
                source=track.source,
                file=track.name,
                codec=track.codec,
                start_offset=track.start_offset,
            )

    async def speaker_changed(self, participant_id: str | None, offset: float) -> None:
        if participant_id is None:
            return
        user_id, name = await self.who(participant_id)
        async with self.database.session() as db:
            await recordings.add_speaker(
                db,
                self.recording_id,
                at_seconds=offset,
                participant_id=participant_id,
                user_id=user_id,
                display_name=name,
            )

    async def failed(self, reason: str) -> None:
        log.error(
            "recording %s in %s stopped by a write error: %s",
            self.recording_id,
            self.room_id,
            reason,
        )
        await self._failed(reason)
