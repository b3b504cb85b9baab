"""Client-side receive helper: count frames without decoding, decode a sample to prove them.

Used by tests and load bots acting as browsers. It taps an aiortc client receiver the same
way the server does, and behaves like a browser decoder on loss: it asks for a keyframe
(PLI) whenever it cannot continue decoding. Given its m-line's `mid`, it also routes like a
browser: aiortc hands a receiver packets of a not-yet-signalled SSRC when it is the only
receiver of that payload type (it ignores the MID header extension), e.g. a new slot's first
packets that arrive before the answer that announced it; those are dropped here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass

import av
from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from rtp import aiortc_hooks
from rtp.framing import AudioFramer, EncodedFrame, VideoFramer

from .codecs import keyframe_detector

logger = logging.getLogger(__name__)

PLI_INTERVAL_S = 0.5
RECENT_FRAMES = 300  # frames kept with their arrival time (10 s of 30 fps video)


def frame_digest(data: bytes) -> bytes:
    """What a probe keeps of a frame, to compare with the frames a publisher sent."""
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass(frozen=True)
class DecodedSample:
    frames: int
    width: int
    height: int


class ReceiveProbe:
    """Counts frames arriving on one receiver; keeps the latest GOP start for decoding."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        kind: str,
        video_codec: str = "VP8",
        mid: str | None = None,
    ) -> None:
        self.receiver = receiver
        self.kind = kind
        self.codec = video_codec
        self.route_mid = mid  # drop packets whose MID header extension names another m-line
        self.misrouted = 0
        self.frames = 0
        self.keyframes = 0
        self.bytes = 0
        self.first_frame_at: float | None = None
        self.first_frame_was_keyframe: bool | None = None
        self.last_frame_at: float | None = None
        self.frame_times: list[float] = []
        self.ssrc: int | None = None
        self.audio_levels: list[int] = []
        self.digests: list[bytes] = []  # blake2b of the first frames, to compare with a source
        # (arrival time, digest, audio level) of the latest frames: what a slot carries now
        self.recent: deque[tuple[float, bytes, int | None]] = deque(maxlen=RECENT_FRAMES)
        # Video frames whose last (marker) packet never came, yet the next sequence number
        # starts another frame: the publisher left mid-frame and the slot went on with the
        # next one. A browser never completes such a frame; neither counted nor decoded.
        self.incomplete = 0
        self._marked: deque[int] = deque(maxlen=64)  # RTP timestamps of marker packets
        self._sample: list[bytes] = []
        self._decodable = False
        self._last_pli = -1e9
        self._tasks: set[asyncio.Task[None]] = set()
        self._framer: AudioFramer | VideoFramer
        if kind == "video":
            self._framer = VideoFramer(video_codec, self._on_frame, keyframe_detector(video_codec))
        else:
            self._framer = AudioFramer(self._on_frame)
        aiortc_hooks.tap_receiver(receiver, self._on_packet)

    def _on_packet(self, packet: RtpPacket) -> None:
        if self.route_mid is not None and packet.extensions.mid not in (None, self.route_mid):
            self.misrouted += 1
            return
        self.ssrc = packet.ssrc
        if packet.marker:
            self._marked.append(packet.timestamp)
        self._framer.add(packet)

    def _on_frame(self, frame: EncodedFrame) -> None:
        if self.kind == "video" and frame.timestamp & 0xFFFFFFFF not in self._marked:
            self.incomplete += 1
            self._decodable = False
            return
        now = time.monotonic()
        self.frames += 1
        self.bytes += len(frame.data)
        self.frame_times.append(now)
        if self.first_frame_at is None:
            self.first_frame_at = now
            self.first_frame_was_keyframe = frame.keyframe
        self.last_frame_at = now
        digest = frame_digest(frame.data)
        if len(self.digests) < 300:
            self.digests.append(digest)
        self.recent.append((now, digest, frame.audio_level))
        if self.kind == "audio":
            if frame.audio_level is not None:
                self.audio_levels.append(frame.audio_level)
            return
        if frame.keyframe:
            self.keyframes += 1
            self._decodable = True
            self._sample = [frame.data]
        elif frame.discontinuity or not self._decodable:
            self._decodable = False
            self._request_keyframe()
        elif len(self._sample) < 15:
            self._sample.append(frame.data)

    def _request_keyframe(self) -> None:
        now = time.monotonic()
        if self.ssrc is None or now - self._last_pli < PLI_INTERVAL_S:
            return
        self._last_pli = now
        task = asyncio.ensure_future(aiortc_hooks.send_pli(self.receiver, self.ssrc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def frames_since(self, t0: float) -> int:
        return sum(1 for t in self.frame_times if t >= t0)

    def first_frame_since(self, t0: float) -> float | None:
        """Arrival time of the first frame at or after `t0`."""
        return next((t for t in self.frame_times if t >= t0), None)

    def digests_since(self, t0: float) -> list[bytes]:
        """Digests of the frames that arrived at or after `t0` (the latest RECENT_FRAMES)."""
        return [d for t, d, _ in self.recent if t >= t0]

    def levels_since(self, t0: float) -> list[int]:
        """Audio levels carried by the packets that arrived at or after `t0`."""
        return [level for t, _, level in self.recent if t >= t0 and level is not None]

    def decode_sample(self) -> DecodedSample | None:
        """Decode the frames kept since the last keyframe (test/bot side only)."""
        if self.kind != "video" or not self._sample:
            return None
        ctx = av.CodecContext.create("vp8" if self.codec == "VP8" else "h264", "r")
        decoded = []
        for data in list(self._sample):
            decoded += ctx.decode(av.Packet(data))
        if not decoded:
            return None
        return DecodedSample(len(decoded), decoded[-1].width, decoded[-1].height)
