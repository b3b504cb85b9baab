"""A load bot's media timing: wall-clock-scheduled sending, and frame identification.

Latency needs to know when a received frame was sent, by another bot that may live in
another process. No message carries that: the schedule does.

* Every publisher sends clip frame `i` at wall-clock times `phase + i / fps` (mod the clip
  period), where `phase` is derived from its participant id. Any process on the machine
  can compute that schedule from the id alone (`time.time()` is shared by all processes).
* A receiver identifies each frame by its bytes (the server forwards frames unchanged), so
  it knows `i`; the publisher of a receive slot is in the `tracks` event. Latency is
  arrival minus the scheduled send time, modulo the period (10 s with the default clip).
* The publisher measures how late it actually sends against the schedule (`send_lag`),
  so a busy bot process shows up as such instead of as server latency.
* A publisher answers keyframe requests (PLI, as the server sends when a receive slot
  switches to it) like a browser's encoder would: the next frame it sends is a keyframe.
  The clip only has one keyframe a second, so the bots also load `KeyVariants`: every clip
  frame encoded once more as a keyframe of the same picture. A variant stands for clip
  frame `i` (same schedule slot, identified as `i`), and the clip's delta frames follow it;
  a decoder shows them on a slightly different reference until the next real keyframe
  (at most one second), which receivers that only count frames never notice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import struct
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from aiortc.mediastreams import MediaStreamError
from av.video.frame import PictureType

from rtp.codecs import keyframe_detector
from rtp.synthetic import PATTERN, VIDEO_CLOCK, Clip, ClipTrack, video_encoder

from .stats import Histogram

EARLY_TOLERANCE_S = 0.05  # arrivals up to this much before the schedule count as 0 latency
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSchedule:
    """When one publisher sends each video frame of the clip (wall clock, seconds)."""

    period: float
    phase: float
    keyframes: tuple[int, ...]
    fps: int = 30

    @classmethod
    def for_participant(cls, clip: Clip, participant_id: str) -> ClipSchedule:
        period = len(clip.video) / clip.fps
        digest = hashlib.blake2b(participant_id.encode(), digest_size=8).digest()
        phase = int.from_bytes(digest, "big") / 2**64 * period
        keyframes = tuple(i for i, (_, _, key) in enumerate(clip.video) if key)
        return cls(period, phase, keyframes, clip.fps)

    def next_keyframe(self, now: float) -> tuple[int, float]:
        """The first keyframe slot at or after `now`: (clip index, wall time)."""
        position = (now - self.phase) % self.period
        for index in self.keyframes:
            if index / self.fps >= position:
                return index, now + index / self.fps - position
        first = self.keyframes[0]
        return first, now + self.period - position + first / self.fps

    def latency(self, index: int, received_at: float) -> float:
        """Seconds from the latest scheduled send of frame `index` to `received_at`."""
        delay = (received_at - self.phase - index / self.fps) % self.period
        if delay > self.period - EARLY_TOLERANCE_S:
            delay -= self.period
        return delay


class KeyVariants:
    """Every frame of a clip encoded again as a keyframe of the same picture (see above)."""

    def __init__(self, frames: tuple[bytes, ...]) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> bytes:
        return self.frames[index]


def _variants_path(directory: Path, clip: Clip, pattern: str) -> Path:
    seconds = len(clip.video) / clip.fps
    name = (
        f"tertulia-keyvariants-{clip.codec.lower()}-{seconds:g}s-{clip.width}x{clip.height}"
        f"-{clip.fps}fps-{pattern}.bin"
    )
    return directory / name


def _encode_variants(clip: Clip, pattern: str) -> list[bytes]:
    """Encode the clip's source pictures again, each one a keyframe, about the size of the
    clip's own keyframes."""
    keys = [len(data) for data, _, key in clip.video if key]
    bitrate = int(sum(keys) / len(keys) * 8 * clip.fps)
    vctx = video_encoder(clip.codec, (clip.width, clip.height), clip.fps, bitrate, keyint=1)
    frames: list[bytes] = []
    source = f"{pattern}=size={clip.width}x{clip.height}:rate={clip.fps}"
    with av.open(source, format="lavfi") as src:
        for i, frame in enumerate(src.decode(video=0)):
            if i >= len(clip.video):
                break
            frame = frame.reformat(format="yuv420p")
            frame.pict_type = PictureType.I
            frame.pts = i
            frame.time_base = Fraction(1, clip.fps)
            frames += [bytes(p) for p in vctx.encode(frame)]
    frames += [bytes(p) for p in vctx.encode(None)]
    return frames


_variants_cache: dict[Path, KeyVariants] = {}


def load_key_variants(
    directory: str | os.PathLike[str], clip: Clip, pattern: str = PATTERN
) -> KeyVariants:
    """The clip's keyframe variants: encoded once (a few seconds), cached in `directory`
    next to the clip. `pattern` must be the lavfi source the clip was encoded from."""
    path = _variants_path(Path(directory), clip, pattern)
    cached = _variants_cache.get(path)
    if cached is not None:
        return cached
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("encoding keyframe variants %s", path)
        frames = _encode_variants(clip, pattern)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            for data in frames:
                f.write(struct.pack(">I", len(data)) + data)
        os.replace(tmp, path)
    raw = path.read_bytes()
    frames, i = [], 0
    while i < len(raw):
        (size,) = struct.unpack(">I", raw[i : i + 4])
        frames.append(raw[i + 4 : i + 4 + size])
        i += 4 + size
    is_key = keyframe_detector(clip.codec)
    if len(frames) != len(clip.video) or not all(is_key(f) for f in frames):
        raise RuntimeError(f"{path}: not one keyframe per clip frame; delete it to re-encode")
    variants = KeyVariants(tuple(frames))
    _variants_cache[path] = variants
    return variants


class ClipIndex:
    """Clip frame index of a received video frame, by its exact bytes (keyframe variants
    included: a variant is frame `i` too)."""

    def __init__(self, clip: Clip, variants: KeyVariants | None = None) -> None:
        index: dict[bytes, int] = {}
        duplicated: set[bytes] = set()
        frames = [data for data, _, _ in clip.video]
        sources = list(enumerate(frames))
        if variants is not None:
            sources += [(i, data) for i, data in enumerate(variants.frames) if data != frames[i]]
        for i, data in sources:
            if data in index and index[data] != i:
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
    sender first asks), like a camera that takes a moment to start. With `variants`, a
    keyframe request (`request_keyframe`, wired to the sender's PLI/FIR handling) makes the
    next frame a keyframe.
    """

    def __init__(
        self,
        clip: Clip,
        kind: str,
        schedule: ClipSchedule,
        variants: KeyVariants | None = None,
    ) -> None:
        super().__init__(clip, kind)
        self.schedule = schedule
        self.variants = variants
        self.send_lag = Histogram()  # ms late against the schedule, per video frame
        self.started_at: float | None = None
        self.keyframe_requests = 0
        self.keyframes_answered = 0  # keyframe variants sent in answer to a request
        self._first = 0
        self._sent = 0
        self._key_wanted = False

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        if self.variants is not None:
            self._key_wanted = True

    async def recv(self) -> av.Packet:
        if self.kind != "video":
            return await super().recv()
        if self.readyState != "live":
            raise MediaStreamError
        fps = self.clip.fps
        now = time.time()
        if self.started_at is None:
            self._first, self.started_at = self.schedule.next_keyframe(now)
            self._key_wanted = False  # the first frame is a keyframe anyway
        due = self.started_at + self._sent / fps
        if due > now:
            await asyncio.sleep(due - now)
        self.send_lag.add(max(0.0, time.time() - due) * 1000)
        index = (self._first + self._sent) % len(self.clip.video)
        data, _, key = self.clip.video[index]
        if self._key_wanted:
            self._key_wanted = False
            if not key and self.variants is not None:
                data = self.variants[index]
                self.keyframes_answered += 1
        packet = av.Packet(data)
        packet.pts = self._sent * (VIDEO_CLOCK // fps)
        packet.time_base = self._time_base
        self._sent += 1
        self.frames_sent = self._sent
        return packet
