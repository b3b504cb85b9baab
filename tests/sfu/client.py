"""An in-test browser: one aiortc PC that publishes ClipTracks and receives through slots."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)

from sfu import MediaServer, SlotAssignment, Source, aiortc_hooks
from sfu.probe import ReceiveProbe
from sfu.synthetic import Clip, ClipTrack

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1",)
MIC_LEVEL = 42  # RFC 6464 level the test microphones announce


async def wait_connected(pc: RTCPeerConnection, timeout: float = 10) -> None:
    if pc.connectionState == "connected":
        return
    connected = asyncio.Event()

    def on_change() -> None:
        if pc.connectionState in ("connected", "failed", "closed"):
            connected.set()

    pc.on("connectionstatechange", on_change)
    try:
        await asyncio.wait_for(connected.wait(), timeout)
    finally:
        pc.remove_listener("connectionstatechange", on_change)


@dataclass
class ClientPeer:
    """Plays the browser's role against MediaServer directly (no WebSocket)."""

    server: MediaServer
    room: str
    pid: str
    clip: Clip
    initial_audio_slots: int = 1
    initial_video_slots: int = 1
    publish_audio: bool = True
    publish_video: bool = True
    pc: RTCPeerConnection = field(init=False)
    probes: dict[str, ReceiveProbe] = field(default_factory=dict)
    slots: list[SlotAssignment] = field(default_factory=list)
    published: dict[str, Source] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    renegotiations: int = 0
    tracks: dict[str, ClipTrack] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pc.on("track", self._on_track)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = {"audio": 0, "video": 0}
        self._screen = None

    # -- MediaEvents -----------------------------------------------------------------
    async def renegotiate(self, audio_slots: int, video_slots: int) -> None:
        self._pending["audio"] += audio_slots
        self._pending["video"] += video_slots
        task = asyncio.ensure_future(self.offer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def slots_changed(self, slots: list[SlotAssignment]) -> None:
        self.slots = slots

    async def connection_lost(self, reason: str) -> None:
        self.lost.append(reason)

    # -- browser behaviour -----------------------------------------------------------
    def _on_track(self, track) -> None:  # type: ignore[no-untyped-def]
        for t in self.pc.getTransceivers():
            if t.receiver.track is track and t.mid not in self.probes:
                self.probes[t.mid] = ReceiveProbe(t.receiver, t.kind, self.clip.codec)

    async def join(self) -> None:
        await self.server.join(self.room, self.pid, self)
        if self.publish_audio:
            self.tracks["microphone"] = ClipTrack(self.clip, "audio")
            mic = self.pc.addTransceiver(self.tracks["microphone"], "sendonly")
            # pack() sends no audio level; a browser would: emulate a constant one
            aiortc_hooks.hook_sender(mic.sender, lambda: None, audio_level=lambda: MIC_LEVEL)
        if self.publish_video:
            self.tracks["camera"] = ClipTrack(self.clip, "video")
            self.pc.addTransceiver(self.tracks["camera"], "sendonly")
        self._pending["audio"] += self.initial_audio_slots
        self._pending["video"] += self.initial_video_slots
        await self.offer()

    async def offer(self) -> None:
        """Add requested recvonly slots, offer, apply the server's answer."""
        async with self._lock:
            if self.pc.remoteDescription is not None:
                # aiortc client race: a re-offer while the previous answer's connect task is
                # still starting transports makes that task index past the old answer.
                await wait_connected(self.pc)
            for kind in ("audio", "video"):
                for _ in range(self._pending[kind]):
                    self.pc.addTransceiver(kind, "recvonly")
                self._pending[kind] = 0
            offer = await self.pc.createOffer()
            with aiortc_hooks.ice_host_addresses(LOOPBACK):
                await self.pc.setLocalDescription(offer)
            self.published = self._track_map()
            answer = await self.server.negotiate(
                self.room, self.pid, self.pc.localDescription.sdp, self.published
            )
            await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            self.renegotiations += 1

    def _track_map(self) -> dict[str, Source]:
        mapping: dict[str, Source] = {}
        for t in self.pc.getTransceivers():
            for source, track in self.tracks.items():
                if t.sender.track is track and t.direction == "sendonly":
                    mapping[t.mid] = source  # type: ignore[assignment]
        return mapping

    async def start_screen(self) -> None:
        self.tracks["screen"] = ClipTrack(self.clip, "video")
        self._screen = self.pc.addTransceiver(self.tracks["screen"], "sendonly")
        await self.offer()

    async def stop_screen(self) -> None:
        assert self._screen is not None
        self._screen.direction = "inactive"
        self.tracks.pop("screen")
        await self.offer()

    # -- observation -----------------------------------------------------------------
    def probe_for(self, pid: str, source: Source) -> ReceiveProbe | None:
        for slot in self.slots:
            if slot.participant_id == pid and slot.source == source:
                return self.probes.get(slot.mid)
        return None

    def describe(self) -> str:
        frames = {m: p.frames for m, p in self.probes.items()}
        slots = [(s.mid, s.participant_id, s.source) for s in self.slots]
        return f"{self.pid}: offers={self.renegotiations} slots={slots} frames={frames}"

    def receiving_from(self) -> set[tuple[str, str]]:
        return {(s.participant_id, s.source) for s in self.slots if s.participant_id}

    async def close(self, leave: bool = True) -> None:
        for task in list(self._tasks):
            task.cancel()
        if leave:
            await self.server.leave(self.room, self.pid)
        await self.pc.close()
