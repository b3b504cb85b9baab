"""Composition of a recording's track files into one file to watch.

Inputs are real track files written the way the recorder writes them: encoded packets muxed
into WebM without re-encoding, timestamps in ms from 0 (see `write_track_file`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import pytest
from av.video.frame import PictureType, VideoFrame

from compose.composer import (
    ComposeError,
    CompositionResult,
    TrackFile,
    compose,
    soft_clip,
)
from compose.layout import Rect, arrange, fit, grid_shape
from rtp.synthetic import AUDIO_CLOCK, VIDEO_CLOCK, Clip, load_clip

MS = Fraction(1, 1000)
REPO = Path(__file__).resolve().parents[2]
Packet = tuple[bytes, int, bool]  # (data, pts in ms, keyframe)


# --- writing track files like the recorder -------------------------------------------------


def write_track_file(
    path: Path, kind: Literal["audio", "video"], packets: Iterable[Packet], codec: str = "VP8"
) -> Path:
    """Mux pre-encoded VP8/H.264 or Opus packets into WebM/Matroska without re-encoding.

    Same recipe as `sfu.recording.TrackRecorder`: declare the stream through its encoder
    (which gives Opus its header), open it, then mux raw packets with their timestamps in ms.
    H.264 goes to Matroska (`.mkv`) as Annex-B with in-band parameter sets, as RTP brings it.
    """
    packets = list(packets)
    fmt = "matroska" if codec == "H264" else "webm"
    with av.open(str(path), "w", format=fmt, options={"live": "1"}) as container:
        if kind == "video":
            stream = container.add_stream("libx264" if codec == "H264" else "libvpx", rate=30)
            size = (vp8_size(packets[0][0]) if codec == "VP8" else None) or (640, 480)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
        else:
            stream = container.add_stream("libopus", rate=48000)
        stream.time_base = MS
        container.start_encoding()
        for data, pts, keyframe in packets:
            packet = av.Packet(data)
            packet.stream = stream
            packet.pts = packet.dts = pts
            packet.time_base = MS
            packet.is_keyframe = keyframe
            container.mux(packet)
    return path


def vp8_size(keyframe: bytes) -> tuple[int, int] | None:
    if len(keyframe) < 10 or keyframe[3:6] != b"\x9d\x01\x2a":
        return None
    return (
        int.from_bytes(keyframe[6:8], "little") & 0x3FFF,
        int.from_bytes(keyframe[8:10], "little") & 0x3FFF,
    )


def video_packets(clip: Clip, seconds: float | None = None) -> list[Packet]:
    """The clip's video in ms, looped (it starts with a keyframe) up to `seconds`."""
    out: list[Packet] = []
    loop = 0
    while True:
        for data, pts, key in clip.video:
            ms = (pts + loop * clip.video_period) * 1000 // VIDEO_CLOCK
            if seconds is not None and ms >= seconds * 1000:
                return out
            out.append((data, ms, key))
        if seconds is None:
            return out
        loop += 1


def audio_packets(clip: Clip, seconds: float | None = None) -> list[Packet]:
    out: list[Packet] = []
    loop = 0
    while True:
        for data, pts in clip.audio:
            ms = (pts + loop * clip.audio_period) * 1000 // AUDIO_CLOCK
            if seconds is not None and ms >= seconds * 1000:
                return out
            out.append((data, ms, True))
        if seconds is None:
            return out
        loop += 1


def solid_vp8(rgb: tuple[int, int, int], width: int, height: int, seconds: float) -> list[Packet]:
    """A plain-colour VP8 clip (cheap to encode) to tell one participant's tile apart."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, 30), Fraction(30, 1)
    ctx.bit_rate, ctx.gop_size = 300_000, 30
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    image = np.empty((height, width, 3), np.uint8)
    image[:] = rgb
    packets: list[Packet] = []
    for i in range(round(seconds * 30)):
        frame = VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base, frame.pict_type = i, Fraction(1, 30), PictureType.NONE
        packets += [(bytes(p), int(p.pts) * 1000 // 30, p.is_keyframe) for p in ctx.encode(frame)]
    packets += [(bytes(p), int(p.pts) * 1000 // 30, p.is_keyframe) for p in ctx.encode(None)]
    assert packets[0][2]
    return packets


def track(
    path: Path,
    kind: Literal["audio", "video"],
    source: Literal["microphone", "camera", "screen"],
    who: str,
    offset: float,
) -> TrackFile:
    return TrackFile(path, kind, source, who, who.title(), offset, None)


# --- reading the composed file ---------------------------------------------------------------


def video_frames_at(path: Path, times: Sequence[float]) -> tuple[int, dict[float, np.ndarray]]:
    """Frame count, and the RGB picture shown at each asked time."""
    wanted = sorted(times)
    pictures: dict[float, np.ndarray] = {}
    count = 0
    previous: VideoFrame | None = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            count += 1
            t = float(frame.time or 0.0)
            while wanted and t > wanted[0] + 1e-3 and previous is not None:
                pictures[wanted.pop(0)] = previous.to_ndarray(format="rgb24")
            previous = frame
    assert previous is not None
    for t in wanted:
        pictures[t] = previous.to_ndarray(format="rgb24")
    return count, pictures


def audio_track(path: Path) -> tuple[np.ndarray, int]:
    """The whole decoded audio as mono float samples, and its rate."""
    chunks: list[np.ndarray] = []
    rate = 48000
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            chunks.append(frame.to_ndarray().reshape(len(frame.layout.channels), -1).mean(axis=0))
    return np.concatenate(chunks).astype(np.float64), rate


def rms(samples: np.ndarray, rate: int, t0: float, t1: float) -> float:
    part = samples[int(t0 * rate) : int(t1 * rate)]
    return float(np.sqrt(np.mean(part**2))) if part.size else 0.0


def region(picture: np.ndarray, rect: Rect, inset: int = 6) -> np.ndarray:
    """Mean RGB inside `rect`, a few pixels in from its edges (codec blur)."""
    area = picture[
        rect.y + inset : rect.y + rect.h - inset, rect.x + inset : rect.x + rect.w - inset
    ]
    return area.reshape(-1, 3).mean(axis=0)


def is_black(rgb: np.ndarray) -> bool:
    return float(rgb.max()) < 20


def is_red(rgb: np.ndarray) -> bool:
    return rgb[0] > 150 and rgb[1] < 80 and rgb[2] < 80


def tile(
    width: int, height: int, cameras: int, screens: int, index: int, screen: bool = False
) -> Rect:
    """Where camera/screen number `index` shows a 640x480 picture for a given track count."""
    layout = arrange(width, height, cameras, screens)
    cell = (layout.screens if screen else layout.cameras)[index]
    return fit(640, 480, cell)


def probe(path: Path) -> tuple[list[str], float]:
    with av.open(str(path)) as container:
        names = [s.codec_context.name for s in container.streams]
        return names, (container.duration or 0) / 1e6


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(pytestconfig: pytest.Config) -> Clip:
    return load_clip(pytestconfig.cache.mkdir("sfu-test-media"), "VP8")


@pytest.fixture(scope="module")
def red() -> list[Packet]:
    return solid_vp8((220, 20, 20), 640, 480, 3.0)


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory, clip: Clip) -> list[TrackFile]:
    """One participant, camera + microphone, 3 s, from t=0."""
    d = tmp_path_factory.mktemp("basic")
    return [
        track(
            write_track_file(d / "a-cam.webm", "video", video_packets(clip)),
            "video",
            "camera",
            "ana",
            0,
        ),
        track(
            write_track_file(d / "a-mic.webm", "audio", audio_packets(clip)),
            "audio",
            "microphone",
            "ana",
            0,
        ),
    ]


# --- tests -------------------------------------------------------------------------------------


def test_three_participants_staggered(tmp_path: Path, clip: Clip, red: list[Packet]) -> None:
    """Two participants from 0 to 4.5 s, a third (plain red camera) from 2.0 to 5.0 s."""
    tracks = []
    for who in ("ana", "ben"):
        cam = write_track_file(tmp_path / f"{who}-cam.webm", "video", video_packets(clip, 4.5))
        mic = write_track_file(tmp_path / f"{who}-mic.webm", "audio", audio_packets(clip, 4.5))
        tracks += [
            track(cam, "video", "camera", who, 0.0),
            track(mic, "audio", "microphone", who, 0.0),
        ]
    cam = write_track_file(tmp_path / "cy-cam.webm", "video", red)
    mic = write_track_file(tmp_path / "cy-mic.webm", "audio", audio_packets(clip))
    tracks += [
        track(cam, "video", "camera", "cy", 2.0),
        track(mic, "audio", "microphone", "cy", 2.0),
    ]

    steps: list[float] = []
    out = tmp_path / "composed.mp4"
    result = compose(tracks, out, fps=15, progress=steps.append)

    expected = 2.0 + 3.02  # the late microphone ends last (151 frames of 20 ms)
    assert isinstance(result, CompositionResult)
    assert result.path == out and out.exists() and result.size_bytes == out.stat().st_size
    assert (result.width, result.height) == (1280, 720)
    assert result.duration == pytest.approx(expected, rel=0.05)
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps) and len(steps) > 5

    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        v, a = container.streams.video[0], container.streams.audio[0]
        assert (v.codec_context.name, v.width, v.height) == ("h264", 1280, 720)
        assert v.codec_context.pix_fmt == "yuv420p"
        assert (a.codec_context.name, a.sample_rate, a.codec_context.channels) == ("aac", 48000, 2)
        assert (container.duration or 0) / 1e6 == pytest.approx(expected, rel=0.05)

    count, pics = video_frames_at(out, [1.0, 3.0, 4.8])
    assert count == result.video_frames
    assert abs(count - expected * 15) <= 2

    # t=1.0: two tiles (the late participant has none yet), nothing red anywhere
    for i in range(2):
        assert not is_black(region(pics[1.0], tile(1280, 720, 2, 0, i)))
    assert not is_red(region(pics[1.0], Rect(0, 0, 1280, 720), 0))
    late = tile(1280, 720, 3, 0, 2)
    assert not is_red(region(pics[1.0], late))
    # t=3.0: three tiles, the late one (last row, centred) is red; its sides are black
    assert is_red(region(pics[3.0], late))
    assert is_black(region(pics[3.0], Rect(0, late.y, late.x - 80, late.h)))
    for i in range(2):
        assert not is_black(region(pics[3.0], tile(1280, 720, 3, 0, i)))
    # t=4.8: the first two have left; the late participant fills the canvas alone
    assert is_red(region(pics[4.8], tile(1280, 720, 1, 0, 0)))

    samples, rate = audio_track(out)
    assert len(samples) / rate == pytest.approx(expected, rel=0.05)
    for t0, t1 in ((0.3, 1.8), (2.2, 4.3), (4.6, 4.95)):
        assert rms(samples, rate, t0, t1) > 0.02, (t0, t1)
    # three sines in phase are louder than two, and the mix never clips
    assert rms(samples, rate, 2.2, 2.9) > rms(samples, rate, 0.3, 1.0) * 1.2
    assert float(np.max(np.abs(samples))) <= 1.0


def test_screen_share_takes_the_large_area(tmp_path: Path, clip: Clip, red: list[Packet]) -> None:
    cam = write_track_file(tmp_path / "cam.webm", "video", video_packets(clip))
    screen = write_track_file(tmp_path / "screen.webm", "video", red)
    tracks = [
        track(cam, "video", "camera", "ana", 0.0),
        track(screen, "video", "screen", "ana", 1.0),
    ]
    out = tmp_path / "screen.mp4"
    result = compose(tracks, out, width=640, height=360)
    assert result.duration == pytest.approx(4.0, rel=0.05)
    _, pics = video_frames_at(out, [0.5, 2.0, 3.5])

    assert not is_black(region(pics[0.5], tile(640, 360, 1, 0, 0)))
    big = tile(640, 360, 1, 1, 0, screen=True)
    assert big.w > 640 * 0.6
    assert is_red(region(pics[2.0], big, 10))
    side = tile(640, 360, 1, 1, 0)
    assert side.x >= big.x + big.w and not is_black(region(pics[2.0], side, 2))
    assert not is_red(region(pics[2.0], side, 2))
    # the camera has ended: the screen alone fills the canvas
    assert is_red(region(pics[3.5], tile(640, 360, 0, 1, 0, screen=True)))


def test_gap_in_a_track_stays_in_place(tmp_path: Path, clip: Clip) -> None:
    """Packets for 0-1 s and 2-3 s only: silence and a held picture in the gap, and the
    second part plays at 2 s, not straight after the first."""

    def gap(packets: list[Packet]) -> list[Packet]:
        return [p for p in packets if p[1] < 1000 or p[1] >= 2000]

    cam = write_track_file(tmp_path / "cam.webm", "video", gap(video_packets(clip)))
    mic = write_track_file(tmp_path / "mic.webm", "audio", gap(audio_packets(clip)))
    out = tmp_path / "gap.mp4"
    result = compose(
        [track(cam, "video", "camera", "ana", 0.5), track(mic, "audio", "microphone", "ana", 0.5)],
        out,
        width=640,
        height=360,
    )
    assert result.duration == pytest.approx(3.52, rel=0.05)
    samples, rate = audio_track(out)
    assert rms(samples, rate, 0.0, 0.45) < 0.002  # before the offset
    assert rms(samples, rate, 0.7, 1.4) > 0.02
    assert rms(samples, rate, 1.6, 2.4) < 0.002  # the gap, 1.5-2.5 s on the timeline
    assert rms(samples, rate, 2.6, 3.4) > 0.02
    _, pics = video_frames_at(out, [0.2, 2.0])
    assert is_black(region(pics[0.2], Rect(0, 0, 640, 360), 0))
    assert not is_black(region(pics[2.0], tile(640, 360, 1, 0, 0)))  # holds the last frame


def test_resolution_change_mid_track(tmp_path: Path, clip: Clip) -> None:
    """640x480 testsrc for 1.5 s, then a keyframe at 320x240 (red): scaled to the same tile."""
    first = video_packets(clip, 1.0)
    second = [(d, pts + 1000, k) for d, pts, k in solid_vp8((220, 20, 20), 320, 240, 1.0)]
    cam = write_track_file(tmp_path / "cam.webm", "video", first + second)
    out = tmp_path / "resize.mp4"
    compose([track(cam, "video", "camera", "ana", 0.0)], out, width=640, height=360)
    _, pics = video_frames_at(out, [0.5, 1.5])
    box = tile(640, 360, 1, 0, 0)
    assert not is_black(region(pics[0.5], box)) and not is_red(region(pics[0.5], box))
    assert is_red(region(pics[1.5], box))


def test_h264_matroska_input(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    h264 = load_clip(pytestconfig.cache.mkdir("sfu-test-media"), "H264")
    cam = write_track_file(tmp_path / "cam.mkv", "video", video_packets(h264), codec="H264")
    out = tmp_path / "h264.mp4"
    result = compose([track(cam, "video", "camera", "ana", 0.5)], out, width=640, height=360)
    assert result.duration == pytest.approx(3.5, rel=0.05)
    _, pics = video_frames_at(out, [0.2, 2.0])
    assert is_black(region(pics[0.2], Rect(0, 0, 640, 360), 0))
    assert not is_black(region(pics[2.0], tile(640, 360, 1, 0, 0)))


def test_truncated_input_still_composes(tmp_path: Path, basic: list[TrackFile]) -> None:
    tracks = []
    for t in basic:
        data = t.path.read_bytes()
        cut = tmp_path / t.path.name
        cut.write_bytes(data[: int(len(data) * 0.8)])
        tracks.append(TrackFile(cut, t.kind, t.source, t.participant_id, "", 0.0, 3.0))
    out = tmp_path / "cut.mp4"
    result = compose(tracks, out, width=640, height=360)
    assert 1.5 < result.duration < 3.0
    names, duration = probe(out)
    assert names == ["h264", "aac"] and duration == pytest.approx(result.duration, rel=0.05)


def test_webm_output(tmp_path: Path, basic: list[TrackFile]) -> None:
    out = tmp_path / "composed.webm"
    result = compose(basic, out, width=640, height=360)
    names, duration = probe(out)
    assert names == ["vp8", "opus"]
    assert duration == pytest.approx(3.02, rel=0.05)
    count, pics = video_frames_at(out, [1.5])
    assert count == result.video_frames and abs(count - 3.02 * 15) <= 2
    assert not is_black(region(pics[1.5], tile(640, 360, 1, 0, 0)))
    samples, rate = audio_track(out)
    assert rms(samples, rate, 0.5, 2.5) > 0.02


def test_unreadable_tracks_are_skipped_and_nothing_left_fails(
    tmp_path: Path, basic: list[TrackFile]
) -> None:
    junk = tmp_path / "junk.webm"
    junk.write_bytes(b"not a matroska file" * 10)
    missing = track(tmp_path / "missing.webm", "video", "camera", "zoe", 0.0)
    bad = [track(junk, "audio", "microphone", "zoe", 0.0), missing]
    result = compose([*basic, *bad], tmp_path / "ok.mp4", width=320, height=180)
    assert result.duration == pytest.approx(3.02, rel=0.05)
    with pytest.raises(ComposeError, match="no readable track"):
        compose(bad, tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()
    with pytest.raises(ComposeError, match=r"\.mp4 or \.webm"):
        compose(basic, tmp_path / "out.avi")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "compose", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        check=False,
    )


def test_cli_prints_progress_and_result(tmp_path: Path, basic: list[TrackFile]) -> None:
    manifest = tmp_path / "manifest.json"
    entries = [
        {
            "path": t.path.name if i == 0 else str(t.path),  # relative paths: manifest's folder
            "kind": t.kind,
            "source": t.source,
            "participant_id": t.participant_id,
            "display_name": t.display_name,
            "start_offset": t.start_offset,
            "duration": None,
        }
        for i, t in enumerate(basic)
    ]
    (tmp_path / basic[0].path.name).write_bytes(basic[0].path.read_bytes())
    manifest.write_text(json.dumps(entries))
    out = tmp_path / "composed.mp4"
    proc = run_cli(str(manifest), str(out), "--width", "320", "--height", "180")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    progress = [line["progress"] for line in lines[:-1]]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress)
    done = lines[-1]["done"]
    assert done["path"] == str(out) and done["width"] == 320 and done["height"] == 180
    assert done["duration"] == pytest.approx(3.02, rel=0.05)
    assert done["size_bytes"] == out.stat().st_size and done["video_frames"] > 40


@pytest.mark.parametrize(
    "manifest",
    ["not json", json.dumps({"path": "x"}), json.dumps([{"path": "a.webm", "kind": "smell"}])],
)
def test_cli_bad_manifest_fails_with_one_line(tmp_path: Path, manifest: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(manifest)
    proc = run_cli(str(path), str(tmp_path / "out.mp4"))
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("compose failed:")
    assert not (tmp_path / "out.mp4").exists()


# --- units -------------------------------------------------------------------------------------


def test_grid_shapes_for_16_9() -> None:
    expected = {
        1: (1, 1),
        2: (2, 1),
        3: (2, 2),
        4: (2, 2),
        5: (3, 2),
        6: (3, 2),
        7: (3, 3),
        9: (3, 3),
        10: (4, 3),
        12: (4, 3),
    }
    for n, shape in expected.items():
        assert grid_shape(n, 1280, 720) == shape, n


def test_layout_cells_are_even_inside_and_disjoint() -> None:
    for cams in range(0, 13):
        for screens in (0, 1, 2):
            layout = arrange(1280, 720, cams, screens)
            cells = [*layout.screens, *layout.cameras]
            assert len(layout.cameras) == cams and len(layout.screens) == screens
            for c in cells:
                assert all(v % 2 == 0 for v in (c.x, c.y, c.w, c.h)) and c.w > 0 and c.h > 0
                assert c.x + c.w <= 1280 and c.y + c.h <= 720
            for i, a in enumerate(cells):
                for b in cells[i + 1 :]:
                    assert (
                        a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
                    )
    assert fit(640, 480, Rect(0, 0, 640, 360)) == Rect(80, 0, 480, 360)
    assert fit(1920, 1080, Rect(10, 10, 200, 300)).w == 200


def test_soft_clip() -> None:
    quiet = np.array([[0.5, -0.7]], np.float32)
    assert soft_clip(quiet) is quiet
    loud = np.linspace(-3, 3, 601, dtype=np.float32).reshape(1, -1)
    out = soft_clip(loud)
    assert float(np.max(np.abs(out))) <= 1.0
    assert np.all(np.diff(out[0]) >= 0)  # still monotonic: no folding back
    near = np.abs(loud[0]) < 1.5
    assert np.all(np.diff(out[0][near]) > 0)  # and still rising where it bends
    small = np.abs(loud) <= 0.8
    assert np.allclose(out[small], loud[small])
