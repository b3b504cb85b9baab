"""One participant: its server RTCPeerConnection, what it publishes and its receive slots."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver, RTCSessionDescription
from aiortc.sdp import MediaDescription, SessionDescription

from rtp import aiortc_hooks
from rtp.types import SOURCE_KIND, Kind, SlotAssignment, Source

from .api import MediaEvents, MediaSettings, NegotiationError, ReceivePolicy
from .assignment import SlotState, plan_slots
from .forwarding import Publication, Slot
from .ice import announce_address, gathering, reserve_host_ports, rtc_configuration
from .sdp import check_track_map, parse_offer, restrict_codecs
from .strategies import Forwarding

# How long a new receive slot waits for the client's `answer-applied` before it sends anyway
# (clients that never say it): what it sends before the answer is applied is lost.
ANSWER_APPLY_GRACE_S = 1.0

logger = logging.getLogger(__name__)


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
        forwarding: Forwarding,
        on_connection_lost: Callable[[Participant, str], None],
    ) -> None:
        self.room_id = room_id
        self.id = participant_id
        self.settings = settings
        self.forwarding = forwarding
        self.lock = asyncio.Lock()
        self.closed = False
        self.pc: RTCPeerConnection | None = None
        self.publications: dict[Source, Publication] = {}
        # sources a moderator stopped: still received, forwarded to nobody, not recorded
        self.blocked: frozenset[Source] = frozenset()
        self.published_mids: dict[str, Source] = {}
        self.slots: dict[str, Slot] = {}  # mid -> slot, m-line order
        # receive slots asked for with `renegotiate` and not yet seen in an offer: an offer
        # that crossed the request on the wire does not make the server ask twice
        self.requested: dict[Kind, int] = {"audio": 0, "video": 0}
        self.policy = ReceivePolicy(last_n=settings.default_last_n)  # until it says otherwise
        self.last_slots_sent: list[SlotAssignment] | None = None
        self._transceivers: dict[str, RTCRtpTransceiver] = {}
        self._gathered = False  # the peer connection has its ICE host candidates
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
            if transceiver.receiver.track is track and transceiver.mid is not None:
                self.forwarding.track_arrived(transceiver, track)

    def _on_state(self) -> None:
        if self.pc is None or self.closed:
            return
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            reason = "ice-or-dtls-failed" if state == "failed" else "closed-by-peer"
            logger.info("participant %s/%s: connection %s", self.room_id, self.id, state)
            self.emit("connection_lost", reason)
            self._on_connection_lost(self, reason)

    async def negotiate(self, offer_sdp: str, published: Mapping[str, Source]) -> str:
        """Answer one client offer (caller holds self.lock)."""
        description = parse_offer(offer_sdp)
        check_track_map(
            description, published, earlier=self.published_mids, receive_slots=self.slots
        )
        restrict_codecs(description, self.settings.video_codec)
        offered = {m.rtp.muxId: m for m in description.media if m.kind in ("audio", "video")}
        # the first answer gathers (max-bundle: one ICE transport, gathered once)
        reserved = None if self._gathered else reserve_host_ports(self.settings)
        try:
            return await self._answer(description, offered, published, reserved)
        finally:
            if reserved is not None:
                reserved.close()  # what gathering did not take (e.g. the offer failed)

    async def _answer(
        self,
        description: SessionDescription,
        offered: dict[str, MediaDescription],
        published: Mapping[str, Source],
        reserved: aiortc_hooks.IceSockets | None,
    ) -> str:
        pc = self._ensure_pc()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(str(description), "offer"))
        except NegotiationError:
            raise
        except Exception as exc:
            raise NegotiationError("bad-sdp", f"offer rejected: {exc!r}") from exc

        self._transceivers = {t.mid: t for t in pc.getTransceivers() if t.mid is not None}
        added: dict[Kind, int] = {"audio": 0, "video": 0}
        for mid, media in offered.items():
            transceiver = self._transceivers[mid]
            if mid in published:
                transceiver.direction = "recvonly"
            elif media.direction in ("recvonly", "sendrecv") and media.port != 0:
                transceiver.direction = "sendonly"
                if mid not in self.slots:
                    new = self.forwarding.new_slot(transceiver)
                    new.hold(ANSWER_APPLY_GRACE_S)
                    self.slots[mid] = new
                    added[transceiver.kind] += 1  # type: ignore[index]
            else:
                transceiver.direction = "inactive"
                slot = self.slots.pop(mid, None)
                if slot is not None:
                    slot.stop()

        answer = await pc.createAnswer()
        with gathering(self.settings, reserved):
            await pc.setLocalDescription(answer)
        self._gathered = True
        self._update_publications(published)
        self.requested = {k: max(0, self.requested[k] - added[k]) for k in added}
        return announce_address(pc.localDescription.sdp, self.settings.announced_address)

    def _update_publications(self, published: Mapping[str, Source]) -> None:
        wanted = {source: mid for mid, source in published.items()}
        for mid, source in list(self.published_mids.items()):
            if wanted.get(source) != mid:
                self._unpublish(mid)
        for source, mid in wanted.items():
            if source in self.publications:
                continue
            transceiver = self._transceivers[mid]
            self.publications[source] = self.forwarding.publish(
                source, SOURCE_KIND[source], transceiver
            )
            self.published_mids[mid] = source
            logger.info(
                "participant %s/%s publishes %s on mid %s", self.room_id, self.id, source, mid
            )

    def _unpublish(self, mid: str) -> None:
        source = self.published_mids.pop(mid)
        transceiver = self._transceivers.get(mid)
        if transceiver is not None:
            self.forwarding.unpublish(transceiver)
        self.publications.pop(source).close()
        logger.info("participant %s/%s unpublished %s", self.room_id, self.id, source)

    def answer_applied(self) -> None:
        """The client applied the last answer: its new receive slots may send."""
        for slot in self.slots.values():
            slot.release()

    # ------------------------------------------------------------ receiving
    def receive(self, wanted: Sequence[Publication]) -> None:
        """Make the receive slots carry `wanted` (in order of preference): reuse the slots,
        ask the browser for more when they do not suffice, and tell it what each carries."""
        plan = plan_slots(
            [
                SlotState(mid, cast(Kind, slot.kind), slot.source)
                for mid, slot in self.slots.items()
            ],
            [(publication, publication.kind) for publication in wanted],
        )
        for mid, publication in plan.changes.items():
            self.slots[mid].set_source(publication)
        for slot in self.slots.values():
            if slot.source is not None and slot.kind == "video":
                slot.max_height = self.policy.height(slot.source.participant_id)
        self._ask_for_slots(plan.missing)
        self._announce_slots()

    def _ask_for_slots(self, missing: dict[Kind, int]) -> None:
        more = {k: max(0, missing[k] - self.requested[k]) for k in missing}
        if not (more["audio"] or more["video"]):
            return  # (also before the first offer: a listener with no camera nor microphone)
        self.requested = {k: self.requested[k] + more[k] for k in more}
        total = {k: self.slot_count(k) + self.requested[k] for k in more}
        self.emit("renegotiate", more["audio"], more["video"], total["audio"], total["video"])

    def _announce_slots(self) -> None:
        assignments = self.slot_assignments()
        if assignments != self.last_slots_sent:
            self.last_slots_sent = assignments
            self.emit("slots_changed", assignments)

    def slot_assignments(self) -> list[SlotAssignment]:
        return [
            SlotAssignment(
                mid=mid,
                kind=cast(Kind, slot.kind),
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
        for mid in list(self.published_mids):
            self._unpublish(mid)
        for slot in self.slots.values():
            slot.stop()
        self.closed = True
        if self.pc is not None:
            try:
                await self.pc.close()
            except Exception:
                logger.exception("closing peer connection of %s failed", self.id)
        await self._pump.close()
