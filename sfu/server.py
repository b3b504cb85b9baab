"""MediaServer: rooms of participants, slot allocation and the public entry points."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rtp import aiortc_hooks

from .api import MediaEvents, MediaSettings, NegotiationError, RecordingError, Source
from .forwarding import Counters, Publication
from .participant import Participant
from .recording import RecordingEvents, RecordingSummary, RoomRecording

logger = logging.getLogger(__name__)


def _mid_order(mid: str) -> tuple[int, str]:
    return (int(mid), mid) if mid.isdigit() else (1 << 30, mid)


class MediaServer:
    """Selective forwarding of encoded media between participants of the same room."""

    def __init__(self, settings: MediaSettings) -> None:
        aiortc_hooks.self_check()
        aiortc_hooks.install()
        self.settings = settings
        self.counters = Counters()
        self._rooms: dict[str, dict[str, Participant]] = {}
        self._recordings: dict[str, RoomRecording] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    # ------------------------------------------------------------ public API
    async def join(self, room_id: str, participant_id: str, events: MediaEvents) -> None:
        """Register a participant; media starts with its first offer."""
        if self._closed:
            raise RuntimeError("MediaServer is closed")
        room = self._rooms.setdefault(room_id, {})
        if participant_id in room:
            await self.leave(room_id, participant_id)
            room = self._rooms.setdefault(room_id, {})
        room[participant_id] = Participant(
            room_id, participant_id, events, self.settings, self.counters, self._lost
        )
        logger.info("participant %s joined room %s", participant_id, room_id)

    async def negotiate(
        self,
        room_id: str,
        participant_id: str,
        offer_sdp: str,
        published: Mapping[str, Source],
    ) -> str:
        """Answer a client offer; sources published before and absent now are unpublished."""
        participant = self._rooms.get(room_id, {}).get(participant_id)
        if participant is None or participant.closed:
            raise NegotiationError("not-joined", f"{participant_id} is not in room {room_id}")
        async with participant.lock:
            if participant.closed:
                raise NegotiationError("not-joined", f"{participant_id} has left")
            answer = await participant.negotiate(offer_sdp, dict(published))
        self._reconcile(room_id)
        return answer

    async def leave(self, room_id: str, participant_id: str) -> None:
        """Close the participant's PC and free the slots it fed (idempotent)."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        participant = room.pop(participant_id, None)
        if participant is None:
            return
        if not room:
            del self._rooms[room_id]
        await participant.close()
        self._reconcile(room_id)
        logger.info("participant %s left room %s", participant_id, room_id)

    async def close_room(self, room_id: str) -> None:
        for participant_id in list(self._rooms.get(room_id, {})):
            await self.leave(room_id, participant_id)

    # ------------------------------------------------------------ recording
    def start_recording(self, room_id: str, directory: Path, events: RecordingEvents) -> None:
        """Record every track published in the room, now and until stop_recording()."""
        if room_id in self._recordings:
            raise RecordingError("this room is already being recorded")
        recording = RoomRecording(directory, events, self.settings.video_codec)
        self._recordings[room_id] = recording
        recording.sync(self._publications(room_id))

    def is_recording(self, room_id: str) -> bool:
        return room_id in self._recordings

    async def stop_recording(self, room_id: str) -> RecordingSummary | None:
        recording = self._recordings.pop(room_id, None)
        if recording is None:
            return None
        return await recording.stop()

    def _publications(self, room_id: str) -> list[Publication]:
        return [
            pub
            for participant in self._rooms.get(room_id, {}).values()
            if not participant.closed
            for pub in participant.publications.values()
        ]

    async def close(self) -> None:
        self._closed = True
        for room_id in list(self._recordings):
            await self.stop_recording(room_id)
        for room_id in list(self._rooms):
            await self.close_room(room_id)
        for task in list(self._background):
            if task is not asyncio.current_task():
                await asyncio.gather(task, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        participants = [p for room in self._rooms.values() for p in room.values()]
        pcs = [p.pc for p in participants if p.pc is not None]
        return {
            "rooms": len(self._rooms),
            "participants": len(participants),
            "peer_connections": sum(1 for pc in pcs if pc.connectionState != "closed"),
            "publications": sum(len(p.publications) for p in participants),
            "slots": sum(len(p.slots) for p in participants),
            "forwarded_streams": sum(
                1 for p in participants for s in p.slots.values() if s.source is not None
            ),
            "packets_received": self.counters.packets_in,
            "frames_received": self.counters.frames_in,
            "packets_forwarded": self.counters.packets_forwarded,
            "frames_forwarded": self.counters.frames_forwarded,
            "retransmissions": self.counters.retransmissions,  # rtp.repair.RESEND_*
            "retransmissions_refused": self.counters.retransmissions_refused,
            "keyframe_requests_sent": self.counters.keyframe_requests_sent,
            "decoders_started": aiortc_hooks.decoders_started()
            + sum(
                1 for p in participants for r in p.receivers() if aiortc_hooks.decoder_running(r)
            ),
        }

    def slots(self, room_id: str, participant_id: str) -> list[Any]:
        """Current slot map of one subscriber (same content as the last slots_changed)."""
        participant = self._rooms.get(room_id, {}).get(participant_id)
        return participant.slot_assignments() if participant else []

    # ------------------------------------------------------------ internals
    def _lost(self, participant: Participant, reason: str) -> None:
        """Connection died without leave(): drop the participant in the background."""
        task = asyncio.ensure_future(self.leave(participant.room_id, participant.id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _reconcile(self, room_id: str) -> None:
        """Attach every publication of a room to an idle slot of every other participant
        (and to the room's recorder, if it is being recorded)."""
        room = self._rooms.get(room_id, {})
        recording = self._recordings.get(room_id)
        if recording is not None:
            recording.sync(self._publications(room_id))
        live = [p for p in room.values() if not p.closed]
        for subscriber in live:
            wanted: list[Publication] = [
                pub
                for other in live
                if other is not subscriber
                for pub in other.publications.values()
                if not pub.closed
            ]
            wanted_ids = {id(p) for p in wanted}
            for slot in subscriber.slots.values():
                if slot.source is not None and (
                    slot.source.closed or id(slot.source) not in wanted_ids
                ):
                    slot.set_source(None)
            attached = {id(s.source) for s in subscriber.slots.values() if s.source is not None}
            missing = {"audio": 0, "video": 0}
            for pub in wanted:
                if id(pub) in attached:
                    continue
                idle = [
                    subscriber.slots[mid]
                    for mid in sorted(subscriber.slots, key=_mid_order)
                    if subscriber.slots[mid].idle and subscriber.slots[mid].kind == pub.kind
                ]
                if idle:
                    idle[0].set_source(pub)
                else:
                    missing[pub.kind] += 1
            more = {k: max(0, missing[k] - subscriber.requested[k]) for k in missing}
            if subscriber.pc is not None and (more["audio"] or more["video"]):
                subscriber.requested = {k: subscriber.requested[k] + more[k] for k in more}
                total = {k: subscriber.slot_count(k) + subscriber.requested[k] for k in more}
                subscriber.emit(
                    "renegotiate", more["audio"], more["video"], total["audio"], total["video"]
                )
            assignments = subscriber.slot_assignments()
            if assignments != subscriber.last_slots_sent:
                subscriber.last_slots_sent = assignments
                subscriber.emit("slots_changed", assignments)
