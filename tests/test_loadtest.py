"""Smoke tests of the load bots and the capacity benchmark, against the real server.

No timing is asserted: these runs are seconds long on a shared machine. They prove the
tools still work end to end (accounts, joins, media both ways, the report's shape).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.capacity import parse
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


def test_capacity_bench_server_options(tmp_path: Path) -> None:
    _, opts = parse(
        ["--server-source", str(tmp_path), "--server-env", "TERTULIA_EVENT_LOOP=asyncio"]
    )
    assert opts.server_source == tmp_path.resolve()
    assert opts.server_env == (("TERTULIA_EVENT_LOOP", "asyncio"),)
    with pytest.raises(SystemExit):
        parse(["--server-env", "EVENT_LOOP=asyncio"])  # not a TERTULIA_ setting
