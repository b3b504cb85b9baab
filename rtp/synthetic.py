"""Cheap synthetic publishers: a cached VP8/H.264 + Opus clip sent without encoding.

The clip is encoded once with PyAV (lavfi testsrc + sine, 640x480@30, GOP 1 s) and cached
under a directory; a ClipTrack then sends its encoded packets paced in real time with
monotonic timestamps across loops (`MediaPlayer(decode=False, loop=True)` restarts
timestamps at 0 and bursts the file, which breaks receivers).

Clips can differ in frame size, lavfi pattern and sine frequency, so that several
publishers are told apart at a receiver without the server decoding anything: each one's
encoded frames (and so their digests) and decoded size are its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.video.frame import PictureType

from .codecs import keyframe_detector

logger = logging.getLogger(__name__)

WIDTH, HEIGHT, FPS = 640, 480, 30
PATTERN, FREQUENCY = "testsrc", 440  # lavfi video source, sine frequency (Hz)
VIDEO_CLOCK, AUDIO_CLOCK = 90000, 48000
AUDIO_FRAME = 960  # 20 ms of Opus at 48 kHz


@dataclass(frozen=True)
class Clip:
    """Encoded frames in RTP clock units, ready to be looped."""

    codec: str
    video: tuple[tuple[bytes, int, bool], ...]  # (data, pts@90k, keyframe)
    audio: tuple[tuple[bytes, int], ...]  # (data, pts@48k)
    video_period: int  # loop length in 90 kHz ticks
    audio_period: int  # loop length in 48 kHz ticks
    width: int = WIDTH  # frame size a receiver decodes
    height: int = HEIGHT
    fps: int = FPS  # video frames per second (one keyframe per second)


def video_encoder(
    codec: str, size: tuple[int, int], fps: int, bitrate: int, keyint: int
) -> av.VideoCodecContext:
    """A real-time VP8 or H.264 (Annex-B, Constrained Baseline) encoder: a keyframe every
    `keyint` frames, no B-frames, no look-ahead, as a browser would send."""
    vctx = av.CodecContext.create("libvpx" if codec == "VP8" else "libx264", "w")
    assert isinstance(vctx, av.VideoCodecContext)
    vctx.width, vctx.height = size
    vctx.pix_fmt = "yuv420p"
    vctx.time_base = Fraction(1, fps)
    vctx.framerate = Fraction(fps, 1)
    vctx.bit_rate = bitrate
    vctx.gop_size = keyint
    # One thread: with the codec's own threads, encoding took 10-20x longer while another
    # process kept one of the 2 cores busy (e.g. 13 s instead of 0.8 s for 800x600).
    vctx.thread_count = 1
    if codec == "VP8":
        vctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    else:
        vctx.profile = "Constrained Baseline"
        vctx.options = {
            "tune": "zerolatency",
            "preset": "ultrafast",
            "x264-params": (
                f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0:repeat-headers=1"
            ),
        }
    return vctx


def _encode(
    codec: str,
    seconds: float,
    bitrate: int,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    pattern: str = PATTERN,
    frequency: int = FREQUENCY,
    fps: int = FPS,
) -> tuple[list[bytes], list[bytes]]:
    """Encode with bare codec contexts: Annex-B H.264 and raw VP8, as RTP carries them."""
    width, height = size
    vctx = video_encoder(codec, size, fps, bitrate, keyint=fps)
    video: list[bytes] = []
    nframes = int(seconds * fps)
    with av.open(f"{pattern}=size={width}x{height}:rate={fps}", format="lavfi") as src:
        for i, frame in enumerate(src.decode(video=0)):
            if i >= nframes:
                break
            frame = frame.reformat(format="yuv420p")
            frame.pict_type = PictureType.NONE  # lavfi marks every frame I: do not force
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            video += [bytes(p) for p in vctx.encode(frame)]
    video += [bytes(p) for p in vctx.encode(None)]

    actx = av.CodecContext.create("libopus", "w")
    actx.sample_rate, actx.layout, actx.format = AUDIO_CLOCK, "mono", "s16"
    actx.bit_rate = 32000
    actx.time_base = Fraction(1, AUDIO_CLOCK)
    resampler = av.AudioResampler(
        format="s16", layout="mono", rate=AUDIO_CLOCK, frame_size=AUDIO_FRAME
    )
    audio: list[bytes] = []
    total, done = int(seconds * AUDIO_CLOCK), 0
    with av.open(f"sine=frequency={frequency}:sample_rate={AUDIO_CLOCK}", format="lavfi") as asrc:
        for aframe in asrc.decode(audio=0):
            for chunk in resampler.resample(aframe):
                chunk.pts = done
                done += chunk.samples
                audio += [bytes(p) for p in actx.encode(chunk)]
            if done >= total:
                break
    audio += [bytes(p) for p in actx.encode(None)]
    return video, audio


def _write(path: Path, video: list[bytes], audio: list[bytes]) -> None:
    """Tiny cache format: b"V"/b"A", 4-byte big-endian length, payload; atomic rename."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        for tag, items in ((b"V", video), (b"A", audio)):
            for data in items:
                f.write(tag + struct.pack(">I", len(data)) + data)
    os.replace(tmp, path)


def _read(path: Path) -> tuple[list[bytes], list[bytes]]:
    raw = path.read_bytes()
    video: list[bytes] = []
    audio: list[bytes] = []
    i = 0
    while i < len(raw):
        tag, (size,) = raw[i : i + 1], struct.unpack(">I", raw[i + 1 : i + 5])
        (video if tag == b"V" else audio).append(raw[i + 5 : i + 5 + size])
        i += 5 + size
    return video, audio


def _retime(
    codec: str,
    video: list[bytes],
    audio: list[bytes],
    size: tuple[int, int] = (WIDTH, HEIGHT),
    fps: int = FPS,
) -> Clip:
    """Put frames on an exact grid: real-time pacing and loop arithmetic stay trivial."""
    step = VIDEO_CLOCK // fps
    is_key = keyframe_detector(codec)
    vids = tuple((d, i * step, is_key(d)) for i, d in enumerate(video))
    auds = tuple((d, i * AUDIO_FRAME) for i, d in enumerate(audio))
    if not vids or not vids[0][2]:
        raise RuntimeError("synthetic clip does not start with a keyframe")
    return Clip(codec, vids, auds, len(vids) * step, len(auds) * AUDIO_FRAME, *size, fps)


_cache: dict[tuple[str, str], Clip] = {}


def load_clip(
    directory: str | os.PathLike[str],
    codec: str = "VP8",
    seconds: float = 3.0,
    bitrate: int = 600_000,
    *,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    pattern: str = PATTERN,
    frequency: int = FREQUENCY,
    fps: int = FPS,
) -> Clip:
    """Encode (once, cached in `directory`) and load the synthetic clip.

    `size` is the frame size, `pattern` a lavfi video source (testsrc, testsrc2,
    rgbtestsrc, ...: pick a moving one, so frames differ from other clips' frames),
    `frequency` the sine tone in Hz and `fps` the video frame rate (a keyframe every `fps`
    frames: one per second; 90 kHz divided by it must be whole). Defaults keep the original
    cache file name.
    """
    width, height = size
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"clip size must be positive and even, not {width}x{height}")
    if fps <= 0 or VIDEO_CLOCK % fps:
        raise ValueError(f"clip frame rate must divide {VIDEO_CLOCK}, not {fps}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", pattern):
        raise ValueError(f"not a lavfi source name: {pattern!r}")
    variant = "".join(
        (
            f"-{width}x{height}" if (width, height) != (WIDTH, HEIGHT) else "",
            f"-{pattern}" if pattern != PATTERN else "",
            f"-{frequency}hz" if frequency != FREQUENCY else "",
            f"-{fps}fps" if fps != FPS else "",
        )
    )
    name = f"tertulia-clip-{codec.lower()}-{seconds:g}s-{bitrate}{variant}.bin"
    path = Path(directory) / name
    key = (str(path), codec)
    if key in _cache:
        return _cache[key]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.info("encoding synthetic clip %s", path)
        _write(path, *_encode(codec, seconds, bitrate, (width, height), pattern, frequency, fps))
    clip = _retime(codec, *_read(path), (width, height), fps)
    _cache[key] = clip
    return clip


class ClipTrack(MediaStreamTrack):
    """Sends a clip's encoded packets in real time, looping with monotonic timestamps."""

    def __init__(self, clip: Clip, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.clip = clip
        self.frames_sent = 0
        self._start: float | None = None
        self._index = 0
        if kind == "video":
            self._clock, self._period, self._n = VIDEO_CLOCK, clip.video_period, len(clip.video)
        else:
            self._clock, self._period, self._n = AUDIO_CLOCK, clip.audio_period, len(clip.audio)
        self._time_base = Fraction(1, self._clock)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        loop_no, i = divmod(self._index, self._n)
        if self.kind == "video":
            data, pts, _ = self.clip.video[i]
        else:
            data, pts = self.clip.audio[i]
        pts += loop_no * self._period
        now = time.monotonic()
        if self._start is None:
            self._start = now
        delay = self._start + pts / self._clock - now
        if delay > 0:
            await asyncio.sleep(delay)
        self._index += 1
        self.frames_sent += 1
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        return packet
