"""How a participant's media moves, chosen once per media server.

`EncodedForwarding` is what meetings use: each receiver is tapped before aiortc's jitter
buffer and its RTP packets are rewritten and sent on per subscriber slot (`sfu.forwarding`).
The relay baseline (`sfu.relay_baseline.RelayForwarding`, decode once and re-encode per
subscriber) exists only so the capacity benchmark can measure, in the same run, what encoded
forwarding saves. A `Participant` talks to the strategy and never asks which one it has.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiortc import RTCRtpTransceiver
from aiortc.rtp import RtpPacket

from rtp import aiortc_hooks
from rtp.types import Kind, Source

from .api import NegotiationError
from .forwarding import Counters, Publication, Slot, SlotTrack, receiver_upstream


class Forwarding(Protocol):
    """The media side of one participant: its receivers, its publications, its slots."""

    def track_arrived(self, transceiver: RTCRtpTransceiver, track: Any) -> None:
        """aiortc's `track` event for this transceiver (synchronously inside
        setRemoteDescription, before the receiver starts)."""

    def new_slot(self, transceiver: RTCRtpTransceiver) -> Slot:
        """A receive slot sending through `transceiver`."""

    def publish(self, source: Source, kind: Kind, transceiver: RTCRtpTransceiver) -> Publication:
        """Start taking in what `transceiver` receives as this participant's `source`."""

    def unpublish(self, transceiver: RTCRtpTransceiver) -> None:
        """Stop taking it in (the publication is closed by the caller)."""


class ForwardingFactory(Protocol):
    def __call__(self, participant_id: str, counters: Counters, video_codec: str) -> Forwarding: ...


class _Inlet:
    """Receive tap target of one server receiver; forwards only while published."""

    def __init__(self) -> None:
        self.publication: Publication | None = None

    def __call__(self, packet: RtpPacket) -> None:
        if self.publication is not None:
            self.publication.on_rtp(packet)


class EncodedForwarding:
    """RTP in, rewritten RTP out: nothing is decoded or encoded (see `sfu.forwarding`)."""

    def __init__(self, participant_id: str, counters: Counters, video_codec: str) -> None:
        self.participant_id = participant_id
        self.counters = counters
        self.video_codec = video_codec
        self._inlets: dict[str, _Inlet] = {}

    def track_arrived(self, transceiver: RTCRtpTransceiver, track: Any) -> None:
        mid = transceiver.mid
        if mid is not None and mid not in self._inlets:
            inlet = _Inlet()
            aiortc_hooks.tap_receiver(transceiver.receiver, inlet)
            self._inlets[mid] = inlet

    def new_slot(self, transceiver: RTCRtpTransceiver) -> Slot:
        return SlotTrack.for_transceiver(transceiver, self.counters)

    def publish(self, source: Source, kind: Kind, transceiver: RTCRtpTransceiver) -> Publication:
        inlet = self._inlets.get(transceiver.mid or "")
        if inlet is None:
            # the track event did not fire (receiver reused): the tap is mandatory
            raise NegotiationError("bad-track-map", f"mid {transceiver.mid} has no receiver tap")
        publication = Publication(
            self.participant_id,
            source,
            kind,
            receiver_upstream(transceiver.receiver),
            self.counters,
            self.video_codec,
        )
        inlet.publication = publication
        return publication

    def unpublish(self, transceiver: RTCRtpTransceiver) -> None:
        inlet = self._inlets.get(transceiver.mid or "")
        if inlet is not None:
            inlet.publication = None
