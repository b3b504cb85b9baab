"""MediaServer: the public entry points of the media side, and the rooms it keeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rtp import aiortc_hooks

from .api import (
    SOURCE_KIND,
    Kind,
    MediaEvents,
    MediaSettings,
    NegotiationError,
    PipeError,
    ReceivePolicy,
    RecordingError,
    Source,
)
from .forwarding import Counters
from .participant import Participant
from .pipe import PipeEndpoint, PipeIn, PipeOut
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
        self._pipes: PipeEndpoint | None = None  # bound on first use

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

    def answer_applied(self, room_id: str, participant_id: str) -> None:
        """The client applied the last answer (the protocol's `answer-applied`): the receive
        slots it created may send from their next keyframe on. Idempotent; nothing happens
        for someone who has not offered yet."""
        room = self._rooms.get(room_id)
        participant = room.participants.get(participant_id) if room else None
        if participant is not None:
            participant.answer_applied()

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
        if room is None:
            return
        participant = room.participants.get(participant_id)
        remote = any(pid == participant_id for pid, _ in room.remote)
        if participant is None and not remote:
            return
        if participant is not None:
            participant.blocked = sources  # (its pipes to other servers pause too)
        if remote:  # a participant of another server, piped here
            if sources:
                room.remote_blocked[participant_id] = sources
            else:
                room.remote_blocked.pop(participant_id, None)
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

    # ------------------------------------------------------------ pipes between servers
    def pipe_address(self) -> tuple[str, int]:
        """(address, port) other media servers send this one's pipes to (binds the pipe
        socket on first use: `MediaSettings.pipe_bind_address`, `pipe_port`)."""
        return self._pipe_endpoint().address()

    def start_pipe(
        self,
        room_id: str,
        participant_id: str,
        source: Source,
        destination: tuple[str, int],
        pipe_id: int,
    ) -> None:
        """Send this publication's RTP to another media server (`destination`: its
        `pipe_address()`), where `add_remote_publication` with the same `pipe_id` receives
        it; until `stop_pipe`, or until the publication goes away (unpublished, participant
        left), when the other server is told (a BYE) and closes its publication. While a
        moderator blocks the source, nothing is sent. PipeError: `no-publication`,
        `pipe-id-in-use`, `bad-pipe`, `bad-address`."""
        room = self._rooms.get(room_id)
        participant = room.participants.get(participant_id) if room else None
        publication = (
            participant.publications.get(source)
            if participant is not None and not participant.closed
            else None
        )
        if room is None or participant is None or publication is None or publication.closed:
            raise PipeError(
                "no-publication", f"{participant_id} publishes no {source} in room {room_id}"
            )

        def ended(out: PipeOut) -> None:
            room.pipes.pop(out.pipe_id, None)
            logger.info("pipe %d (%s/%s) ended", out.pipe_id, participant_id, source)

        out = self._pipe_endpoint().open_out(pipe_id, destination, publication, ended)
        room.pipes[pipe_id] = out
        out.set_paused(source in participant.blocked)
        out.start()
        logger.info(
            "pipe %d: %s/%s of room %s to %s", pipe_id, participant_id, source, room_id, destination
        )

    def stop_pipe(self, pipe_id: int) -> None:
        """Stop sending a pipe; the other server is told (idempotent)."""
        out = self._pipes.outgoing.get(pipe_id) if self._pipes else None
        if out is not None:
            out.end()

    def add_remote_publication(
        self,
        room_id: str,
        participant_id: str,
        source: Source,
        kind: Kind,
        codec: str,
        pipe_id: int,
        origin: tuple[str, int],
    ) -> None:
        """A publication of another media server's participant, received through the pipe
        `pipe_id` from `origin` (that server's `pipe_address()`): this room forwards,
        records and hears it like a local one, and its keyframe requests go back up the
        pipe. Call it before the origin's `start_pipe`, so no packet arrives unknown. A
        remote publication of the same participant and source is replaced. PipeError:
        `codec-mismatch`, `pipe-id-in-use`, `bad-pipe`, `bad-address`."""
        if self._closed:
            raise RuntimeError("MediaServer is closed")
        expected = self.settings.video_codec if kind == "video" else "opus"
        if SOURCE_KIND.get(source) != kind or codec != expected:
            raise PipeError(
                "codec-mismatch", f"{source} as {kind}/{codec}: this server takes {expected}"
            )
        endpoint = self._pipe_endpoint()
        room = self._room(room_id)

        def ended(into: PipeIn) -> None:
            if room.remote.get((participant_id, source)) is into:
                del room.remote[participant_id, source]
                if not any(pid == participant_id for pid, _ in room.remote):
                    room.remote_blocked.pop(participant_id, None)
            if source == "microphone":
                room.forget_speaker(participant_id)
            self._forget_if_empty(room)
            room.reconcile()
            logger.info("remote %s/%s of room %s ended", participant_id, source, room_id)

        try:
            into = endpoint.open_in(
                pipe_id,
                origin,
                participant_id,
                source,
                kind,
                codec,
                self.settings.video_codec,
                ended,
            )
        except PipeError:
            self._forget_if_empty(room)  # a room made for nothing
            raise
        previous = room.remote.pop((participant_id, source), None)
        room.remote[participant_id, source] = into
        if previous is not None:
            previous.end()
        room.reconcile()
        logger.info(
            "remote %s/%s in room %s from pipe %d of %s",
            participant_id,
            source,
            room_id,
            pipe_id,
            origin,
        )

    def remove_remote_publication(self, room_id: str, participant_id: str, source: Source) -> None:
        """Close a remote publication (its slots fall idle, its recording ends; idempotent).
        The origin keeps sending until its `stop_pipe`: stop that too."""
        room = self._rooms.get(room_id)
        into = room.remote.get((participant_id, source)) if room else None
        if into is not None:
            into.end()

    def _pipe_endpoint(self) -> PipeEndpoint:
        if self._pipes is None:
            if self._closed:
                raise RuntimeError("MediaServer is closed")
            settings = self.settings
            self._pipes = PipeEndpoint(
                settings.pipe_bind_address,
                settings.pipe_port,
                settings.pipe_announced_address,
                self.counters,
            )
        return self._pipes

    async def close(self) -> None:
        self._closed = True
        for room_id in list(self._rooms):
            await self.stop_recording(room_id)
        for room_id in list(self._rooms):
            await self.close_room(room_id)
        if self._pipes is not None:
            self._pipes.close()  # the pipes still arriving
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
            # pipes between media servers (sfu.pipe): pipes now, media datagrams and their
            # payload bytes, datagrams dropped (malformed, unknown pipe, wrong sender)
            "pipe_streams_out": len(self._pipes.outgoing) if self._pipes else 0,
            "pipe_streams_in": len(self._pipes.incoming) if self._pipes else 0,
            # outgoing video pipes that send nothing now: nobody on the far side uses them
            "pipe_streams_idle": (
                sum(out.idle for out in self._pipes.outgoing.values()) if self._pipes else 0
            ),
            "packets_piped_out": self.counters.packets_piped_out,
            "packets_piped_in": self.counters.packets_piped_in,
            "bytes_piped_out": self.counters.bytes_piped_out,
            "bytes_piped_in": self.counters.bytes_piped_in,
            "pipe_datagrams_dropped": self.counters.pipe_datagrams_dropped,
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
        """A room lives while someone is in it, a publication is piped into it, or it is
        being recorded."""
        if not room.participants and not room.remote and room.recording is None:
            self._rooms.pop(room.room_id, None)

    def _lost(self, participant: Participant, reason: str) -> None:
        """Connection died without leave(): drop the participant in the background."""
        task = asyncio.ensure_future(self.leave(participant.room_id, participant.id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
