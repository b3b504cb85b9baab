"""An in-test browser talking to MediaServer directly (no WebSocket).

The browser behaviour itself is `client.media.MediaPeer`, shared with the WebSocket client
and the load bots; this adapter only plays the signaling part in-process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection

from client.media import MIC_LEVEL, MediaPeer
from rtp.probe import ReceiveProbe
from rtp.synthetic import Clip, ClipTrack
from sfu import MediaServer, SlotAssignment, Source

from .media import Persona

LOOPBACK = ("127.0.0.1",)
__all__ = ["LOOPBACK", "MIC_LEVEL", "ClientPeer", "person"]


@dataclass
class ClientPeer:
    """Plays the browser's role against MediaServer directly; also its MediaEvents sink."""

    server: MediaServer
    room: str
    pid: str
    clip: Clip
    initial_audio_slots: int = 1
    initial_video_slots: int = 1
    publish_audio: bool = True
    publish_video: bool = True
    clips: dict[Source, Clip] = field(default_factory=dict)  # per source, else `clip`
    audio_level: int = MIC_LEVEL
    persona: Persona | None = None  # who this peer plays (`person`), for the checks
    lost: list[str] = field(default_factory=list)
    speaker_events: list[tuple[str | None, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.media = MediaPeer(
            self.clip,
            self._negotiate,
            ice_host_addresses=LOOPBACK,
            clips=self.clips,
            audio_level=self.audio_level,
            answer_applied=self._answer_applied,
        )

    async def _answer_applied(self) -> None:
        self.server.answer_applied(self.room, self.pid)

    async def _negotiate(self, sdp: str, published: Mapping[str, Source]) -> str:
        return await self.server.negotiate(self.room, self.pid, sdp, published)

    # -- MediaEvents -----------------------------------------------------------------
    async def renegotiate(
        self, audio_slots: int, video_slots: int, audio_total: int, video_total: int
    ) -> None:
        self.media.request_slots(audio_slots, video_slots)

    async def slots_changed(self, slots: list[SlotAssignment]) -> None:
        self.media.set_slots(slots)

    async def connection_lost(self, reason: str) -> None:
        self.lost.append(reason)

    async def speakers_changed(self, dominant: str | None, recent: list[str]) -> None:
        self.speaker_events.append((dominant, recent))

    # -- browser behaviour -----------------------------------------------------------
    @property
    def pc(self) -> RTCPeerConnection:
        return self.media.pc

    @property
    def probes(self) -> dict[str, ReceiveProbe]:
        return self.media.probes

    @property
    def slots(self) -> list[SlotAssignment]:
        return self.media.slots

    @property
    def tracks(self) -> dict[str, ClipTrack]:
        return self.media.tracks

    @property
    def renegotiations(self) -> int:
        return self.media.offers

    async def join(self) -> None:
        await self.server.join(self.room, self.pid, self)
        if self.publish_audio:
            self.media.add_source("microphone")
        if self.publish_video:
            self.media.add_source("camera")
        self.media.add_slots(self.initial_audio_slots, self.initial_video_slots)
        await self.media.offer()

    async def offer(self) -> None:
        await self.media.offer()

    async def start_screen(self) -> None:
        self.media.add_source("screen")
        await self.media.offer()

    async def stop_screen(self) -> None:
        self.media.remove_source("screen")
        await self.media.offer()

    # -- observation -----------------------------------------------------------------
    def probe_for(self, pid: str, source: Source) -> ReceiveProbe | None:
        return self.media.probe_for(pid, source)

    def receiving_from(self) -> set[tuple[str, str]]:
        return self.media.receiving_from()

    def describe(self) -> str:
        frames = {m: p.frames for m, p in self.probes.items()}
        slots = [(s.mid, s.participant_id, s.source) for s in self.slots]
        return f"{self.pid}: offers={self.renegotiations} slots={slots} frames={frames}"

    async def close(self, leave: bool = True) -> None:
        if leave:
            await self.server.leave(self.room, self.pid)
        await self.media.close()


def person(
    server: MediaServer, persona: Persona, pid: str | None = None, room: str = "room", **kw: Any
) -> ClientPeer:
    """A ClientPeer publishing `persona`'s media (its pid is the persona's name unless given)."""
    return ClientPeer(
        server,
        room,
        pid or persona.name,
        persona.camera,
        clips=persona.clips,
        audio_level=persona.level,
        persona=persona,
        **kw,
    )
