"""Reassemble depayloaded RTP packets into encoded frames without a decoder.

Video frames are released as soon as they are complete (marker bit, or the next packet
carries a new timestamp) and strictly in order, so a forwarded stream never skips a frame
silently: when a frame cannot be recovered by NACK/RTX in time, the next frame released is
flagged `discontinuity` and the forwarder waits for a keyframe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc.rtp import RtpPacket

from rtp.aiortc_hooks import depayloaded

from .codecs import is_frame_start

# A receiver locks onto one SSRC; another SSRC takes over only after this much silence.
# aiortc routes packets of a not-yet-signalled SSRC by payload type to whichever receiver
# uses it, so a receive slot can briefly see packets of a sibling slot's stream.
SSRC_SWITCH_S = 0.5
# How long an incomplete frame may block the ones behind it (NACK/RTX recovery window).
RECOVERY_WINDOW_S = 0.3
MAX_PENDING_PACKETS = 1024


@dataclass(slots=True)
class EncodedFrame:
    """One complete encoded frame (video) or packet (audio)."""

    data: bytes
    timestamp: int  # RTP timestamp, unwrapped to be monotonic
    keyframe: bool
    audio_level: int | None = None  # RFC 6464 level, 0..127 (-dBov)
    discontinuity: bool = False
    packets: int = 1


class _Unwrapper:
    """Extend 16/32-bit wrapping counters to monotonic integers."""

    def __init__(self, bits: int) -> None:
        self.modulus = 1 << bits
        self.half = 1 << (bits - 1)
        self.last: int | None = None

    def unwrap(self, value: int) -> int:
        if self.last is None:
            self.last = value
            return value
        delta = (value - self.last) % self.modulus
        if delta >= self.half:
            delta -= self.modulus
        result = self.last + delta
        if delta > 0:
            self.last = result
        return result


class SsrcLock:
    """Accept one SSRC at a time; a new one only after the current fell silent."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.ssrc: int | None = None
        self.last_seen = 0.0
        self.foreign = 0

    def check(self, ssrc: int) -> bool | None:
        """True = accept, False = drop, None = accept as a new stream (reset state)."""
        now = self.clock()
        if ssrc == self.ssrc:
            self.last_seen = now
            return True
        if self.ssrc is not None and now - self.last_seen < SSRC_SWITCH_S:
            self.foreign += 1
            return False
        fresh = self.ssrc is None
        self.ssrc, self.last_seen = ssrc, now
        return True if fresh else None


class AudioFramer:
    """Audio: one packet is one frame; forward immediately, drop stale or duplicate packets."""

    def __init__(
        self, sink: Callable[[EncodedFrame], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sink = sink
        self.lock = SsrcLock(clock)
        self._reset()
        self.stale = 0

    def _reset(self) -> None:
        self._seq = _Unwrapper(16)
        self._ts = _Unwrapper(32)
        self._highest: int | None = None

    def add(self, packet: RtpPacket) -> None:
        accepted = self.lock.check(packet.ssrc)
        if accepted is False:
            return
        if accepted is None:
            self._reset()
        seq = self._seq.unwrap(packet.sequence_number)
        ts = self._ts.unwrap(packet.timestamp)
        if self._highest is not None and seq <= self._highest:
            self.stale += 1
            return
        self._highest = seq
        level = packet.extensions.audio_level
        self.sink(
            EncodedFrame(
                data=depayloaded(packet),
                timestamp=ts,
                keyframe=True,
                audio_level=level[1] if level is not None else None,
            )
        )


@dataclass(slots=True)
class _Pkt:
    ts: int
    marker: bool
    data: bytes
    start: bool | None


class VideoFramer:
    """Video: in-order frame reassembly keyed by extended sequence number."""

    def __init__(
        self,
        codec_name: str,
        sink: Callable[[EncodedFrame], None],
        is_keyframe: Callable[[bytes], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.codec_name = codec_name
        self.sink = sink
        self.is_keyframe = is_keyframe
        self.clock = clock
        self.lock = SsrcLock(clock)
        self._reset()
        self._discontinuity = False
        self.frames_dropped = 0

    def _reset(self) -> None:
        self._seq = _Unwrapper(16)
        self._ts = _Unwrapper(32)
        self._pending: dict[int, _Pkt] = {}
        self._next: int | None = None  # extended seq of the next frame's first packet
        self._highest: int | None = None
        self._stalled_since: float | None = None

    def add(self, packet: RtpPacket) -> None:
        accepted = self.lock.check(packet.ssrc)
        if accepted is False:
            return
        if accepted is None:
            self._reset()
            self._discontinuity = True
        seq = self._seq.unwrap(packet.sequence_number)
        if (self._next is not None and seq < self._next) or seq in self._pending:
            return  # late retransmission or duplicate
        self._pending[seq] = _Pkt(
            ts=self._ts.unwrap(packet.timestamp),
            marker=bool(packet.marker),
            data=depayloaded(packet),
            start=is_frame_start(self.codec_name, packet.payload),
        )
        if self._highest is None or seq > self._highest:
            self._highest = seq
        if self._next is None:
            self._resync()
        self._release()
        if self._pending and self._next is not None:
            self._check_stall()

    def _is_start(self, seq: int) -> bool:
        pkt = self._pending[seq]
        prev = self._pending.get(seq - 1)
        if prev is not None:
            return prev.marker or prev.ts != pkt.ts
        return bool(pkt.start)

    def _resync(self) -> None:
        """Find the first packet known to start a frame."""
        for seq in sorted(self._pending):
            if self._is_start(seq):
                self._next = seq
                for old in [s for s in self._pending if s < seq]:
                    del self._pending[old]
                return
        self._next = None

    def _release(self) -> None:
        while self._next is not None:
            first = self._pending.get(self._next)
            if first is None:
                return
            seq = self._next
            parts: list[bytes] = []
            while True:
                pkt = self._pending.get(seq)
                if pkt is None:
                    return  # incomplete: wait for NACK/RTX
                if pkt.ts != first.ts:
                    end = seq - 1  # marker lost, but the next frame began
                    break
                parts.append(pkt.data)
                if pkt.marker:
                    end = seq
                    break
                seq += 1
            for s in range(self._next, end + 1):
                del self._pending[s]
            self._next = end + 1
            self._stalled_since = None
            data = b"".join(parts)
            keyframe = self.is_keyframe(data)
            self.sink(
                EncodedFrame(
                    data=data,
                    timestamp=first.ts,
                    keyframe=keyframe,
                    discontinuity=self._discontinuity,
                    packets=len(parts),
                )
            )
            self._discontinuity = False

    def _check_stall(self) -> None:
        """Give up on a frame that NACK/RTX did not complete within the recovery window."""
        now = self.clock()
        if self._stalled_since is None:
            self._stalled_since = now
            return
        if (
            now - self._stalled_since < RECOVERY_WINDOW_S
            and len(self._pending) < MAX_PENDING_PACKETS
        ):
            return
        # skip to the next frame start after the blocked one
        assert self._next is not None
        blocked = self._next
        self._discontinuity = True
        self.frames_dropped += 1
        candidates = [s for s in sorted(self._pending) if s > blocked and self._is_start(s)]
        for old in [s for s in self._pending if s <= blocked]:
            del self._pending[old]
        if candidates:
            self._next = candidates[0]
            for old in [s for s in self._pending if s < self._next]:
                del self._pending[old]
        else:
            self._next = None
            self._resync()
        self._stalled_since = None
        self._release()
