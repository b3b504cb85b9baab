"""Recording costs: CPU the live recorder adds to a meeting, and composition speed.

Starts the server in its own process (pinned to CPU 0) and K load bots in theirs (pinned to
CPU 1), all publishing 640x480@30 VP8 + Opus. It measures the server's CPU in alternating
windows without and with a recording running (`off`, `on`, `off`, `on`, …: each recording
is started and stopped over REST, as a host would), so slow drift on a shared machine
affects both sides alike; the figure is the difference of the medians. After the bots
leave it composes the longest recording again (`POST /api/recordings/{id}/compose`) a
few times on the quiet machine and reports seconds of meeting composed per second of
wall time. Windows disturbed by other processes are flagged. Results: docs/performance.md.

    .venv/bin/python -m bench.recording [--bots 4] [--window 12] [--pairs 3] [--compose 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from client.loadtest import procstat
from client.loadtest.accounts import Api, create_bot_accounts
from client.loadtest.cli import default_clip_dir
from client.loadtest.report import build_report
from client.loadtest.runner import LoadTest, Plan
from client.loadtest.server import LocalServer
from rtp.synthetic import load_clip

from .machine import Machine

log = logging.getLogger("bench.recording")
ADMIN_EMAIL = "bench-admin@loadtest.example"
DISTURBED_PERCENT = 20.0  # other processes using more than this much of a core


@dataclass
class Window:
    recording: bool
    seconds: float
    server_cpu: float  # % of one core (server process tree)
    bots_cpu: float
    others_cpu: float  # % of one core used by everything else
    video_fps_min: float | None
    disturbed: bool


class Meter:
    """CPU of the server, the bots and everything else over one window, from /proc."""

    def __init__(self, server: LocalServer, bot_pids: list[int]) -> None:
        self.server, self.bot_pids = server, bot_pids
        self.machine = Machine(os.getpid())  # the server and the bots are our children

    def _bots(self) -> float:
        return sum(procstat.tree_cpu_seconds(pid) for pid in self.bot_pids)

    async def measure(self, seconds: float) -> tuple[float, float, float]:
        before, s0, b0 = self.machine.sample(), self.server.cpu_seconds(), self._bots()
        await asyncio.sleep(seconds)
        after, s1, b1 = self.machine.sample(), self.server.cpu_seconds(), self._bots()
        dt = after[0] - before[0]
        others, _ = self.machine.others(before, after)
        return (s1 - s0) / dt * 100, (b1 - b0) / dt * 100, others


async def wait_state(api: Api, token: str, recording_id: int, states: set[str]) -> dict[str, Any]:
    while True:
        body: dict[str, Any] = await api.call(
            "GET", f"/api/recordings/{recording_id}", "read the recording", token
        )
        if body["state"] in states:
            return body
        await asyncio.sleep(0.25)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="tertulia-bench-recording-"))
    load_clip(args.clip_dir, "VP8")  # encode the clip once, before any bot needs it
    password = secrets.token_urlsafe(18)
    server = LocalServer(data_dir, cpus=() if args.no_pin else (0,))
    server.create_user(ADMIN_EMAIL, "Bench admin", password, admin=True)
    server.start()
    windows: list[Window] = []
    compose_runs: list[dict[str, float]] = []
    try:
        async with Api(server.base_url) as api:
            admin = await api.login(ADMIN_EMAIL, password)
            meeting = await api.call(
                "POST",
                "/api/meetings",
                "create the meeting",
                admin,
                {
                    "title": "recording benchmark",
                    "settings": {"max_participants": args.bots + 1, "enable_recording": True},
                },
            )
            room = meeting["room_id"]
            accounts = await create_bot_accounts(api, admin, args.bots)
            plan = Plan(
                base_url=server.base_url,
                room_id=room,
                tokens=tuple(accounts.tokens),
                clip_dir=args.clip_dir,
                cpus=() if args.no_pin else (1,),
            )
            recording_ids: list[int] = []
            async with LoadTest(plan) as bots:
                joined = await bots.wait_joined(60)
                if not await bots.wait_mesh(60):
                    raise RuntimeError("the bots did not all receive each other")
                await asyncio.sleep(args.warmup)
                meter = Meter(server, bots.pids)
                for _ in range(args.pairs):
                    for recording in (False, True):
                        recording_id = None
                        if recording:
                            started = await api.call(
                                "POST", f"/api/meetings/{room}/recording", "start", admin
                            )
                            recording_id = int(started["recording_id"])
                            recording_ids.append(recording_id)
                            await asyncio.sleep(args.settle)  # files opened, first keyframes
                        report_task = asyncio.ensure_future(bots.window(args.window))
                        server_cpu, bots_cpu, others = await meter.measure(args.window)
                        report = build_report(await report_task, joined)
                        if recording_id is not None:
                            await api.call(
                                "DELETE", f"/api/meetings/{room}/recording", "stop", admin
                            )
                            # composition starts now: wait for it, so it never overlaps
                            await wait_state(api, admin, recording_id, {"ready", "failed"})
                            await asyncio.sleep(args.settle)
                        windows.append(
                            Window(
                                recording,
                                args.window,
                                round(server_cpu, 1),
                                round(bots_cpu, 1),
                                round(others, 1),
                                report["totals"]["video"]["rate_min"],
                                others > DISTURBED_PERCENT,
                            )
                        )
                        log.info("%s", windows[-1])
                await bots.stop()
            await accounts.disable(api)
            compose_runs = await measure_composition(api, admin, recording_ids, args.compose)
    finally:
        server.stop()
    return summarize(args, windows, compose_runs)


async def measure_composition(
    api: Api, token: str, recording_ids: list[int], repeats: int
) -> list[dict[str, float]]:
    """Compose the longest recording again `repeats` times, with nothing else running."""
    details = [
        await api.call("GET", f"/api/recordings/{rid}", "read", token) for rid in recording_ids
    ]
    ready = [d for d in details if d["state"] == "ready"]
    if not ready:
        raise RuntimeError(f"no recording was composed: {[d['state'] for d in details]}")
    longest = max(ready, key=lambda d: d["duration_seconds"])
    runs = []
    for _ in range(repeats):
        t0 = time.monotonic()
        await api.call("POST", f"/api/recordings/{longest['id']}/compose", "compose", token)
        done = await wait_state(api, token, longest["id"], {"ready", "failed"})
        wall = time.monotonic() - t0
        if done["state"] != "ready":
            raise RuntimeError(f"composition failed: {done['failure_reason']}")
        runs.append(
            {
                "meeting_seconds": done["duration_seconds"],
                "wall_seconds": round(wall, 2),
                "speed": round(done["duration_seconds"] / wall, 2),
                "composed_mb": round(done["composed_size_bytes"] / 1e6, 2),
            }
        )
        log.info("composition: %s", runs[-1])
    return runs


def summarize(
    args: argparse.Namespace, windows: list[Window], compose_runs: list[dict[str, float]]
) -> dict[str, Any]:
    def med(recording: bool, attr: str) -> float | None:
        values = [getattr(w, attr) for w in windows if w.recording is recording]
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 1) if values else None

    off, on = med(False, "server_cpu"), med(True, "server_cpu")
    # each `on` window against the `off` window just before it: drift cancels out
    paired = [
        b.server_cpu - a.server_cpu
        for a, b in itertools.pairwise(windows)
        if not a.recording and b.recording
    ]
    return {
        "machine": f"{platform.node()} {procstat.core_count()} cores, {platform.python_version()}",
        "bots": args.bots,
        "forwarded_video_streams": args.bots * (args.bots - 1),
        "recorded_tracks": args.bots * 2,
        "windows": [asdict(w) for w in windows],
        "server_cpu_off": off,
        "server_cpu_on": on,
        "recording_cpu": round(on - off, 1) if on is not None and off is not None else None,
        "recording_cpu_paired": [round(d, 1) for d in paired],
        "recording_cpu_paired_median": round(statistics.median(paired), 1) if paired else None,
        "video_fps_min_off": med(False, "video_fps_min"),
        "video_fps_min_on": med(True, "video_fps_min"),
        "disturbed_windows": sum(w.disturbed for w in windows),
        "composition": compose_runs,
        "composition_speed_median": (
            statistics.median(r["speed"] for r in compose_runs) if compose_runs else None
        ),
    }


def format_summary(result: dict[str, Any]) -> str:
    lines = [
        f"machine: {result['machine']}",
        f"meeting: {result['bots']} bots, 640x480@30 VP8 + Opus each; "
        f"{result['recorded_tracks']} tracks recorded",
        "",
        "window  server CPU  bots CPU  others  video fps (worst)  disturbed",
    ]
    for w in result["windows"]:
        fps = "-" if w["video_fps_min"] is None else f"{w['video_fps_min']:.1f}"
        lines.append(
            f"{'on ' if w['recording'] else 'off'}     {w['server_cpu']:6.1f} %  "
            f"{w['bots_cpu']:6.1f} %  {w['others_cpu']:4.1f} %  {fps:>17}  "
            f"{'yes' if w['disturbed'] else ''}"
        )
    lines += [
        "",
        f"server CPU, median: {result['server_cpu_off']} % of a core without recording, "
        f"{result['server_cpu_on']} % while recording: "
        f"the recorder adds {result['recording_cpu']} % of a core",
        f"each on window minus the off window before it: {result['recording_cpu_paired']} "
        f"(median {result['recording_cpu_paired_median']} % of a core)",
    ]
    for run in result["composition"]:
        lines.append(
            f"composition: {run['meeting_seconds']:.1f} s of meeting in "
            f"{run['wall_seconds']:.1f} s = {run['speed']:.2f}x real time "
            f"({run['composed_mb']} MB MP4)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recording", description=__doc__)
    p.add_argument("--bots", type=int, default=4)
    p.add_argument("--window", type=float, default=12.0, help="seconds per measured window")
    p.add_argument("--pairs", type=int, default=3, help="off/on window pairs")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--settle", type=float, default=2.0, help="pause around start/stop")
    p.add_argument("--compose", type=int, default=2, help="timed re-compositions")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and bots to CPUs")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--clip-dir", type=Path, default=default_clip_dir())
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    result = asyncio.run(run(args))
    sys.stdout.write((json.dumps(result, indent=2) if args.json else format_summary(result)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
