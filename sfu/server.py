"""MediaServer: the public entry points of the media side, and the rooms it keeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rtp import aiortc_hooks

from .api import (
    MediaEvents,
    MediaSettings,
    NegotiationError,
    ReceivePolicy,
    RecordingError,
    Source,
)
from .forwarding import Counters
from .participant import Participant
from .recording import RecordingEvents, RecordingSummary, RoomRecording
from .relay_baseline import RelayForwarding
from .room import Room
from .speakers import SpeakerState
from .strategies import EncodedForwarding, ForwardingFactory

logger = logging.getLogger(__name__)


class MediaServer:
    """Selective forwarding of encoded media between participants of the same room."""

    def __init__(self, settings: MediaSettings) -> None:
        aiortc_hooks.self_check()
        aiortc_hooks.install()
        self.settings = settings
        self.counters = Counters()
        # chosen once: meetings forward encoded RTP; "relay" is the benchmark's baseline
        self._forwarding: ForwardingFactory = (
            RelayForwarding if settings.forwarding == "relay" else EncodedForwarding
        )
        self._rooms: dict[str, Room] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    # ------------------------------------------------------------ public API
    async def join(self, room_id: str, participant_id: str, events: MediaEvents) -> None:
        """Register a participant; media starts with its first offer."""
        if self._closed:
            raise RuntimeError("MediaServer is closed")
        room = self._rooms.get(room_id)
        if room is not None and participant_id in room.participants:
            await self.leave(room_id, participant_id)
        room = self._room(room_id)
        forwarding = self._forwarding(participant_id, self.counters, self.settings.video_codec)
        room.participants[participant_id] = Participant(
            room_id, participant_id, events, self.settings, forwarding, self._lost
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
        room = self._rooms.get(room_id)
        participant = room.participants.get(participant_id) if room else None
        if room is None or participant is None or participant.closed:
            raise NegotiationError("not-joined", f"{participant_id} is not in room {room_id}")
        async with participant.lock:
            if participant.closed:
                raise NegotiationError("not-joined", f"{participant_id} has left")
            answer = await participant.negotiate(offer_sdp, dict(published))
        room.reconcile()
        return answer

    async def leave(self, room_id: str, participant_id: str) -> None:
        """Close the participant's PC and free the slots it fed (idempotent)."""
        room = self._rooms.get(room_id)
        participant = room.participants.pop(participant_id, None) if room else None
        if room is None or participant is None:
            return
        self._forget_if_empty(room)
        room.forget_speaker(participant_id)
        await participant.close()
        room.reconcile()
        logger.info("participant %s left room %s", participant_id, room_id)

    def set_receive(self, room_id: str, participant_id: str, policy: ReceivePolicy) -> None:
        """What the participant wants forwarded from now on (the protocol's `receive`)."""
        room = self._rooms.get(room_id)
        participant = room.participants.get(participant_id) if room else None
        if room is None or participant is None:
            raise NegotiationError("not-joined", f"{participant_id} is not in room {room_id}")
        participant.policy = policy
        room.reconcile()

    def block(self, room_id: str, participant_id: str, sources: frozenset[Source]) -> None:
        """Forward and record none of these sources of the participant from now on (a
        moderator's mute), and all the others again. Takes effect at once: the slots that
        carried them are given to others or fall idle in this call."""
        room = self._rooms.get(room_id)
        participant = room.participants.get(participant_id) if room else None
        if room is None or participant is None:
            return
        participant.blocked = sources
        if "microphone" in sources:
            room.forget_speaker(participant_id)
        room.reconcile()

    def speakers(self, room_id: str) -> SpeakerState[str]:
        """Who is speaking in the room (dominant, recent, audible)."""
        room = self._rooms.get(room_id)
        return room.speakers.state if room else SpeakerState()

    async def close_room(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        for participant_id in list(room.participants if room else ()):
            await self.leave(room_id, participant_id)

    # ------------------------------------------------------------ recording
    def start_recording(self, room_id: str, directory: Path, events: RecordingEvents) -> None:
        """Record every track published in the room, now and until stop_recording()."""
        room = self._room(room_id)
        if room.recording is not None:
            raise RecordingError("this room is already being recorded")
        room.recording = RoomRecording(directory, events, self.settings.video_codec)
        room.recording.sync(room.publications())
        if room.speakers.state.dominant is not None:
            room.recording.speaker_changed(room.speakers.state.dominant)

    def is_recording(self, room_id: str) -> bool:
        room = self._rooms.get(room_id)
        return room is not None and room.recording is not None

    async def stop_recording(self, room_id: str) -> RecordingSummary | None:
        room = self._rooms.get(room_id)
        if room is None or room.recording is None:
            return None
        recording, room.recording = room.recording, None
        self._forget_if_empty(room)
        return await recording.stop()

    async def close(self) -> None:
        self._closed = True
        for room_id in list(self._rooms):
            await self.stop_recording(room_id)
        for room_id in list(self._rooms):
            await self.close_room(room_id)
        for task in list(self._background):
            if task is not asyncio.current_task():
                await asyncio.gather(task, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        participants = [p for room in self._rooms.values() for p in room.participants.values()]
        pcs = [p.pc for p in participants if p.pc is not None]
        return {
            "rooms": sum(1 for room in self._rooms.values() if room.participants),
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
            "bytes_received": self.counters.bytes_in,  # RTP payload bytes
            "bytes_forwarded": self.counters.bytes_forwarded,
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
        room = self._rooms.get(room_id)
        participant = room.participants.get(participant_id) if room else None
        return participant.slot_assignments() if participant else []

    # ------------------------------------------------------------ internals
    def _room(self, room_id: str) -> Room:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = Room(room_id, self.settings)
        return room

    def _forget_if_empty(self, room: Room) -> None:
        """A room lives while someone is in it or it is being recorded."""
        if not room.participants and room.recording is None:
            self._rooms.pop(room.room_id, None)

    def _lost(self, participant: Participant, reason: str) -> None:
        """Connection died without leave(): drop the participant in the background."""
        task = asyncio.ensure_future(self.leave(participant.room_id, participant.id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
