"""A load bot's receive slot: counts per publisher, loss, first frame, latency; no decoding.

Built on `rtp.probe.ReceiveProbe` (same receiver tap, same browser-like keyframe requests
after a loss, same decodable sample) but it keeps counters instead of per-frame lists, so
memory stays flat over a long run, and it attributes every packet to the publisher the
`tracks` event assigned to the slot. A slot can be reassigned at any time (a receiver that
selects its last N speakers sees slots remapped whenever the speakers change): counters are
per (publisher, slot), and loss is counted per run (from a publisher's first packet on the
slot after an assignment to its last one before the next), so the sequence numbers the slot
spent on other publishers are not counted as lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from rtp import aiortc_hooks
from rtp.framing import EncodedFrame
from rtp.probe import ReceiveProbe
from rtp.synthetic import Clip

from .media import ClipIndex, ClipSchedule
from .stats import Histogram

SlotOwners = Mapping[str, tuple[str, str]]  # mid -> (publisher participant id, source)
log = logging.getLogger(__name__)


class FrameWatch(Protocol):
    """Someone waiting for the first video frame of a publisher at or after `at`."""

    at: float
    first_frame_at: float | None


# publisher participant id -> watches not satisfied yet (the bot adds, the probes fulfil)
Watches = dict[str, list[FrameWatch]]


@dataclass
class StreamCounters:
    """Cumulative figures of one (publisher, source) as seen on one receive slot."""

    publisher: str
    source: str
    kind: str
    schedule: ClipSchedule | None
    packets: int = 0
    bytes: int = 0
    frames: int = 0
    keyframes: int = 0
    discontinuities: int = 0
    identified: int = 0  # video frames byte-identical to a frame of the clip
    first_seq: int | None = None  # of the current run (None: not on the slot, or no packet)
    last_seq: int = 0  # highest unwrapped sequence number of the current run
    expected_before: int = 0  # packets expected in the runs that ended
    runs: int = 0  # times this publisher was (re)assigned to the slot and sent a packet
    first_packet_at: float | None = None
    first_frame_at: float | None = None
    latency: Histogram = field(default_factory=Histogram)

    @property
    def expected_packets(self) -> int:
        current = 0 if self.first_seq is None else self.last_seq - self.first_seq + 1
        return self.expected_before + current

    def end_run(self) -> None:
        """The slot went to someone else: the next packet of this publisher starts a run."""
        if self.first_seq is not None:
            self.expected_before += self.last_seq - self.first_seq + 1
            self.first_seq = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "publisher": self.publisher,
            "source": self.source,
            "kind": self.kind,
            "packets": self.packets,
            "expected_packets": self.expected_packets,
            "bytes": self.bytes,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "discontinuities": self.discontinuities,
            "identified": self.identified,
            "first_frame_at": self.first_frame_at,
            "runs": self.runs,
            "latency": self.latency.copy(),
        }


class StreamProbe(ReceiveProbe):
    """Taps one receive slot; figures are kept per publisher the slot carried."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        mid: str,
        kind: str,
        clip: Clip,
        owners: SlotOwners,
        index: ClipIndex,
        watches: Watches | None = None,
    ) -> None:
        super().__init__(receiver, kind, clip.codec, mid=mid)
        aiortc_hooks.skip_bandwidth_estimation(receiver)
        self.mid = mid
        self.clip = clip
        self.owners = owners
        self.index = index
        self.watches: Watches = {} if watches is None else watches
        self.streams: dict[tuple[str, str], StreamCounters] = {}
        self.unassigned_packets = 0
        self._owner: tuple[str, str] | None = None
        self._current: StreamCounters | None = None
        self._seq_base = 0  # unwrapping of the 16-bit sequence number
        self._seq_last: int | None = None

    def _stream(self) -> StreamCounters | None:
        owner = self.owners.get(self.mid)
        if owner != self._owner:
            self._owner = owner
            if self._current is not None:
                self._current.end_run()
            self._current = None
            if owner is not None:
                current = self.streams.get(owner)
                if current is None:
                    schedule = (
                        ClipSchedule.for_participant(self.clip, owner[0])
                        if self.kind == "video"
                        else None
                    )
                    current = StreamCounters(owner[0], owner[1], self.kind, schedule)
                    self.streams[owner] = current
                self._current = current
        return self._current

    def _unwrap(self, seq: int) -> int:
        if self._seq_last is None:
            self._seq_last = seq
            return seq
        last = self._seq_last
        delta = (seq - (last & 0xFFFF)) & 0xFFFF
        if delta >= 0x8000:
            return last + delta - 0x10000  # older (reordered / retransmitted)
        self._seq_last = last + delta
        return self._seq_last

    def _on_packet(self, packet: RtpPacket) -> None:
        if packet.extensions.mid not in (None, self.mid):
            self.misrouted += 1  # another m-line's packet, before its answer (ReceiveProbe)
            return
        stream = self._stream()
        seq = self._unwrap(packet.sequence_number)
        if stream is None:
            self.unassigned_packets += 1
        else:
            stream.packets += 1
            if stream.first_seq is None:
                stream.first_seq = seq
                stream.last_seq = seq
                stream.runs += 1
                if stream.first_packet_at is None:
                    stream.first_packet_at = time.time()
            elif seq > stream.last_seq:
                stream.last_seq = seq
            if self.kind == "audio":  # one Opus packet is one frame: no framer needed
                stream.frames += 1
                stream.bytes += len(packet.payload)
                if stream.first_frame_at is None:
                    stream.first_frame_at = stream.first_packet_at
                return
        super()._on_packet(packet)

    def _on_frame(self, frame: EncodedFrame) -> None:
        stream = self._current
        if stream is None:
            return
        if frame.timestamp & 0xFFFFFFFF not in self._marked:
            # its last packet never came (e.g. the slot switched publisher mid-frame): a
            # browser never completes it (ReceiveProbe)
            self.incomplete += 1
            self._decodable = False
            return
        now = time.time()
        stream.frames += 1
        stream.bytes += len(frame.data)
        if stream.first_frame_at is None:
            stream.first_frame_at = now
        waiting = self.watches.get(stream.publisher)
        if waiting:
            for watch in waiting:
                if watch.at <= now:
                    watch.first_frame_at = now
            if remaining := [w for w in waiting if w.first_frame_at is None]:
                self.watches[stream.publisher] = remaining
            else:
                del self.watches[stream.publisher]
        index = self.index.lookup(frame.data)
        if index is not None:
            stream.identified += 1
            if stream.schedule is not None:
                stream.latency.add(max(0.0, stream.schedule.latency(index, now)) * 1000)
        # browser-like decoder state (from ReceiveProbe): ask for a keyframe after a loss
        if frame.keyframe:
            stream.keyframes += 1
            self._decodable = True
            self._sample = [frame.data]
        elif frame.discontinuity or not self._decodable:
            if frame.discontinuity:
                stream.discontinuities += 1
            self._decodable = False
            self._request_keyframe()
        elif len(self._sample) < 15:
            self._sample.append(frame.data)
