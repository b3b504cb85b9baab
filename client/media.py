"""The media half of a client: one aiortc RTCPeerConnection that behaves like a browser.

It publishes pre-encoded clips (no encoder; optionally a clip per source and a microphone
level of its own, so that receivers can tell publishers apart), receives through recv-only
slots it adds when asked, counts frames per slot without decoding (`ReceiveProbe`), and
always offers — the server only answers. How an offer reaches the server is injected
(`Negotiate`), so the same peer talks to a MediaServer directly in unit tests and over the
WebSocket elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from rtp import aiortc_hooks
from rtp.probe import ReceiveProbe
from rtp.synthetic import Clip, ClipTrack
from rtp.types import SlotAssignment, Source

log = logging.getLogger(__name__)

Negotiate = Callable[[str, Mapping[str, Source]], Awaitable[str]]
# What a published source sends, and what watches a receive slot (load bots swap both).
TrackFactory = Callable[[Clip, Source], ClipTrack]
ProbeFactory = Callable[[RTCRtpReceiver, str, str, str], ReceiveProbe]  # receiver, mid, kind, codec
MIC_LEVEL = 42  # default RFC 6464 level the synthetic microphone announces (a browser measures)
SOURCE_KIND = {"microphone": "audio", "camera": "video", "screen": "video"}


async def wait_connected(pc: RTCPeerConnection, timeout: float = 10) -> None:
    if pc.connectionState == "connected":
        return
    changed = asyncio.Event()

    def on_change() -> None:
        if pc.connectionState in ("connected", "failed", "closed"):
            changed.set()

    pc.on("connectionstatechange", on_change)
    try:
        await asyncio.wait_for(changed.wait(), timeout)
    finally:
        pc.remove_listener("connectionstatechange", on_change)


def _clip_track(clip: Clip, source: Source) -> ClipTrack:
    return ClipTrack(clip, SOURCE_KIND[source])


def _receive_probe(receiver: RTCRtpReceiver, mid: str, kind: str, codec: str) -> ReceiveProbe:
    return ReceiveProbe(receiver, kind, codec, mid=mid)


class MediaPeer:
    def __init__(
        self,
        clip: Clip,
        negotiate: Negotiate,
        *,
        ice_host_addresses: tuple[str, ...] = (),
        ice_servers: list | None = None,  # type: ignore[type-arg]
        track_factory: TrackFactory | None = None,
        probe_factory: ProbeFactory | None = None,
        clips: Mapping[Source, Clip] | None = None,
        audio_level: int = MIC_LEVEL,
        answer_applied: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.clip = clip  # what every source sends unless `clips` names another for it
        self.clips: dict[Source, Clip] = dict(clips or {})
        self.audio_level = audio_level  # RFC 6464 level (0..127, -dBov) of the microphone
        self._track_factory = track_factory or _clip_track
        self._probe_factory = probe_factory or _receive_probe
        self._negotiate = negotiate
        self._answer_applied = answer_applied  # tells the server (`answer-applied`)
        self.ice_host_addresses = ice_host_addresses
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=ice_servers or [], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pc.on("track", self._on_track)
        self.tracks: dict[str, ClipTrack] = {}
        self.probes: dict[str, ReceiveProbe] = {}
        self.slots: list[SlotAssignment] = []
        self.published: dict[str, Source] = {}
        self.offers = 0
        self._senders: dict[Source, RTCRtpTransceiver] = {}
        self._pending = {"audio": 0, "video": 0}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- publishing ---------------------------------------------------------------------
    def add_source(self, source: Source) -> None:
        """Publish a clip track as `source`; takes effect with the next offer."""
        track = self._track_factory(self.clips.get(source, self.clip), source)
        self.tracks[source] = track
        idle = self._senders.get(source)
        if idle is not None:  # reuse the transceiver this source had before
            idle.sender.replaceTrack(track)
            idle.direction = "sendonly"
            return
        transceiver = self.pc.addTransceiver(track, "sendonly")
        if source == "microphone":
            aiortc_hooks.hook_sender(
                transceiver.sender, lambda: None, audio_level=lambda: self.audio_level
            )
        else:
            aiortc_hooks.hook_sender(transceiver.sender, lambda: self._keyframe_requested(source))
        self._senders[source] = transceiver

    def _keyframe_requested(self, source: Source) -> None:
        """A PLI/FIR for this source: tracks that can send a keyframe on demand (the load
        bots' `request_keyframe`) are told; a plain ClipTrack keeps its 1 s GOP."""
        request = getattr(self.tracks.get(source), "request_keyframe", None)
        if request is not None:
            request()

    def remove_source(self, source: Source) -> None:
        """Stop publishing `source`: its m-line goes inactive with the next offer."""
        track = self.tracks.pop(source, None)
        transceiver = self._senders.get(source)
        if transceiver is not None:
            transceiver.direction = "inactive"
        if track is not None:
            track.stop()

    # --- negotiation --------------------------------------------------------------------
    def add_slots(self, audio: int, video: int) -> None:
        """Add recv-only slots with the next offer."""
        self._pending["audio"] += audio
        self._pending["video"] += video

    def request_slots(self, audio: int, video: int) -> None:
        """The server's `renegotiate`: add slots and offer again (in the background)."""
        self.add_slots(audio, video)
        task = asyncio.ensure_future(self.offer())
        self._tasks.add(task)
        task.add_done_callback(self._background_offer_done)

    def _background_offer_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("renegotiation failed: %r", error)

    async def offer(self) -> None:
        """Add pending recv-only slots, offer, apply the answer. One offer at a time."""
        async with self._lock:
            if self.pc.remoteDescription is not None:
                # aiortc: re-offering while the previous answer's transports still start
                # makes its connect task index past the old answer.
                await wait_connected(self.pc)
            for kind in ("audio", "video"):
                for _ in range(self._pending[kind]):
                    self.pc.addTransceiver(kind, "recvonly")
                self._pending[kind] = 0
            if not self.pc.getTransceivers():
                return  # nothing to publish, no slot yet: the server asks for slots first
            offer = await self.pc.createOffer()
            with aiortc_hooks.ice_host_addresses(self.ice_host_addresses):
                await self.pc.setLocalDescription(offer)
            self.published = {
                t.mid: source
                for source, t in self._senders.items()
                if source in self.tracks and t.mid is not None
            }
            answer = await self._negotiate(self.pc.localDescription.sdp, self.published)
            await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            self.offers += 1
            if self._answer_applied is not None:
                await self._answer_applied()  # new receive slots may send now

    def set_slots(self, slots: list[SlotAssignment]) -> None:
        self.slots = slots

    # --- receiving ----------------------------------------------------------------------
    def _on_track(self, track) -> None:  # type: ignore[no-untyped-def]
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            if transceiver.receiver.track is track and mid is not None and mid not in self.probes:
                self.probes[mid] = self._probe_factory(
                    transceiver.receiver, mid, transceiver.kind, self.clip.codec
                )

    def probe_for(self, participant_id: str, source: Source) -> ReceiveProbe | None:
        for slot in self.slots:
            if slot.participant_id == participant_id and slot.source == source:
                return self.probes.get(slot.mid)
        return None

    def receiving_from(self) -> set[tuple[str, str]]:
        return {(s.participant_id, s.source or "") for s in self.slots if s.participant_id}

    def m_lines(self) -> int:
        sdp = self.pc.localDescription.sdp if self.pc.localDescription else ""
        return sum(1 for line in sdp.splitlines() if line.startswith("m="))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.pc.close()
