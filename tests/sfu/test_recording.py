"""The recorder is a subscriber inside the SFU: tracks land on disk without re-encoding."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

import av

from compose.probe import probe_track_file
from rtp.codecs import h264_dimensions
from rtp.synthetic import load_clip
from sfu import MediaServer, MediaSettings, RecordedTrack
from tests.helpers import eventually

from .client import LOOPBACK, ClientPeer


class Manifest:
    def __init__(self) -> None:
        self.started: list[RecordedTrack] = []
        self.failures: list[str] = []
        self.speakers: list[tuple[str | None, float]] = []

    async def track_started(self, track: RecordedTrack) -> None:
        self.started.append(track)

    async def speaker_changed(self, participant_id: str | None, offset: float) -> None:
        self.speakers.append((participant_id, offset))

    async def failed(self, reason: str) -> None:
        self.failures.append(reason)


def decode(path: Path) -> tuple[int, tuple[int, int] | None, float]:
    """Frames, size of the last frame, and span (s) of a track file, decoded with PyAV."""
    frames, size, first, last = 0, None, None, 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams[0]):
            frames += 1
            t = float(frame.pts * frame.time_base)
            first = t if first is None else first
            last = t
            if isinstance(frame, av.VideoFrame):
                size = (frame.width, frame.height)
    return frames, size, last - (first or 0.0)


async def test_records_every_track_with_offsets(server, clip, tmp_path):
    a, b = ClientPeer(server, "room", "a", clip), ClientPeer(server, "room", "b", clip)
    await a.join()
    await b.join()
    await eventually(lambda: (a.probe_for("b", "camera") or _Z).frames > 5, 10, "media flowing")
    manifest = Manifest()
    server.start_recording("room", tmp_path / "rec", manifest)
    await asyncio.sleep(2.0)
    late = ClientPeer(server, "room", "late", clip)
    await late.join()
    await asyncio.sleep(2.5)
    await b.close()  # b leaves mid-recording: its files end there
    await asyncio.sleep(0.5)
    summary = await server.stop_recording("room")
    await a.close()
    await late.close()

    assert summary is not None and summary.error is None and manifest.failures == []
    assert 4.8 < summary.duration < 7
    by_name = {s.track.name: s for s in summary.tracks}
    assert set(by_name) == {
        f"{p}-{s}-1.webm" for p in ("a", "b", "late") for s in ("microphone", "camera")
    }
    assert {t.name for t in manifest.started} == set(by_name)
    # the speakers' timeline: everyone here talks (their microphones are voiced)
    assert manifest.speakers and all(0 <= at < 7 for _, at in manifest.speakers)
    speakers = {who for who, _ in manifest.speakers} - {None}  # None: the speaker left
    assert speakers and speakers <= {"a", "b", "late"}
    for name, track in by_name.items():
        path = tmp_path / "rec" / name
        frames, size, span = decode(path)
        assert track.size_bytes == path.stat().st_size > 0
        assert abs(probe_track_file(path)[0] - track.duration) < 0.05
        if track.track.kind == "video":
            assert size == (640, 480)
            assert abs(frames - 30 * span) <= 0.1 * 30 * span + 3, (name, frames, span)
        else:
            assert abs(frames - 50 * span) <= 0.1 * 50 * span + 3, (name, frames, span)
        assert abs(span - track.duration) < 0.1
    late_cam = by_name["late-camera-1.webm"]
    assert 1.8 < late_cam.track.start_offset < 3.5, late_cam.track.start_offset
    assert by_name["a-camera-1.webm"].track.start_offset < 1.2
    assert 3.5 < by_name["b-camera-1.webm"].duration < 5.5
    assert server.stats()["decoders_started"] == 0


async def test_write_error_stops_cleanly_and_keeps_other_rooms(server, clip, tmp_path):
    a, b = ClientPeer(server, "room", "a", clip), ClientPeer(server, "room", "b", clip)
    await a.join()
    await b.join()
    rec = tmp_path / "rec"
    # the track files cannot be created (a directory stands in the way; as root, chmod
    # would not stop us): the same OSError a full disk or a wrong permission gives
    for name in ("a-camera-1.webm", "a-microphone-1.webm"):
        (rec / name).mkdir(parents=True)
    manifest = Manifest()
    server.start_recording("room", rec, manifest)
    try:
        await eventually(lambda: bool(manifest.failures), 10, "the write error to be reported")
        summary = await server.stop_recording("room")
        assert summary is not None and summary.error
        before = a.probe_for("b", "camera").frames
        await asyncio.sleep(0.5)
        assert a.probe_for("b", "camera").frames > before + 5, "the meeting must go on"
    finally:
        await a.close()
        await b.close()


class _Z:
    frames = 0


async def test_h264_deployment_records_matroska(pytestconfig, tmp_path):
    h264 = load_clip(pytestconfig.cache.mkdir("sfu-test-media"), "H264")
    server = MediaServer(MediaSettings(ice_host_addresses=LOOPBACK, video_codec="H264"))
    a, b = ClientPeer(server, "room", "a", h264), ClientPeer(server, "room", "b", h264)
    try:
        await a.join()
        await b.join()
        await eventually(lambda: (a.probe_for("b", "camera") or _Z).frames > 5, 10, "media flowing")
        manifest = Manifest()
        server.start_recording("room", tmp_path / "rec", manifest)
        await asyncio.sleep(2.5)
        summary = await server.stop_recording("room")
    finally:
        await a.close()
        await b.close()
        await server.close()
    assert summary is not None and summary.error is None
    by_name = {s.track.name: s for s in summary.tracks}
    assert set(by_name) == {
        "a-camera-1.mkv",
        "b-camera-1.mkv",
        "a-microphone-1.webm",
        "b-microphone-1.webm",
    }
    for name in ("a-camera-1.mkv", "b-camera-1.mkv"):
        track = by_name[name]
        assert track.track.codec == "H264"
        frames, size, span = decode(tmp_path / "rec" / name)
        assert size == (640, 480)
        assert abs(frames - 30 * span) <= 0.1 * 30 * span + 3, (name, frames, span)
        assert span > 1.5
        with av.open(str(tmp_path / "rec" / name)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert (stream.width, stream.height) == (640, 480)  # from the SPS


def test_h264_dimensions_from_sps():
    for width, height in ((640, 480), (1280, 720), (1920, 1080), (362, 202)):
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.options = {"x264-params": "repeat-headers=1"}
        frame = av.VideoFrame(width, height, "yuv420p")
        data = b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))
        assert h264_dimensions(data) == (width, height)
    assert h264_dimensions(b"\x00\x00\x01\x65\x88") is None  # no SPS
