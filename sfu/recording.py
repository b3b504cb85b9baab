"""Server-side recording: a subscriber inside the SFU that writes every published track to
disk with PyAV, without re-encoding.

Each published track gets a `TrackRecorder`, attached to its `Publication` as a frame
consumer. Frames are muxed as they are (VP8 / Opus into WebM, H.264 as Annex-B with its
in-band parameter sets into Matroska) by one writer thread
per recording, so file I/O never blocks the event loop. Files are written in Matroska's
live mode and flushed packet by packet: if the process dies, what was written still plays.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av

from rtp.codecs import h264_dimensions
from rtp.framing import EncodedFrame

from .api import Kind, Source
from .forwarding import AUDIO_CLOCK, VIDEO_CLOCK, Publication

log = logging.getLogger(__name__)
MS = Fraction(1, 1000)
CONTAINER_OPTIONS = {"live": "1", "flush_packets": "1"}


@dataclass(frozen=True)
class RecordedTrack:
    """One track file of a recording, as the manifest needs it."""

    name: str  # file name inside the recording directory, unique per recording
    participant_id: str
    source: Source
    kind: Kind
    codec: str
    start_offset: float  # seconds from the recording start to the first written frame


@dataclass(frozen=True)
class TrackSummary:
    track: RecordedTrack
    duration: float
    size_bytes: int


@dataclass(frozen=True)
class RecordingSummary:
    duration: float
    tracks: list[TrackSummary]
    error: str | None


class RecordingEvents(Protocol):
    """Callbacks into the caller (the manifest keeper); coroutines, run as tasks."""

    async def track_started(self, track: RecordedTrack) -> None: ...

    async def speaker_changed(self, participant_id: str | None, offset: float) -> None:
        """The dominant speaker at `offset` seconds into the recording (the timeline the
        recordings page and the composer use)."""

    async def failed(self, reason: str) -> None: ...


def vp8_dimensions(keyframe: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386, 9.1)."""
    if len(keyframe) < 10 or keyframe[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(keyframe[6:8], "little") & 0x3FFF
    height = int.from_bytes(keyframe[8:10], "little") & 0x3FFF
    return width, height


class _Writer:
    """One thread that owns every container of a recording; jobs run in order."""

    def __init__(self, name: str, on_error: Callable[[str], None]) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._on_error = on_error
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        if self.error is None:
            self._jobs.put(job)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self.error is not None:
                continue
            try:
                job()
            except (OSError, av.FFmpegError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.error("recording write failed: %s", self.error)
                self._on_error(self.error)

    def finish(self) -> None:
        """Run what is queued, then end the thread (blocking: call from a thread)."""
        self._jobs.put(None)
        self._thread.join()


class TrackRecorder:
    """Writes one publication's frames to one file. Quacks like a subscriber slot."""

    def __init__(self, recording: RoomRecording, publication: Publication, name: str) -> None:
        self.recording = recording
        self.publication = publication
        self.kind = publication.kind
        self.codec = recording.video_codec if self.kind == "video" else "opus"
        self.name = name
        self.path = recording.directory / name
        self.waiting_for_keyframe = publication.kind == "video"
        self.track: RecordedTrack | None = None
        self._clock = VIDEO_CLOCK if self.kind == "video" else AUDIO_CLOCK
        self._first_ts: int | None = None
        self._last_pts = -1
        self._container: Any = None
        self._stream: Any = None
        self.finished = False

    # --- the subscriber-slot interface Publication calls ---------------------------------
    def push(self, frame: EncodedFrame) -> None:
        if self.finished:
            return
        if self.waiting_for_keyframe:
            if not frame.keyframe:
                return
            self.waiting_for_keyframe = False
        elif self.kind == "video" and frame.discontinuity and not frame.keyframe:
            # a lost frame: the rest of this GOP would not decode; resume at a keyframe
            self.waiting_for_keyframe = True
            self.publication.request_keyframe()
            return
        if self._first_ts is None:
            self._start(frame)
        assert self._first_ts is not None
        pts = (frame.timestamp - self._first_ts) * 1000 // self._clock
        pts = max(pts, self._last_pts + 1)  # strictly increasing, whatever the source did
        self._last_pts = pts
        data, keyframe = frame.data, frame.keyframe
        self.recording.writer.submit(lambda: self._write(data, pts, keyframe))

    def set_source(self, publication: Publication | None) -> None:
        """The publication closed (participant left or unpublished): finish the file."""
        if publication is None:
            self.finish()

    # --- file ------------------------------------------------------------------------------
    def _start(self, frame: EncodedFrame) -> None:
        self._first_ts = frame.timestamp
        offset = time.monotonic() - self.recording.started_monotonic
        self.track = RecordedTrack(
            name=self.name,
            participant_id=self.publication.participant_id,
            source=self.publication.source,
            kind=self.kind,
            codec=self.codec,
            start_offset=round(offset, 3),
        )
        size = None
        if self.codec == "VP8":
            size = vp8_dimensions(frame.data)
        elif self.codec == "H264":
            size = h264_dimensions(frame.data)
        self.recording.writer.submit(lambda: self._open(size))
        self.recording.announce(self.track)

    def _open(self, size: tuple[int, int] | None) -> None:
        container_format = "matroska" if self.codec == "H264" else "webm"
        container = av.open(str(self.path), "w", format=container_format, options=CONTAINER_OPTIONS)
        stream: Any
        if self.kind == "video":
            # declared through its encoder (never used): the muxer only needs the parameters
            stream = container.add_stream("libx264" if self.codec == "H264" else "libvpx", rate=30)
            stream.width, stream.height = size or (640, 480)
            stream.pix_fmt = "yuv420p"
        else:
            stream = container.add_stream("libopus", rate=48000)
        stream.time_base = MS
        container.start_encoding()
        self._container, self._stream = container, stream

    def _write(self, data: bytes, pts: int, keyframe: bool) -> None:
        packet = av.Packet(data)
        packet.stream = self._stream
        packet.pts = packet.dts = pts
        packet.time_base = MS
        packet.is_keyframe = keyframe
        self._container.mux(packet)

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.publication.detach_frames(self)
        self.recording.writer.submit(self._close)

    def _close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def summary(self) -> TrackSummary | None:
        if self.track is None:
            return None
        size = self.path.stat().st_size if self.path.exists() else 0
        return TrackSummary(self.track, max(self._last_pts, 0) / 1000, size)


class RoomRecording:
    """Everything recorded in one room between start and stop."""

    def __init__(self, directory: Path, events: RecordingEvents, video_codec: str = "VP8") -> None:
        self.directory = directory
        self.events = events
        self.video_codec = video_codec
        self.started_monotonic = time.monotonic()
        self.tracks: dict[int, TrackRecorder] = {}
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._names: dict[str, int] = {}
        directory.mkdir(parents=True, exist_ok=True)
        self.writer = _Writer(f"recorder-{directory.name}", self._writer_failed)

    def sync(self, publications: Iterable[Publication]) -> None:
        """Start recording every live publication that is not recorded yet."""
        if self.writer.error is not None:
            return
        for publication in publications:
            if publication.closed or id(publication) in self.tracks:
                continue
            base = f"{publication.participant_id}-{publication.source}"
            n = self._names.get(base, 0) + 1
            self._names[base] = n
            extension = (
                ".mkv" if publication.kind == "video" and self.video_codec == "H264" else ".webm"
            )
            name = f"{base}-{n}{extension}"
            recorder = TrackRecorder(self, publication, name)
            self.tracks[id(publication)] = recorder
            publication.attach_frames(recorder)

    def announce(self, track: RecordedTrack) -> None:
        self._run(self.events.track_started(track))

    def speaker_changed(self, participant_id: str | None) -> None:
        offset = round(time.monotonic() - self.started_monotonic, 3)
        self._run(self.events.speaker_changed(participant_id, offset))

    def _writer_failed(self, reason: str) -> None:
        # called from the writer thread
        self._loop.call_soon_threadsafe(lambda: self._run(self.events.failed(reason)))

    def _run(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> RecordingSummary:
        """Detach from every publication, close the files, end the writer thread."""
        for recorder in self.tracks.values():
            recorder.finish()
        await asyncio.to_thread(self.writer.finish)
        # a write-error callback may be what is stopping us: never wait for ourselves
        others = [t for t in self._tasks if t is not asyncio.current_task()]
        if others:
            await asyncio.gather(*others, return_exceptions=True)
        summaries = [s for r in self.tracks.values() if (s := r.summary()) is not None]
        duration = round(time.monotonic() - self.started_monotonic, 3)
        return RecordingSummary(duration, summaries, self.writer.error)
