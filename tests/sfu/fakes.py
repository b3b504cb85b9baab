"""Stand-ins for a slot's network side, to test forwarding decisions packet by packet."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc.rtp import RtpPacket

from rtp import vp8
from rtp.codecs import packet_starts_keyframe
from sfu.forwarding import Counters, Publication, SlotTrack


@dataclass
class FakePort:
    """A SenderPort that keeps what it is given: (seq, timestamp, marker) and the payloads."""

    sent: list[tuple[int, int, int]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)

    def send(self, seq, timestamp, marker, payload, ntp, abs_time, audio_level=None) -> bool:
        self.sent.append((seq, timestamp, marker))
        self.payloads.append(payload)
        return True


class FakePublication(Publication):
    """A VP8 camera publication with no receiver: keyframe requests are only counted."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "camera", "video", upstream=lambda ssrc: None, counters=Counters())
        self.keyframe_requests = 0

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1


def feed(slot: SlotTrack, packet: RtpPacket) -> None:
    """Hand `packet` to `slot` as a publication would (VP8)."""
    keyframe = packet_starts_keyframe("VP8", packet.payload)
    slot.forward(packet, keyframe, 0, b"\0\0\0", None, vp8.temporal(packet.payload))
