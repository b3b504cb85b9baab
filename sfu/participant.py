"""One participant: its server RTCPeerConnection, what it publishes and its receive slots."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver, RTCSessionDescription
from aiortc.rtp import RtpPacket

from rtp import aiortc_hooks

from .api import (
    SOURCE_KIND,
    Kind,
    MediaEvents,
    MediaSettings,
    NegotiationError,
    SlotAssignment,
    Source,
)
from .forwarding import Counters, Publication, SlotTrack
from .ice import announce_address, rtc_configuration
from .relay_baseline import RelaySlotTrack, RelaySource
from .sdp import parse_offer, restrict_codecs

logger = logging.getLogger(__name__)


class _Inlet:
    """Receive tap target of one server receiver; forwards only while published."""

    def __init__(self) -> None:
        self.publication: Publication | None = None

    def __call__(self, packet: RtpPacket) -> None:
        if self.publication is not None:
            self.publication.on_rtp(packet)


class _EventPump:
    """Delivers MediaEvents in order from its own task, so callbacks never run inline."""

    def __init__(self, events: MediaEvents, name: str) -> None:
        self.events = events
        self.queue: asyncio.Queue[tuple[str, tuple[Any, ...]] | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(), name=f"sfu-events-{name}")

    def emit(self, method: str, *args: Any) -> None:
        self.queue.put_nowait((method, args))

    async def _run(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            method, args = item
            try:
                await getattr(self.events, method)(*args)
            except Exception:
                logger.exception("MediaEvents.%s failed", method)

    async def close(self) -> None:
        self.queue.put_nowait(None)
        if asyncio.current_task() is self.task:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=5)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()


class Participant:
    """Server side of one browser: answers its offers, owns its publications and slots."""

    def __init__(
        self,
        room_id: str,
        participant_id: str,
        events: MediaEvents,
        settings: MediaSettings,
        counters: Counters,
        on_connection_lost: Callable[[Participant, str], None],
    ) -> None:
        self.room_id = room_id
        self.id = participant_id
        self.settings = settings
        self.counters = counters
        self.lock = asyncio.Lock()
        self.closed = False
        self.pc: RTCPeerConnection | None = None
        self.publications: dict[Source, Publication] = {}
        self.published_mids: dict[str, Source] = {}
        self.slots: dict[str, SlotTrack | RelaySlotTrack] = {}  # mid -> slot, m-line order
        # receive slots asked for with `renegotiate` and not yet seen in an offer: an offer
        # that crossed the request on the wire does not make the server ask twice
        self.requested = {"audio": 0, "video": 0}
        self.last_slots_sent: list[SlotAssignment] | None = None
        self._inlets: dict[str, _Inlet] = {}
        self._relay_mode = settings.forwarding == "relay"
        self._remote_tracks: dict[str, Any] = {}  # relay baseline: decoded tracks by mid
        self._pump = _EventPump(events, participant_id)
        self._on_connection_lost = on_connection_lost

    # ------------------------------------------------------------ events
    def emit(self, method: str, *args: Any) -> None:
        if not self.closed:
            self._pump.emit(method, *args)

    # ------------------------------------------------------------ negotiation
    def _ensure_pc(self) -> RTCPeerConnection:
        if self.pc is None:
            pc = RTCPeerConnection(rtc_configuration(self.settings))
            pc.on("track", self._on_track)
            pc.on("connectionstatechange", self._on_state)
            self.pc = pc
        return self.pc

    def _on_track(self, track: Any) -> None:
        # Emitted synchronously inside setRemoteDescription, before receive() can run.
        assert self.pc is not None
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            if transceiver.receiver.track is not track or mid is None:
                continue
            if self._relay_mode:
                self._remote_tracks[mid] = track
            elif mid not in self._inlets:
                inlet = _Inlet()
                aiortc_hooks.tap_receiver(transceiver.receiver, inlet)
                self._inlets[mid] = inlet

    def _on_state(self) -> None:
        if self.pc is None or self.closed:
            return
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            reason = "ice-or-dtls-failed" if state == "failed" else "closed-by-peer"
            logger.info("participant %s/%s: connection %s", self.room_id, self.id, state)
            self.emit("connection_lost", reason)
            self._on_connection_lost(self, reason)

    def _validate_track_map(self, description: Any, published: Mapping[str, Source]) -> None:
        media_by_mid = {m.rtp.muxId: m for m in description.media if m.kind in ("audio", "video")}
        seen: set[str] = set()
        for mid, source in published.items():
            if source not in SOURCE_KIND:
                raise NegotiationError("bad-track-map", f"unknown source {source!r}")
            if source in seen:
                raise NegotiationError("bad-track-map", f"source {source} mapped twice")
            seen.add(source)
            media = media_by_mid.get(mid)
            if media is None:
                raise NegotiationError("bad-track-map", f"no m-line with mid {mid!r}")
            if media.kind != SOURCE_KIND[source]:
                raise NegotiationError(
                    "bad-track-map",
                    f"mid {mid} is {media.kind} but {source} needs {SOURCE_KIND[source]}",
                )
            if media.direction not in ("sendonly", "sendrecv") or media.port == 0:
                raise NegotiationError(
                    "bad-track-map", f"mid {mid} ({source}) is {media.direction}, not sending"
                )
            if self.published_mids.get(mid, source) != source:
                raise NegotiationError("bad-track-map", f"mid {mid} changed its source")
        for mid, media in media_by_mid.items():
            if mid not in published and media.direction == "sendonly" and media.port != 0:
                raise NegotiationError(
                    "bad-track-map", f"mid {mid} sends {media.kind} but is not in the track map"
                )
        for mid in self.slots:
            if mid in published:
                raise NegotiationError("bad-track-map", f"mid {mid} is a receive slot")

    async def negotiate(self, offer_sdp: str, published: Mapping[str, Source]) -> str:
        """Answer one client offer (caller holds self.lock)."""
        description = parse_offer(offer_sdp)
        self._validate_track_map(description, published)
        restrict_codecs(description, self.settings.video_codec)
        offered = {m.rtp.muxId: m for m in description.media if m.kind in ("audio", "video")}

        pc = self._ensure_pc()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(str(description), "offer"))
        except NegotiationError:
            raise
        except Exception as exc:
            raise NegotiationError("bad-sdp", f"offer rejected: {exc!r}") from exc

        transceivers = {t.mid: t for t in pc.getTransceivers() if t.mid is not None}
        added = {"audio": 0, "video": 0}
        for mid, media in offered.items():
            transceiver = transceivers[mid]
            if mid in published:
                transceiver.direction = "recvonly"
            elif media.direction in ("recvonly", "sendrecv") and media.port != 0:
                transceiver.direction = "sendonly"
                if mid not in self.slots:
                    self._add_slot(transceiver)
                    added[transceiver.kind] += 1
            else:
                transceiver.direction = "inactive"
                slot = self.slots.pop(mid, None)
                if slot is not None:
                    slot.stop()

        answer = await pc.createAnswer()
        with aiortc_hooks.ice_host_addresses(self.settings.ice_host_addresses):
            await pc.setLocalDescription(answer)
        self._update_publications(transceivers, published)
        self.requested = {k: max(0, self.requested[k] - added[k]) for k in added}
        return announce_address(pc.localDescription.sdp, self.settings.announced_address)

    def _add_slot(self, transceiver: RTCRtpTransceiver) -> None:
        kind, mid = transceiver.kind, transceiver.mid
        if self._relay_mode:
            relay_track = RelaySlotTrack(kind, mid, self.counters)  # type: ignore[arg-type]
            transceiver.sender.replaceTrack(relay_track)
            self.slots[mid] = relay_track  # type: ignore[index]
            return
        self.slots[mid] = SlotTrack.for_transceiver(transceiver, self.counters)  # type: ignore[index]

    def _update_publications(
        self, transceivers: dict[str, RTCRtpTransceiver], published: Mapping[str, Source]
    ) -> None:
        wanted = {source: mid for mid, source in published.items()}
        for source, publication in list(self.publications.items()):
            mid = self.published_mids_by_source().get(source)
            if wanted.get(source) != mid:
                self._unpublish(source, publication)
        for source, mid in wanted.items():
            if source in self.publications:
                continue
            transceiver = transceivers[mid]
            kind = SOURCE_KIND[source]
            if self._relay_mode:
                self._publish_relayed(source, kind, mid, transceiver)
                continue
            inlet = self._inlets.get(mid)
            if inlet is None:
                # the track event did not fire (receiver reused): tap is mandatory
                raise NegotiationError("bad-track-map", f"mid {mid} has no receiver tap")
            publication = Publication(
                self.id,
                source,
                kind,
                transceiver.receiver,
                self.counters,
                self.settings.video_codec,
            )
            inlet.publication = publication
            self.publications[source] = publication
            self.published_mids[mid] = source
            logger.info(
                "participant %s/%s publishes %s on mid %s", self.room_id, self.id, source, mid
            )

    def _publish_relayed(
        self, source: Source, kind: Kind, mid: str, transceiver: RTCRtpTransceiver
    ) -> None:
        track = self._remote_tracks.get(mid)
        if track is None:
            raise NegotiationError("bad-track-map", f"mid {mid} has no remote track")
        publication = Publication(self.id, source, kind, transceiver.receiver, self.counters)
        publication.relay = RelaySource(track)
        self.publications[source] = publication
        self.published_mids[mid] = source

    def published_mids_by_source(self) -> dict[Source, str]:
        return {source: mid for mid, source in self.published_mids.items()}

    def _unpublish(self, source: Source, publication: Publication) -> None:
        mid = self.published_mids_by_source()[source]
        inlet = self._inlets.get(mid)
        if inlet is not None:
            inlet.publication = None
        publication.close()
        del self.publications[source]
        del self.published_mids[mid]
        logger.info("participant %s/%s unpublished %s", self.room_id, self.id, source)

    # ------------------------------------------------------------ slots
    def slot_assignments(self) -> list[SlotAssignment]:
        return [
            SlotAssignment(
                mid=mid,
                kind=slot.kind,  # type: ignore[arg-type]
                participant_id=slot.source.participant_id if slot.source else None,
                source=slot.source.source if slot.source else None,
            )
            for mid, slot in self.slots.items()
        ]

    def slot_count(self, kind: str) -> int:
        return sum(1 for slot in self.slots.values() if slot.kind == kind)

    def receivers(self) -> list[RTCRtpReceiver]:
        if self.pc is None:
            return []
        return [t.receiver for t in self.pc.getTransceivers()]

    # ------------------------------------------------------------ teardown
    async def close(self) -> None:
        """Stop publications, slots, the PC and the event pump (events queued are delivered)."""
        if self.closed:
            return
        for source, publication in list(self.publications.items()):
            self._unpublish(source, publication)
        for slot in self.slots.values():
            slot.stop()
        self.closed = True
        if self.pc is not None:
            try:
                await self.pc.close()
            except Exception:
                logger.exception("closing peer connection of %s failed", self.id)
        await self._pump.close()
