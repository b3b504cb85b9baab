"""Compose a recording's per-track files into one file to watch.

The recorder writes one file per published track without re-encoding. After the recording
stops, this module (run as its own process: `python -m compose MANIFEST OUTPUT`, never on
the event loop that carries meetings) decodes every track lazily, lays the cameras out in a
grid (a screen share takes the large area, cameras go to a strip beside it), mixes the
microphones and encodes one MP4 (H.264 + AAC) or WebM (VP8 + Opus).

Everything streams: output time advances one video frame at a time and each track's decoder
is pulled only as far as that time, so memory stays flat however long the meeting was.
Track files may be truncated (server killed mid-recording): they are decoded as far as they
go. Output is written to a temporary name and renamed at the end, so a failed or killed
composition never leaves a half file under the final name.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from .layout import Rect, arrange, fit

log = logging.getLogger(__name__)

RATE = 48000  # output audio sample rate; Opus tracks are 48 kHz already
BLACK_Y, BLACK_C = 16, 128  # limited-range black, as decoders and encoders use it
SOFT_KNEE = 0.8  # the mix passes through unchanged below this level, then bends towards 1.0
PROGRESS_STEP = 0.01  # report at least every 1 % ...
PROGRESS_SECONDS = 1.0  # ... or every second of wall time, whichever comes first
# how far (in samples) an audio frame may sit from where the previous one ended and still be
# taken as contiguous: absorbs the 1 ms rounding of the recorder's timestamps, while a real
# gap (a lost or muted 20 ms frame or more) is kept at its place
AUDIO_JITTER = 480

Kind = Literal["audio", "video"]
Source = Literal["microphone", "camera", "screen"]


class ComposeError(Exception):
    """A composition that cannot be done (bad manifest, nothing readable, bad output)."""


@dataclass(frozen=True)
class TrackFile:
    path: Path
    kind: Kind
    source: Source
    participant_id: str
    display_name: str
    start_offset: float  # seconds from the recording's start to this track's first packet
    duration: float | None  # seconds, if known (informational: the decoded length wins)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrackFile:
        """Validate one manifest entry; ComposeError names what is wrong."""
        try:
            kind, source = raw["kind"], raw["source"]
            if kind not in ("audio", "video"):
                raise ValueError(f"kind {kind!r}")
            if source not in ("microphone", "camera", "screen"):
                raise ValueError(f"source {source!r}")
            duration = raw.get("duration")
            return cls(
                path=Path(str(raw["path"])),
                kind=kind,
                source=source,
                participant_id=str(raw["participant_id"]),
                display_name=str(raw.get("display_name") or ""),
                start_offset=max(0.0, float(raw["start_offset"])),
                duration=None if duration is None else float(duration),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ComposeError(f"bad manifest entry ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class CompositionResult:
    path: Path
    duration: float
    width: int
    height: int
    size_bytes: int
    video_frames: int


# --- reading track files -----------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """Where a track sits on the recording's timeline, from its packets (not the manifest)."""

    start: float
    end: float


def _probe(track: TrackFile) -> _Span | None:
    """Demux (no decoding) to find the track's first and last timestamps; None if unusable.

    A truncated file simply ends early; the last frame is given the length of the interval
    before it, since live-mode Matroska carries no block durations.
    """
    first: float | None = None
    last = prev = 0.0
    try:
        with av.open(str(track.path)) as container:
            stream = container.streams[0]
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None or packet.size == 0:
                    continue
                t = float(packet.pts * packet.time_base)
                if first is None:
                    first = last = prev = t
                elif t > last:
                    prev, last = last, t
    except (av.FFmpegError, OSError, IndexError) as exc:
        if first is None:
            log.warning("skipping unreadable track %s: %s", track.path, exc)
            return None
        log.info("track %s ends early: %s", track.path, exc)
    if first is None:
        log.warning("skipping empty track %s", track.path)
        return None
    tail = min(max(last - prev, 0.001), 0.1)
    return _Span(track.start_offset + first, track.start_offset + last + tail)


def _decode(track: TrackFile) -> Iterator[Any]:
    """Decoded frames of one file, lazily. A frame that does not decode is skipped; a file
    that stops demuxing (truncated tail) just ends the iteration."""
    try:
        container = av.open(str(track.path))
    except (av.FFmpegError, OSError) as exc:
        log.warning("cannot open %s: %s", track.path, exc)
        return
    with container:
        stream = container.streams[0]
        packets = container.demux(stream)
        bad = 0
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as exc:
                log.info("%s: stopped reading at %s", track.path, exc)
                packet = None
            try:
                # packet None flushes the decoder: frames it still holds are not lost
                yield from (packet.decode() if packet is not None else stream.decode(None))  # type: ignore[attr-defined]
            except av.FFmpegError as exc:
                bad += 1
                if bad <= 3:
                    log.info("%s: skipping a frame that does not decode: %s", track.path, exc)
            if packet is None:
                return


class _Reader:
    """Opens a track's decoder only when its span begins and closes it once it is over, so a
    long meeting with many short tracks (people coming and going) keeps few open at once."""

    def __init__(self, track: TrackFile, span: _Span) -> None:
        self.track, self.span = track, span
        self._frames: Iterator[Any] | None = None
        self.closed = False

    def _next_frame(self) -> Any | None:
        if self.closed:
            return None
        if self._frames is None:
            self._frames = _decode(self.track)
        frame = next(self._frames, None)
        if frame is None:
            self.close()
        return frame

    def close(self) -> None:
        self.closed = True
        if self._frames is not None:
            self._frames.close()  # type: ignore[attr-defined]
            self._frames = None


class _VideoSource(_Reader):
    """One video track: holds the latest decoded frame at or before the asked time, and its
    scaled planes for the cell it currently occupies."""

    def __init__(self, track: TrackFile, span: _Span) -> None:
        super().__init__(track, span)
        self._current: VideoFrame | None = None
        self._next: VideoFrame | None = None
        self._next_time = -math.inf
        self._primed = False
        self._scaled: tuple[int, Rect, Rect, tuple[np.ndarray, ...]] | None = None
        self._serial = 0  # bumps with each new frame, so the scaled cache knows it is stale

    def active(self, t: float) -> bool:
        return self.span.start <= t < self.span.end

    def _pull(self) -> None:
        frame = self._next_frame()
        self._next = frame
        if frame is not None:
            offset = frame.time if frame.time is not None else self._next_time
            self._next_time = self.track.start_offset + offset

    def frame_at(self, t: float) -> VideoFrame | None:
        if not self._primed:
            self._primed = True
            self._pull()
        while self._next is not None and self._next_time <= t + 1e-6:
            self._current = self._next
            self._serial += 1
            self._pull()
        return self._current

    def planes_for(self, t: float, cell: Rect) -> tuple[Rect, tuple[np.ndarray, ...]] | None:
        """The frame to show at t, aspect-fitted into `cell`, as Y, U, V arrays."""
        frame = self.frame_at(t)
        if frame is None:
            return None
        if self._scaled is not None and self._scaled[:2] == (self._serial, cell):
            return self._scaled[2], self._scaled[3]
        box = fit(frame.width, frame.height, cell)
        scaled = frame.reformat(width=box.w, height=box.h, format="yuv420p")
        planes = tuple(_plane(scaled, i) for i in range(3))
        self._scaled = (self._serial, cell, box, planes)
        return box, planes

    def close(self) -> None:
        super().close()
        self._current = self._next = None
        self._scaled = None


def _plane(frame: VideoFrame, index: int) -> np.ndarray:
    """A yuv420p plane as a (height, width) view, without the line padding."""
    plane = frame.planes[index]
    w, h = (frame.width, frame.height) if index == 0 else (frame.width // 2, frame.height // 2)
    rows = np.frombuffer(plane, np.uint8)  # type: ignore[call-overload]
    return rows.reshape(-1, plane.line_size)[:h, :w]


class _AudioSource(_Reader):
    """One microphone track as 48 kHz stereo float segments placed by their timestamps."""

    def __init__(self, track: TrackFile, span: _Span) -> None:
        super().__init__(track, span)
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=RATE)
        self._segments: deque[tuple[int, np.ndarray]] = deque()
        self._end: int | None = None  # sample where the last segment ends

    def _pull(self) -> bool:
        frame = self._next_frame()
        if frame is None:
            return False
        pos = round((self.track.start_offset + (frame.time or 0.0)) * RATE)
        if self._end is not None and pos < self._end + AUDIO_JITTER:
            pos = self._end  # contiguous (or overlapping): keep samples back to back
        for out in self._resampler.resample(frame):
            data = out.to_ndarray().astype(np.float32, copy=False)
            self._segments.append((pos, data))
            pos += data.shape[1]
        self._end = pos
        return True

    def mix_into(self, out: np.ndarray, start: int) -> None:
        """Add this track's samples for [start, start + out.shape[1]) into `out`."""
        stop = start + out.shape[1]
        if stop <= self.span.start * RATE:
            return  # not begun: do not even open the file yet
        while (self._end is None or self._end < stop) and self._pull():
            pass
        while self._segments:
            pos, data = self._segments[0]
            lo, hi = max(pos, start), min(pos + data.shape[1], stop)
            if hi > lo:
                out[:, lo - start : hi - start] += data[:, lo - pos : hi - pos]
            if pos + data.shape[1] > stop:
                break
            self._segments.popleft()
        if not self.closed and start > (self.span.end + 1.0) * RATE:
            # well past its end (a margin for the probe's estimate): let go of the decoder
            self._segments.clear()
            self.close()


def soft_clip(mix: np.ndarray) -> np.ndarray:
    """Keep a sum of voices inside [-1, 1] without hard-clipping distortion: unchanged up
    to the knee, then a tanh curve that approaches full scale but never reaches it."""
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    if peak <= SOFT_KNEE:
        return mix
    room = 1.0 - SOFT_KNEE
    mag = np.abs(mix)
    over = mag > SOFT_KNEE
    bent = SOFT_KNEE + room * np.tanh((mag[over] - SOFT_KNEE) / room)
    result = mix.copy()
    result[over] = np.sign(mix[over]) * bent
    return result


# --- composing -----------------------------------------------------------------------------


@dataclass
class _Output:
    container: Any
    video: Any
    audio: Any
    rechunk: av.AudioResampler
    audio_pts: int = 0


def _open_output(path: Path, fmt: str, width: int, height: int, fps: int) -> _Output:
    """Encoders tuned for a watchable file at a reasonable speed on a shared server."""
    threads = max(1, min(os.cpu_count() or 1, 8))
    if fmt == "mp4":
        container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        video = container.add_stream("libx264", rate=fps)
        video.options = {"preset": "veryfast", "crf": "23"}
        audio = container.add_stream("aac", rate=RATE)
        audio.bit_rate = 128_000
    else:
        container = av.open(str(path), "w", format="webm")
        video = container.add_stream("libvpx", rate=fps)
        video.bit_rate = 2_000_000
        video.options = {
            "deadline": "realtime",
            "cpu-used": "6",
            "crf": "10",
            "threads": str(threads),
        }
        audio = container.add_stream("libopus", rate=RATE)
        audio.bit_rate = 96_000
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.codec_context.gop_size = fps * 5  # a keyframe every 5 s: seeking stays snappy
    audio.layout = "stereo"
    container.start_encoding()
    frame_size = audio.codec_context.frame_size or 1024
    rechunk = av.AudioResampler(
        format=audio.format.name, layout="stereo", rate=RATE, frame_size=frame_size
    )
    return _Output(container, video, audio, rechunk)


def _encode_audio(out: _Output, frame: AudioFrame | None) -> None:
    for chunk in out.rechunk.resample(frame):
        chunk.pts = out.audio_pts
        chunk.time_base = Fraction(1, RATE)
        out.audio_pts += chunk.samples
        out.container.mux(out.audio.encode(chunk))


class _Canvas:
    """One reusable yuv420p buffer: black, then each visible tile pasted into it."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        luma = width * height
        self.buffer = np.empty(luma * 3 // 2, np.uint8)
        self.y = self.buffer[:luma].reshape(height, width)
        self.u = self.buffer[luma : luma * 5 // 4].reshape(height // 2, width // 2)
        self.v = self.buffer[luma * 5 // 4 :].reshape(height // 2, width // 2)

    def clear(self) -> None:
        self.y.fill(BLACK_Y)
        self.u.fill(BLACK_C)
        self.v.fill(BLACK_C)

    def paste(self, box: Rect, planes: tuple[np.ndarray, ...]) -> None:
        y, u, v = planes
        self.y[box.y : box.y + box.h, box.x : box.x + box.w] = y
        cx, cy, cw, ch = box.x // 2, box.y // 2, box.w // 2, box.h // 2
        self.u[cy : cy + ch, cx : cx + cw] = u
        self.v[cy : cy + ch, cx : cx + cw] = v

    def frame(self, pts: int, time_base: Fraction) -> VideoFrame:
        frame = VideoFrame.from_ndarray(
            self.buffer.reshape(self.height * 3 // 2, self.width), format="yuv420p"
        )
        frame.pts, frame.time_base = pts, time_base
        return frame


def compose(
    tracks: Sequence[TrackFile],
    output: Path,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 15,
    progress: Callable[[float], None] | None = None,
) -> CompositionResult:
    """Compose the track files into `output` (.mp4: H.264 + AAC; .webm: VP8 + Opus).

    Blocking and CPU-heavy: run it in its own process (see `main`).
    """
    output = Path(output)
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in ("mp4", "webm"):
        raise ComposeError(f"output must end in .mp4 or .webm, not {output.name!r}")
    if width < 16 or height < 16 or width % 2 or height % 2 or fps < 1:
        raise ComposeError(f"bad output geometry {width}x{height}@{fps}")

    cameras: list[_VideoSource] = []
    screens: list[_VideoSource] = []
    mics: list[_AudioSource] = []
    # tiles keep the order in which tracks started (ties: manifest order)
    probed = [(span, i, track) for i, track in enumerate(tracks) if (span := _probe(track))]
    for span, _, track in sorted(probed, key=lambda x: (x[0].start, x[1])):
        if track.kind == "video":
            (screens if track.source == "screen" else cameras).append(_VideoSource(track, span))
        elif track.kind == "audio":
            mics.append(_AudioSource(track, span))
    sources: list[_VideoSource | _AudioSource] = [*cameras, *screens, *mics]
    if not sources:
        raise ComposeError("no readable track in the recording")
    duration = max(s.span.end for s in sources)
    n_frames = max(1, round(duration * fps))
    total_samples = round(duration * RATE)
    log.info(
        "composing %d camera, %d screen, %d audio tracks, %.3f s -> %s",
        len(cameras), len(screens), len(mics), duration, output,
    )  # fmt: skip

    partial = output.with_name(f"{output.stem}.partial{output.suffix}")
    started = time.monotonic()
    try:
        out = _open_output(partial, fmt, width, height, fps)
        try:
            _run(out, cameras, screens, mics, n_frames, total_samples, fps, progress)
        finally:
            out.container.close()
            for source in sources:
                source.close()
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    elapsed = time.monotonic() - started
    log.info("composed %.1f s in %.1f s (%.2fx real time)", duration, elapsed, duration / elapsed)
    return CompositionResult(
        path=output,
        duration=round(duration, 3),
        width=width,
        height=height,
        size_bytes=output.stat().st_size,
        video_frames=n_frames,
    )


def _run(
    out: _Output,
    cameras: list[_VideoSource],
    screens: list[_VideoSource],
    mics: list[_AudioSource],
    n_frames: int,
    total_samples: int,
    fps: int,
    progress: Callable[[float], None] | None,
) -> None:
    """The output clock: per video frame, lay out and paste the active tiles, then mix the
    audio that belongs to the same 1/fps of time, so the muxer interleaves as it goes."""
    canvas = _Canvas(out.video.width, out.video.height)
    time_base = Fraction(1, fps)
    reported, reported_at = -1.0, 0.0
    if progress:
        progress(0.0)
        reported, reported_at = 0.0, time.monotonic()
    for i in range(n_frames):
        t = i / fps
        visible_cams = [c for c in cameras if c.active(t)]
        visible_screens = [s for s in screens if s.active(t)]
        layout = arrange(canvas.width, canvas.height, len(visible_cams), len(visible_screens))
        canvas.clear()
        for source, cell in (
            *zip(visible_screens, layout.screens, strict=True),
            *zip(visible_cams, layout.cameras, strict=True),
        ):
            tile = source.planes_for(t, cell)
            if tile is not None:
                canvas.paste(*tile)
        for source in (*cameras, *screens):
            if t >= source.span.end and not source.closed:
                source.close()
        out.container.mux(out.video.encode(canvas.frame(i, time_base)))

        a0 = i * RATE // fps
        a1 = total_samples if i == n_frames - 1 else min(total_samples, (i + 1) * RATE // fps)
        if a1 > a0:
            mix = np.zeros((2, a1 - a0), np.float32)
            for mic in mics:
                mic.mix_into(mix, a0)
            chunk = AudioFrame.from_ndarray(soft_clip(mix), format="fltp", layout="stereo")
            chunk.sample_rate = RATE
            _encode_audio(out, chunk)

        if progress:
            done = (i + 1) / n_frames
            now = time.monotonic()
            if done - reported >= PROGRESS_STEP or now - reported_at >= PROGRESS_SECONDS:
                if done < 1.0:
                    progress(done)
                    reported, reported_at = done, now
    _encode_audio(out, None)
    out.container.mux(out.audio.encode(None))
    out.container.mux(out.video.encode(None))
    if progress:
        progress(1.0)


# --- command line ------------------------------------------------------------------------


def load_manifest(path: Path) -> list[TrackFile]:
    """A JSON list of TrackFile dicts; relative paths are taken from the manifest's folder."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ComposeError(f"cannot read manifest {path}: {exc}") from exc
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ComposeError("manifest must be a JSON list of track objects")
    tracks = [TrackFile.from_dict(item) for item in raw]
    base = Path(path).parent
    return [
        t if t.path.is_absolute() else TrackFile(**{**asdict(t), "path": base / t.path})
        for t in tracks
    ]


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m compose MANIFEST OUTPUT`: JSON lines on stdout ({"progress": f} ...
    then {"done": result}); on failure exit 1 with exactly one line on stderr."""
    parser = argparse.ArgumentParser(prog="python -m compose", description=__doc__)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    args = parser.parse_args(argv)
    # quiet by default: the caller reads the last stderr line as the failure reason
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        tracks = load_manifest(args.manifest)
        result = compose(
            tracks,
            args.output,
            width=args.width,
            height=args.height,
            fps=args.fps,
            progress=lambda f: _emit({"progress": round(f, 4)}),
        )
    except Exception as exc:  # one line, whatever went wrong
        message = str(exc).replace("\n", " ").strip()
        text = message if isinstance(exc, ComposeError) else f"{type(exc).__name__}: {message}"
        sys.stderr.write(f"compose failed: {text}\n")
        return 1
    _emit({"done": {**asdict(result), "path": str(result.path)}})
    return 0
