"""A load bot's media timing: wall-clock-scheduled sending, and frame identification.

Latency needs to know when a received frame was sent, by another bot that may live in
another process. No message carries that: the schedule does.

* Every publisher sends clip frame `i` at wall-clock times `phase + i / FPS` (mod the clip
  period), where `phase` is derived from its participant id. Any process on the machine
  can compute that schedule from the id alone (`time.time()` is shared by all processes).
* A receiver identifies each frame by its bytes (the server forwards frames unchanged), so
  it knows `i`; the publisher of a receive slot is in the `tracks` event. Latency is
  arrival minus the scheduled send time, modulo the period (10 s with the default clip).
* The publisher measures how late it actually sends against the schedule (`send_lag`),
  so a busy bot process shows up as such instead of as server latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

import av
from aiortc.mediastreams import MediaStreamError

from rtp.synthetic import FPS, VIDEO_CLOCK, Clip, ClipTrack

from .stats import Histogram

EARLY_TOLERANCE_S = 0.05  # arrivals up to this much before the schedule count as 0 latency


@dataclass(frozen=True)
class ClipSchedule:
    """When one publisher sends each video frame of the clip (wall clock, seconds)."""

    period: float
    phase: float
    keyframes: tuple[int, ...]

    @classmethod
    def for_participant(cls, clip: Clip, participant_id: str) -> ClipSchedule:
        period = len(clip.video) / FPS
        digest = hashlib.blake2b(participant_id.encode(), digest_size=8).digest()
        phase = int.from_bytes(digest, "big") / 2**64 * period
        keyframes = tuple(i for i, (_, _, key) in enumerate(clip.video) if key)
        return cls(period, phase, keyframes)

    def next_keyframe(self, now: float) -> tuple[int, float]:
        """The first keyframe slot at or after `now`: (clip index, wall time)."""
        position = (now - self.phase) % self.period
        for index in self.keyframes:
            if index / FPS >= position:
                return index, now + index / FPS - position
        first = self.keyframes[0]
        return first, now + self.period - position + first / FPS

    def latency(self, index: int, received_at: float) -> float:
        """Seconds from the latest scheduled send of frame `index` to `received_at`."""
        delay = (received_at - self.phase - index / FPS) % self.period
        if delay > self.period - EARLY_TOLERANCE_S:
            delay -= self.period
        return delay


class ClipIndex:
    """Clip frame index of a received video frame, by its exact bytes."""

    def __init__(self, clip: Clip) -> None:
        index: dict[bytes, int] = {}
        duplicated: set[bytes] = set()
        for i, (data, _, _) in enumerate(clip.video):
            if data in index:
                duplicated.add(data)
            index[data] = i
        for data in duplicated:
            del index[data]
        self._index = index

    def lookup(self, data: bytes) -> int | None:
        return self._index.get(data)


class ScheduledClipTrack(ClipTrack):
    """A ClipTrack whose video follows a ClipSchedule; audio is paced as in ClipTrack.

    Video starts at the next keyframe slot of the schedule (at most one GOP, 1 s, after the
    sender first asks), like a camera that takes a moment to start.
    """

    def __init__(self, clip: Clip, kind: str, schedule: ClipSchedule) -> None:
        super().__init__(clip, kind)
        self.schedule = schedule
        self.send_lag = Histogram()  # ms late against the schedule, per video frame
        self.started_at: float | None = None
        self._first = 0
        self._sent = 0

    async def recv(self) -> av.Packet:
        if self.kind != "video":
            return await super().recv()
        if self.readyState != "live":
            raise MediaStreamError
        now = time.time()
        if self.started_at is None:
            self._first, self.started_at = self.schedule.next_keyframe(now)
        due = self.started_at + self._sent / FPS
        if due > now:
            await asyncio.sleep(due - now)
        self.send_lag.add(max(0.0, time.time() - due) * 1000)
        data, _, _ = self.clip.video[(self._first + self._sent) % len(self.clip.video)]
        packet = av.Packet(data)
        packet.pts = self._sent * (VIDEO_CLOCK // FPS)
        packet.time_base = self._time_base
        self._sent += 1
        self.frames_sent = self._sent
        return packet
