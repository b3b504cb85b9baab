"""Smoke tests of the load bots and the capacity benchmark, against the real server.

No timing is asserted: these runs are seconds long on a shared machine. They prove the
tools still work end to end (accounts, joins, media both ways, the report's shape).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc.rtp import RtpPacket

from bench.capacity import parse
from client.loadtest.media import ClipIndex, ClipSchedule, ScheduledClipTrack, load_key_variants
from client.loadtest.probe import StreamCounters, StreamProbe
from client.loadtest.report import build_report, format_report, switch_figures
from client.loadtest.runner import Joined
from client.loadtest.speaking import Speaking, Turn, parse_turns, rotation
from client.loadtest.stats import Histogram
from rtp.codecs import vp8_is_keyframe
from rtp.synthetic import load_clip
from tests.helpers import eventually
from tests.server_process import REPO, ServerProcess

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.org", "admin-password-1"


@pytest.fixture
def clip_dir(pytestconfig: pytest.Config) -> Path:
    return Path(pytestconfig.cache.mkdir("loadtest-clip"))


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    process = ServerProcess(tmp_path / "data", TERTULIA_LOG_LEVEL="WARNING")
    process.create_user(ADMIN_EMAIL, "Admin", ADMIN_PASSWORD, admin=True)
    process.start()
    yield process
    process.stop()


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERTULIA_")}
    env["TERTULIA_LOADTEST_PASSWORD"] = ADMIN_PASSWORD
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_loadtest_two_bots_exchange_media(server: ServerProcess, clip_dir: Path) -> None:
    result = _run(
        [
            "-m",
            "signaling.cli",
            "loadtest",
            "--url",
            server.base_url,
            "--admin-email",
            ADMIN_EMAIL,
            "-k",
            "2",
            "--warmup",
            "1",
            "--duration",
            "3",
            "--decode-sample",
            "--json",
            "--clip-dir",
            str(clip_dir),
        ]
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bots"] == 2
    assert [p["error"] for p in report["participants"]] == [None, None]
    streams = {(s["subscriber"], s["publisher"], s["kind"]): s for s in report["streams"]}
    assert set(streams) == {
        ("bot-1", "bot-2", "video"),
        ("bot-1", "bot-2", "audio"),
        ("bot-2", "bot-1", "video"),
        ("bot-2", "bot-1", "audio"),
    }
    for (_, _, kind), stream in streams.items():
        assert stream["packets"] > 0 and stream["rate"] > 0
        assert stream["join_to_first_frame_s"] is not None
        if kind == "video":
            assert stream["identical_fraction"] == 1.0  # forwarded unchanged
            assert stream["latency_ms"]["count"] > 0
    assert report["totals"]["join_to_first_frame_s"]["missing"] == 0
    assert report["bots_cpu"]["percent_of_one_core"] is not None
    samples = report["decoded_sample"]
    assert samples and all((s["width"], s["height"]) == (640, 480) for s in samples)
    assert samples[0]["subscriber"] == "bot-1" and samples[0]["publisher"] == "bot-2"


def test_loadtest_refuses_without_credentials() -> None:
    result = _run(["-m", "signaling.cli", "loadtest", "--url", "http://127.0.0.1:9", "-k", "2"])
    assert result.returncode == 2
    assert "--admin-email" in result.stderr


def test_capacity_bench_smoke(tmp_path: Path, clip_dir: Path) -> None:
    """K = 2 for a two-second window, forwarding and the relay baseline, as JSON."""
    result = _run(
        [
            "-m",
            "bench.capacity",
            "--ks",
            "2",
            "--baseline-ks",
            "2",
            "--window",
            "2",
            "--repeats",
            "1",
            "--warmup",
            "0.5",
            "--quiet-wait",
            "0",
            "--no-pin",
            "--server-env",
            "TERTULIA_EVENT_LOOP=asyncio",
            "--json",
            "--clip-dir",
            str(clip_dir),
            "--data-dir",
            str(tmp_path / "bench"),
        ],
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    (forward,) = out["forwarding"]
    assert forward["k"] == 2 and forward["error"] is None
    assert forward["video_fps_mean"] > 0 and forward["audio_pps_mean"] > 0
    assert forward["server_cpu_percent"] is not None and forward["server_rss_mb"] > 0
    assert forward["identical_fraction"] == 1.0
    assert forward["decoded_sample"][0]["width"] == 640
    # the server's own counters (GET /api/admin/media-stats) were read around the window
    assert forward["forwarded_packets_per_s"] > 0
    assert forward["server_cpu_per_forwarded_packet_us"] is not None
    assert forward["retransmissions_per_s"] is not None
    (relay,) = out["relay"]
    assert relay["error"] is None and relay["video_fps_mean"] > 0
    assert relay["identical_fraction"] == 0.0  # re-encoded by the server: really the baseline
    assert out["comparison"] and out["comparison"][0]["k"] == 2
    assert "bench.capacity" in out["command"]


def test_large_bench_smoke(tmp_path: Path, clip_dir: Path) -> None:
    """bench.large at K = 3 with last_n 1 for a two-second window, as JSON."""
    result = _run(
        [
            "-m",
            "bench.large",
            "--ks",
            "3",
            "--light-ks",
            "",
            "--last-n",
            "1",
            "--speak-every",
            "1",
            "--window",
            "2",
            "--repeats",
            "1",
            "--warmup",
            "1",
            "--quiet-wait",
            "0",
            "--no-pin",
            "--json",
            "--clip-dir",
            str(clip_dir),
            "--data-dir",
            str(tmp_path / "bench"),
        ],
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    (point,) = out["points"]
    assert point["k"] == 3 and point["last_n"] == 1 and point["error"] is None
    assert point["clip_format"] == "640x480@30"
    assert point["server_cpu_percent"] is not None and point["forwarded_streams"] > 0
    assert point["server_cpu_per_participant_percent"] is not None
    assert point["video_fps_per_selected_stream_mean"] > 0
    assert point["video_ratio_min"] is not None
    assert point["speaker_switch"]["turns"] >= 1
    assert point["bots_cpu_percent"] is not None
    assert out["settings"]["last_n"] == 1 and out["settings"]["audio_streams"] == 3
    assert "bench.large" in out["command"]


def test_capacity_bench_server_options(tmp_path: Path) -> None:
    _, opts = parse(
        ["--server-source", str(tmp_path), "--server-env", "TERTULIA_EVENT_LOOP=asyncio"]
    )
    assert opts.server_source == tmp_path.resolve()
    assert opts.server_env == (("TERTULIA_EVENT_LOOP", "asyncio"),)
    with pytest.raises(SystemExit):
        parse(["--server-env", "EVENT_LOOP=asyncio"])  # not a TERTULIA_ setting


# ------------------------------------------------------------------ receive policy, speaking


def test_loadtest_last_n_one_follows_the_speaker(server: ServerProcess, clip_dir: Path) -> None:
    """Three bots asking for one video stream each (`receive` last_n 1): none ever has more
    than one publisher's video at a time, and once bot-3 speaks the other two receive it."""
    result = _run(
        [
            "-m",
            "signaling.cli",
            "loadtest",
            "--url",
            server.base_url,
            "--admin-email",
            ADMIN_EMAIL,
            "-k",
            "3",
            "--last-n",
            "1",
            "--speak",
            "3@0",
            "--warmup",
            "3",
            "--duration",
            "3",
            "--json",
            "--clip-dir",
            str(clip_dir),
        ]
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["receive"]["last_n"] == 1 and report["receive"]["refused"] == []
    assert report["receive"]["selecting"] is True
    selected = report["selected"]
    assert selected["expected_video_per_bot"] == 1
    for bot in selected["bots"]:
        # one video slot busy at most, all through the window
        assert bot["video_busy_max"] == 1, bot
        assert 0.5 <= bot["video_streams"] <= 1.0, bot
    video = [s for s in report["streams"] if s["kind"] == "video"]
    for subscriber in ("bot-1", "bot-2"):
        mine = {s["publisher"]: s for s in video if s["subscriber"] == subscriber}
        assert mine["bot-3"]["frames"] > 0, mine
        # the speaker held the slot for most of the window
        assert mine["bot-3"]["assigned_s"] == max(s["assigned_s"] for s in mine.values())
    speaking = report["speaking"]
    assert [t["bot"] for t in speaking["schedule"]["turns"]] == ["bot-3"]
    (turn,) = speaking["per_turn"]
    assert turn["speaker"] == "bot-3" and turn["subscribers"] == 2
    assert turn["switch_s"] is not None  # both others got bot-3's video after it spoke
    assert speaking["missed_turns"] == 0


def test_speaking_turns_from_options() -> None:
    assert parse_turns("3@0, 1@4.5,none@9") == [Turn(0.0, 3), Turn(4.5, 1), Turn(9.0, None)]
    assert parse_turns("2@5,1@1") == [Turn(1.0, 1), Turn(5.0, 2)]
    for bad in ("3", "x@1", "0@1", "3@-1"):
        with pytest.raises(ValueError):
            parse_turns(bad)
    # one bot at a time, from the last one down, wrapping around
    assert rotation([1, 2, 3], 2.0, 7.0) == [Turn(0, 3), Turn(2, 2), Turn(4, 1), Turn(6, 3)]
    assert rotation([1, 2], 0, 10.0) == []


def test_loadtest_options_are_checked() -> None:
    for args in (
        ["--last-n", "26"],
        ["--speak", "5@1"],  # only 4 bots
        ["--speak", "bot@1"],
        ["--clip", "big"],
        ["--loud-level", "128"],
    ):
        result = _run(["-m", "signaling.cli", "loadtest", "--url", "http://127.0.0.1:9", *args])
        assert result.returncode == 2, (args, result.stderr)


class _FakeTest:
    """Stands in for runner.LoadTest: records what the speaking driver sends."""

    def __init__(self) -> None:
        self.turns: list[tuple[int, int | None, int, int]] = []
        self.levels: list[tuple[int, int]] = []

    async def turn(self, turn: int, speaker: int | None, at: float, loud: int, quiet: int) -> None:
        self.turns.append((turn, speaker, loud, quiet))

    async def level(self, bot: int, level: int, at: float) -> None:
        self.levels.append((bot, level))

    def participant_id(self, bot: int) -> str:
        return f"p-{bot}"


async def test_control_file_drives_the_bots(tmp_path: Path) -> None:
    control = tmp_path / "control"
    fake = _FakeTest()
    speaking = Speaking(fake, loud=10, quiet=100)  # type: ignore[arg-type]
    follower = asyncio.create_task(speaking.follow(control))
    try:
        await asyncio.sleep(0.1)  # the file does not exist yet: waits for it
        control.write_text("speak 2\n# a comment\nlevel 1 40\n")
        await eventually(lambda: len(fake.levels) == 1, 5, "the control file to be read")
        with control.open("a") as f:
            f.write("quiet\nspeak x\nspe")  # an incomplete last line waits for its end
        await eventually(lambda: len(fake.turns) == 2, 5, "the appended lines")
        with control.open("a") as f:
            f.write("ak 1\n")
        await eventually(lambda: len(fake.turns) == 3, 5, "the completed line")
    finally:
        follower.cancel()
    assert fake.turns == [(1, 2, 10, 100), (2, None, 10, 100), (3, 1, 10, 100)]
    assert fake.levels == [(1, 40)]
    assert [r["bot"] for r in speaking.records] == ["bot-2", None, "bot-1"]
    assert speaking.records[0]["participant_id"] == "p-2"


async def test_keyframe_request_is_answered_with_the_scheduled_frame(clip_dir: Path) -> None:
    """A PLI makes the next frame a keyframe of the same picture, identified as the frame
    the schedule sends then (latency stays measurable); without one the clip's GOP runs."""
    clip = load_clip(clip_dir, "VP8", 10.0, 150_000, size=(320, 240), fps=15)
    assert clip.fps == 15 and clip.video_period == 150 * 6000
    variants = load_key_variants(clip_dir, clip)
    assert len(variants) == len(clip.video)
    index = ClipIndex(clip, variants)
    # the schedule's frame 0 is due in 50 ms
    schedule = ClipSchedule(period=10.0, phase=(time.time() + 0.05) % 10.0, keyframes=(0,), fps=15)
    track = ScheduledClipTrack(clip, "video", schedule, variants)
    first = await track.recv()
    assert bytes(first) == clip.video[0][0]  # starts at a keyframe slot
    second = await track.recv()
    assert bytes(second) == clip.video[1][0] and not clip.video[1][2]
    track.request_keyframe()
    third = await track.recv()
    assert bytes(third) != clip.video[2][0] and vp8_is_keyframe(bytes(third))
    assert index.lookup(bytes(third)) == 2 and index.lookup(clip.video[2][0]) == 2
    fourth = await track.recv()
    assert bytes(fourth) == clip.video[3][0]  # then the clip goes on
    assert track.keyframe_requests == 1 and track.keyframes_answered == 1
    track.stop()


def test_stream_counters_count_loss_per_run() -> None:
    """A publisher taken off a slot and put back later: the sequence numbers the slot spent
    on someone else are not lost packets."""
    counters = StreamCounters("p-1", "camera", "video", None)
    counters.first_seq, counters.last_seq, counters.packets = 100, 199, 100
    counters.end_run()
    counters.first_seq, counters.last_seq, counters.packets = 500, 549, 150 - 1
    assert counters.expected_packets == 150


def _joined(bot: int, **fields: Any) -> Joined:
    return Joined(bot, f"p-{bot}", 100.0 + bot, 101.0 + bot, audio_streams=3, **fields)


def _stream(pub: int, kind: str, frames: int, assigned: float) -> dict[str, Any]:
    return {
        "publisher": f"p-{pub}",
        "source": "camera" if kind == "video" else "microphone",
        "kind": kind,
        "frames": frames,
        "packets": frames,
        "expected_packets": frames,
        "bytes": frames * 1000,
        "keyframes": 1,
        "discontinuities": 0,
        "identified": frames,
        "assigned_s": assigned,
        "latency_ms": Histogram().summary(),
    }


def test_report_counts_what_each_bot_selected() -> None:
    """Three bots with last_n 1 over a 10 s window: bot-1 had bot-2 for 4 s then bot-3
    for 6 s (a remap); fps per selected stream is per assigned second, per bot."""
    bots = [
        {
            "bot": n,
            "participant_id": f"p-{n}",
            "video_frames_sent": 300,
            "audio_packets_sent": 500,
            "keyframes_answered": 1,
            "remaps": 2 if n == 1 else 0,
            "video_busy_max": 1,
            "send_lag_ms": Histogram().summary(),
        }
        for n in (1, 2, 3)
    ]
    streams = [
        {"subscriber": "p-1", **_stream(2, "video", 120, 4.0)},
        {"subscriber": "p-1", **_stream(3, "video", 150, 6.0)},  # 25 fps: the worst
        {"subscriber": "p-2", **_stream(3, "video", 300, 10.0)},
        {"subscriber": "p-3", **_stream(1, "video", 300, 10.0)},
        {"subscriber": "p-1", **_stream(3, "audio", 500, 10.0)},
    ]
    window = {
        "started_at": 1000.0,
        "seconds": 10.0,
        "cpu_seconds": 1.0,
        "pid": 1,
        "bots": bots,
        "streams": streams,
        "latency": Histogram().to_json(),
        "send_lag": Histogram().to_json(),
        "loop_lag": Histogram().to_json(),
    }
    joined = [_joined(n) for n in (1, 2, 3)]
    finals = [
        {
            "first_frames": [],
            "decoded": [],
            "raised": [{"turn": 1, "speaker": "p-3", "raised_at": 1002.0}],
            "switches": [
                {
                    "turn": 1,
                    "subscriber": "p-1",
                    "speaker": "p-3",
                    "at": 1002.0,
                    "already": False,
                    "active_speaker_at": 1002.3,
                    "remap_at": 1002.35,
                    "first_frame_at": 1002.4,
                },
                {
                    "turn": 1,
                    "subscriber": "p-2",
                    "speaker": "p-3",
                    "at": 1002.0,
                    "already": True,
                    "active_speaker_at": 1002.3,
                    "remap_at": None,
                    "first_frame_at": 1002.03,
                },
            ],
        }
    ]
    turns = [{"turn": 1, "bot": "bot-3", "participant_id": "p-3", "at": 1002.0}]
    report = build_report([window], joined, finals, last_n=1, turns=turns)
    assert report["receive"]["selecting"] and report["selected"]["expected_video_per_bot"] == 1
    rows = {(s["subscriber"], s["publisher"], s["kind"]): s for s in report["streams"]}
    assert set(rows) == {
        ("bot-1", "bot-2", "video"),
        ("bot-1", "bot-3", "video"),
        ("bot-2", "bot-3", "video"),
        ("bot-3", "bot-1", "video"),
        ("bot-1", "bot-3", "audio"),
    }  # only what was selected
    assert rows[("bot-1", "bot-2", "video")]["rate"] == 30.0
    assert rows[("bot-1", "bot-3", "video")]["rate"] == 25.0
    selected = report["selected"]
    per_bot = {b["bot"]: b for b in selected["bots"]}
    assert per_bot["bot-1"]["video_streams"] == 1.0
    assert per_bot["bot-1"]["video_fps"] == 27.0  # 270 frames over 10 assigned seconds
    assert per_bot["bot-1"]["video_ratio"] == 0.9
    assert selected["video_fps"]["min"] == 27.0 and selected["video_fps"]["max"] == 30.0
    assert selected["audio_streams_per_bot"]["max"] == 1.0
    assert report["totals"]["forwarded_streams"] == 3.0  # video streams on slots, on average
    speaking = report["speaking"]
    assert speaking["turns"] == 1 and speaking["missed_turns"] == 0
    assert speaking["switch_s"]["max"] == pytest.approx(0.4)
    assert speaking["remapped_subscriber_s"]["count"] == 1
    assert speaking["already_receiving"] == 1
    assert speaking["active_speaker_s"]["p50"] == pytest.approx(0.3)
    assert speaking["remap_s"]["max"] == pytest.approx(0.35)
    # the benchmark counts the turns that started inside its windows
    assert switch_figures(turns, finals, [(1000.0, 1010.0)])["turns"] == 1
    assert switch_figures(turns, finals, [(1003.0, 1010.0)])["turns"] == 0
    assert "speaker switches:  1 turns" in format_report(report)


def test_stream_probe_follows_slot_remaps(clip_dir: Path) -> None:
    """One video slot carries p-1, then p-2, then p-1 again (the slot's sequence numbers run
    on across publishers): frames go to whoever the `tracks` event names, loss counts only
    each publisher's own runs (not p-2's numbers in between), a frame cut short by the switch
    is not counted, and a switch watch for p-2 is fulfilled by p-2's first frame."""
    clip = load_clip(clip_dir, "VP8", 10.0, 150_000, size=(320, 240), fps=15)
    receiver = SimpleNamespace(_RTCRtpReceiver__started=False)  # what the tap needs of it
    owners: dict[str, tuple[str, str]] = {}
    watch = SimpleNamespace(at=0.0, first_frame_at=None)
    watches: dict[str, list[Any]] = {"p-2": [watch]}
    probe = StreamProbe(receiver, "3", "video", clip, owners, ClipIndex(clip), watches)  # type: ignore[arg-type]
    seq = 1000

    def send(index: int, *, cut: bool = False) -> None:
        """Clip frame `index` in two packets (`cut`: the second one never comes)."""
        nonlocal seq
        data = clip.video[index][0]
        halves = [data[: len(data) // 2], data[len(data) // 2 :]]
        for part, half in enumerate(halves[:1] if cut else halves):
            packet = RtpPacket(
                payload_type=96,
                sequence_number=seq & 0xFFFF,
                timestamp=index * 6000,
                ssrc=1234,
                marker=part == 1,
                payload=bytes([0x10 if part == 0 else 0x00]) + half,
            )
            packet._data = half  # type: ignore[attr-defined]  # what aiortc depayloads
            probe._on_packet(packet)
            seq += 1

    owners["3"] = ("p-1", "camera")
    for i in range(0, 5):
        send(i)
    send(5, cut=True)  # the slot switches mid-frame
    owners["3"] = ("p-2", "camera")
    for i in range(15, 18):  # from p-2's keyframe on
        send(i)
    owners["3"] = ("p-1", "camera")
    for i in range(30, 32):
        send(i)
    first, second = probe.streams[("p-1", "camera")], probe.streams[("p-2", "camera")]
    assert (first.frames, first.runs, first.packets) == (7, 2, 15)
    assert first.expected_packets == 15  # 11 + 4: p-2's 6 in between are not p-1's loss
    assert (second.frames, second.runs, second.expected_packets) == (3, 1, 6)
    assert probe.incomplete == 1  # the frame cut by the switch
    assert first.identified == 7 and second.identified == 3
    assert watch.first_frame_at is not None and "p-2" not in watches
