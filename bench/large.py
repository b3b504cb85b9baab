"""Large meetings: one server process, K = 10 … 50 people, each receiving its last N speakers.

Starts the server in its own process (pinned to CPU 0, `TERTULIA_AUDIO_STREAMS` = M) and
the load bots in theirs (pinned to CPU 1). Every bot publishes camera + microphone and
sends `receive` {last_n: N, visible: null} right after joining; one bot at a time speaks
(its microphone's RFC 6464 level goes from 90 to 20), the next one every few seconds, so
the server's dominant speaker, and with it what every bot receives, keeps changing. Per K
and clip it prints: server CPU (per participant, per forwarded stream, per forwarded
packet), the server's forwarded streams, received fps per selected stream (mean and
minimum across bots), speaker-switch latency, join -> first frame, the bots' CPU and
whether they saturated; then CPU per participant across K (flat at fixed last_n?) and the
targets. Method and figures: docs/loadtest.md ("Large meetings: bench/large.py").

    .venv/bin/python -m bench.large [--ks 10,20,30,50] [--light-ks 10,20,30,50] [--last-n 9]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from client.loadtest import procstat
from client.loadtest.accounts import Api, create_bot_accounts
from client.loadtest.cli import ClipSpec, default_clip_dir
from client.loadtest.report import build_report, switch_figures
from client.loadtest.runner import Joined, LoadTest, Plan
from client.loadtest.server import LocalServer
from client.loadtest.speaking import LOUD_LEVEL, QUIET_LEVEL, Speaking, rotation
from client.loadtest.stats import median, percentile

from .capacity import ADMIN_EMAIL, PASS_RATIO, idle_cpu, machine_info, media_stats
from .machine import Machine

log = logging.getLogger("bench.large")
SWITCH_TARGET_S = 0.5  # speaker switch, p95


@dataclass(frozen=True)
class Options:
    ks: tuple[int, ...]
    light_ks: tuple[int, ...]
    clip: ClipSpec
    light_clip: ClipSpec
    last_n: int
    audio_streams: int
    speak_every: float
    window: float
    repeats: int
    warmup: float
    pin: bool
    server_cpu: int
    bots_cpu: int
    processes: int
    quiet_threshold: float  # % of one core other processes may use
    quiet_wait: float
    stop_below: float
    mesh_timeout: float
    data_dir: Path | None
    clip_dir: Path
    server_source: Path | None = None
    server_env: tuple[tuple[str, str], ...] = ()


@dataclass
class Window:
    started_at: float
    seconds: float
    server_cpu: float  # % of one core
    server_rss_mb: float
    bots_cpu: float
    bots_peak: float
    others_cpu: float
    core_busy: dict[str, float]
    report: dict[str, Any]
    disturbed: bool
    forwarded_packets: int | None = None  # the server's counters (media-stats)
    retransmissions: int | None = None
    forwarded_streams: float | None = None  # mean of the readings before and after


@dataclass
class Point:
    """One K with one clip."""

    clip_name: str
    clip: ClipSpec
    k: int
    last_n: int
    windows: list[Window] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    finals: list[dict[str, Any]] = field(default_factory=list)
    joined: list[Joined] = field(default_factory=list)
    first_frame: dict[str, Any] = field(default_factory=dict)
    quiet_wait_s: float = 0.0
    join_peak: float = 0.0
    mesh_complete: bool = True
    bots_cores: float = 1.0
    refused: list[str] = field(default_factory=list)
    error: str | None = None

    def used(self) -> list[Window]:
        calm = [w for w in self.windows if not w.disturbed]
        return calm or self.windows

    def med(self, pick: Any) -> float | None:
        return median([v for v in (pick(w) for w in self.used()) if v is not None])

    def figures(self) -> dict[str, Any]:
        used = self.used()
        server = self.med(lambda w: w.server_cpu)
        forwarded = self.med(lambda w: w.forwarded_streams)
        per_packet = self.med(
            lambda w: (
                w.server_cpu / 100 * w.seconds / w.forwarded_packets * 1e6
                if w.forwarded_packets
                else None
            )
        )
        spans = [(w.started_at, w.started_at + w.seconds) for w in used]
        switches = switch_figures(self.turns, self.finals, spans) if spans else None

        def sel(*path: str) -> Any:
            def pick(w: Window) -> Any:
                value: Any = w.report
                for key in path:
                    value = value[key]
                return value

            return pick

        bots = self.med(lambda w: w.bots_cpu)
        capacity = 100 * self.bots_cores
        peak = max((w.bots_peak for w in self.windows), default=0.0)
        flags = []
        if self.error:
            flags.append("error")
        if self.refused:
            flags.append(f"receive refused ({', '.join(self.refused)})")
        if self.windows and all(w.disturbed for w in self.windows):
            flags.append("disturbed")
        elif any(w.disturbed for w in self.windows):
            flags.append(f"{sum(w.disturbed for w in self.windows)} window(s) disturbed, retried")
        saturated = (bots is not None and bots >= 0.9 * capacity) or peak >= 0.95 * capacity
        if saturated:
            flags.append(f"bots saturated (peak {peak:.0f}%)")
        elif self.join_peak >= 0.95 * capacity:
            flags.append(f"bots saturated while joining (peak {self.join_peak:.0f}%)")
        if not self.mesh_complete:
            flags.append("not every bot had its last-N video before warming up")
        if server is not None and server >= 95:
            flags.append("server saturated")
        ratio_min = self.med(sel("selected", "video_ratio", "min"))
        switch_p95 = None  # a turn some bot never got the speaker's video after: infinitely late
        if switches:
            late = [
                t["switch_s"] if t["switch_s"] is not None else math.inf
                for t in switches["per_turn"]
            ]
            switch_p95 = percentile(late, 95)
        return {
            "clip": self.clip_name,
            "clip_format": str(self.clip),
            "k": self.k,
            "last_n": self.last_n,
            "windows": len(self.windows),
            "server_cpu_percent": _r(server, 1),
            "server_cpu_per_participant_percent": _r(server / self.k if server else None, 2),
            "server_rss_mb": _r(self.med(lambda w: w.server_rss_mb), 0),
            "forwarded_streams": _r(forwarded, 1),
            "server_cpu_per_forwarded_stream_percent": _r(
                server / forwarded if server and forwarded else None, 3
            ),
            "forwarded_packets_per_s": _r(
                self.med(
                    lambda w: w.forwarded_packets / w.seconds if w.forwarded_packets else None
                ),
                0,
            ),
            "server_cpu_per_forwarded_packet_us": _r(per_packet, 1),
            "retransmissions_per_s": _r(
                self.med(
                    lambda w: (
                        w.retransmissions / w.seconds if w.retransmissions is not None else None
                    )
                ),
                1,
            ),
            "selected_video_streams_per_bot": _r(
                self.med(sel("selected", "video_streams_per_bot", "mean")), 2
            ),
            "selected_video_streams_per_bot_min": _r(
                self.med(sel("selected", "video_streams_per_bot", "min")), 2
            ),
            "video_fps_per_selected_stream_mean": _r(
                self.med(sel("selected", "video_fps", "mean")), 2
            ),
            "video_fps_per_selected_stream_min": _r(
                self.med(sel("selected", "video_fps", "min")), 2
            ),
            "video_ratio_min": _r(ratio_min, 3),
            "audio_streams_per_bot": _r(
                self.med(sel("selected", "audio_streams_per_bot", "mean")), 2
            ),
            "audio_pps_per_selected_stream": _r(self.med(sel("selected", "audio_pps", "mean")), 1),
            "slot_remaps_per_bot_per_s": _r(self.med(sel("selected", "remaps_per_bot_per_s")), 3),
            "video_loss": _r(self.med(sel("totals", "video", "loss")), 4),
            "latency_p50_ms": _r(self.med(sel("totals", "latency_ms", "p50")), 1),
            "latency_p95_ms": _r(self.med(sel("totals", "latency_ms", "p95")), 1),
            "identical_fraction": _r(self.med(sel("totals", "video", "identical_fraction")), 3),
            "speaker_switch": switches,
            "join_to_first_frame_s": self.first_frame,
            "bots_cpu_percent": _r(bots, 1),
            "bots_cpu_per_bot_percent": _r(bots / self.k if bots else None, 2),
            "bots_cpu_peak_percent": _r(peak, 1),
            "bots_cpu_join_peak_percent": _r(self.join_peak, 1),
            "bots_event_loop_lag_p95_ms": _r(
                self.med(sel("bots_cpu", "event_loop_lag_ms", "p95")), 1
            ),
            "send_lag_p95_ms": _r(self.med(sel("sent", "send_lag_ms", "p95")), 1),
            "others_cpu_percent": _r(self.med(lambda w: w.others_cpu), 1),
            "quiet_wait_s": round(self.quiet_wait_s, 1),
            # worst bot >= 90 %, switch p95 (missed turns as infinitely late) <= 0.5 s, with
            # bots that kept up (else the figures describe them more than the server)
            "meets_targets": bool(
                ratio_min is not None
                and ratio_min >= PASS_RATIO
                and switch_p95 is not None
                and switch_p95 <= SWITCH_TARGET_S
                and not saturated
                and not self.error
            ),
            "per_window": [
                {
                    "started_at": round(w.started_at, 3),
                    "seconds": round(w.seconds, 2),
                    "server_cpu_percent": round(w.server_cpu, 1),
                    "bots_cpu_percent": round(w.bots_cpu, 1),
                    "bots_cpu_peak_percent": round(w.bots_peak, 1),
                    "others_cpu_percent": round(w.others_cpu, 1),
                    "core_busy_percent": w.core_busy,
                    "forwarded_streams": w.forwarded_streams,
                    "video_fps_per_selected_stream": w.report["selected"]["video_fps"],
                    "disturbed": w.disturbed,
                }
                for w in self.windows
            ],
            "flags": flags,
            "error": self.error,
        }


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------------ one point


async def measure_point(
    point: Point, server: LocalServer, api: Api, admin: str, tokens: list[str], opts: Options
) -> None:
    k, clip = point.k, point.clip
    point.bots_cores = min(opts.processes, len(os.sched_getaffinity(0)))
    machine = Machine(os.getpid())  # the server and the bot processes are its children
    point.quiet_wait_s = await machine.wait_quiet(opts.quiet_threshold, opts.quiet_wait)
    room = await api.create_meeting(admin, f"large K={k} {point.clip_name}", k)
    plan = Plan(
        base_url=server.base_url,
        room_id=room,
        tokens=tuple(tokens[:k]),
        processes=opts.processes,
        clip_dir=opts.clip_dir,
        clip_size=(clip.width, clip.height),
        clip_fps=clip.fps,
        clip_bitrate=clip.bitrate,
        last_n=point.last_n,
        audio_level=QUIET_LEVEL,
    )
    try:
        async with LoadTest(plan) as test:
            point.joined = await test.wait_joined(timeout=30 + k * plan.join_interval)
            point.refused = sorted({j.receive_error for j in point.joined if j.receive_error})
            if not await test.wait_mesh(opts.mesh_timeout, point.last_n):
                log.warning(
                    "K=%d: not every bot has its last-N video after %.0f s", k, opts.mesh_timeout
                )
                point.mesh_complete = False
            speaking = Speaking(test, loud=LOUD_LEVEL, quiet=QUIET_LEVEL)
            bots = [j.bot for j in point.joined if j.error is None]
            longest = opts.warmup + 2 * opts.repeats * (opts.window + 10) + 60
            turns = rotation(bots, opts.speak_every, longest)
            player = asyncio.create_task(speaking.play(turns, time.time()))
            try:
                await asyncio.sleep(opts.warmup)
                point.join_peak = test.reset_peak()
                attempts = 0
                while len([w for w in point.windows if not w.disturbed]) < opts.repeats:
                    if attempts >= 2 * opts.repeats:
                        break
                    attempts += 1
                    window = await _window(test, server, machine, opts, point, api, admin)
                    point.windows.append(window)
                    selected = window.report["selected"]
                    log.info(
                        "%s K=%d window %d: server %.0f%%, bots %.0f%%, others %.0f%%, "
                        "%.1f fps per selected stream (worst bot %.1f)%s",
                        point.clip_name,
                        k,
                        attempts,
                        window.server_cpu,
                        window.bots_cpu,
                        window.others_cpu,
                        selected["video_fps"]["mean"] or 0,
                        selected["video_fps"]["min"] or 0,
                        " DISTURBED" if window.disturbed else "",
                    )
            finally:
                player.cancel()
                await asyncio.gather(player, return_exceptions=True)
            await speaking.settle()
            point.turns = speaking.records
            point.finals = await test.stop()
            final = build_report(
                [], point.joined, point.finals, last_n=point.last_n, turns=point.turns
            )
            point.first_frame = final["totals"]["join_to_first_frame_s"]
    except Exception as exc:  # one point failing must not lose the rest of the sweep
        log.error("%s K=%d failed: %s", point.clip_name, k, exc)
        point.error = str(exc)
    finally:
        try:
            await api.end_meeting(admin, room)
        except Exception as exc:
            log.warning("could not end the meeting: %s", exc)


async def _window(
    test: LoadTest,
    server: LocalServer,
    machine: Machine,
    opts: Options,
    point: Point,
    api: Api,
    admin: str,
) -> Window:
    test.reset_peak()
    stats0 = await media_stats(api, admin)
    before, server0 = machine.sample(), server.cpu_seconds()
    raw = await test.window(opts.window)
    after, server1 = machine.sample(), server.cpu_seconds()
    stats1 = await media_stats(api, admin)
    elapsed = after[0] - before[0]
    report = build_report(raw, point.joined, last_n=point.last_n)
    others, cores = machine.others(before, after)
    forwarded = None
    if stats0 is not None and stats1 is not None:
        forwarded = (stats0["forwarded_streams"] + stats1["forwarded_streams"]) / 2
    return Window(
        started_at=report["window_started_at"] or time.time() - elapsed,
        seconds=elapsed,
        server_cpu=(server1 - server0) / elapsed * 100,
        server_rss_mb=server.rss_bytes() / 2**20,
        bots_cpu=report["bots_cpu"]["percent_of_one_core"] or 0.0,
        bots_peak=test.reset_peak(),
        others_cpu=others,
        core_busy=cores,
        report=report,
        disturbed=others > opts.quiet_threshold,
        forwarded_packets=_delta(stats0, stats1, "packets_forwarded"),
        retransmissions=_delta(stats0, stats1, "retransmissions"),
        forwarded_streams=forwarded,
    )


def _delta(before: dict[str, int] | None, after: dict[str, int] | None, key: str) -> int | None:
    if before is None or after is None:
        return None
    return after[key] - before[key]


# ------------------------------------------------------------------------ the sweep


async def sweep(opts: Options, root: Path) -> tuple[list[Point], float]:
    env = {"TERTULIA_AUDIO_STREAMS": str(opts.audio_streams), **dict(opts.server_env)}
    server = LocalServer(
        root / "server",
        cpus=(opts.server_cpu,) if opts.pin else (),
        env=env,
        source=opts.server_source,
    )
    password = secrets.token_urlsafe(16)
    server.create_user(ADMIN_EMAIL, "Bench admin", password, admin=True)
    await asyncio.to_thread(server.start)
    points: list[Point] = []
    idle = 0.0
    try:
        async with Api(server.base_url) as api:
            admin = await api.login(ADMIN_EMAIL, password)
            accounts = await create_bot_accounts(api, admin, max((*opts.ks, *opts.light_ks)))
            idle = await idle_cpu(server)
            log.info("idle server CPU %.1f%% of a core", idle)
            plan = [("main", opts.clip, opts.ks), ("light", opts.light_clip, opts.light_ks)]
            for name, clip, ks in plan:
                for k in ks:
                    log.info("%s (%s): K=%d", name, clip, k)
                    point = Point(name, clip, k, opts.last_n)
                    await measure_point(point, server, api, admin, accounts.tokens, opts)
                    points.append(point)
                    figures = point.figures()
                    ratio = figures["video_ratio_min"]
                    if point.error or (ratio is not None and ratio < opts.stop_below):
                        log.warning(
                            "%s: stopping at K=%d (worst bot at %s of the sent rate)",
                            name,
                            k,
                            "-" if ratio is None else f"{ratio:.0%}",
                        )
                        break
                    saturated = any(f.startswith("bots saturated (") for f in figures["flags"])
                    if name == "main" and saturated:
                        log.warning(
                            "main clip: stopping at K=%d, the bots are saturated: a larger K "
                            "would measure them, not the server (the light clip goes on)",
                            k,
                        )
                        break
    finally:
        await asyncio.to_thread(server.stop)
    return points, idle


# ------------------------------------------------------------------------ output


def _f(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'clip':<12}{'K':>3} {'srv CPU%':>8} {'%/person':>8} {'fwd str':>7} {'%/stream':>8} "
        f"{'us/pkt':>6} {'fps mean':>8} {'fps min':>7} {'worst':>6} {'audio':>5} "
        f"{'sw p50 s':>8} {'sw p95 s':>8} {'remap95':>7} {'first s':>7} {'bots%':>6}  flags"
    )
    lines = [header, "-" * len(header)]
    for f in rows:
        switch = (f["speaker_switch"] or {}).get("switch_s", {})
        remapped = (f["speaker_switch"] or {}).get("remapped_subscriber_s", {})
        first = f["join_to_first_frame_s"] or {}
        ratio = f["video_ratio_min"]
        lines.append(
            f"{f['clip_format']:<12}{f['k']:>3} {_f(f['server_cpu_percent']):>8} "
            f"{_f(f['server_cpu_per_participant_percent'], '.2f'):>8} "
            f"{_f(f['forwarded_streams'], '.0f'):>7} "
            f"{_f(f['server_cpu_per_forwarded_stream_percent'], '.3f'):>8} "
            f"{_f(f['server_cpu_per_forwarded_packet_us'], '.0f'):>6} "
            f"{_f(f['video_fps_per_selected_stream_mean']):>8} "
            f"{_f(f['video_fps_per_selected_stream_min']):>7} "
            f"{_f(None if ratio is None else ratio * 100, '.0f'):>5}% "
            f"{_f(f['audio_streams_per_bot']):>5} "
            f"{_f(switch.get('p50'), '.3f'):>8} {_f(switch.get('p95'), '.3f'):>8} "
            f"{_f(remapped.get('p95'), '.3f'):>7} "
            f"{_f(first.get('median'), '.2f'):>7} {_f(f['bots_cpu_percent']):>6}  "
            f"{', '.join(f['flags'])}"
        )
    return "\n".join(lines)


def summary(result: dict[str, Any]) -> str:
    rows = result["points"]
    settings = result["settings"]
    lines = [
        f"last_n {settings['last_n']}, M = {settings['audio_streams']} audio streams, a new "
        f"speaker every {settings['speak_every_s']:g} s; {settings['window_s']:g} s windows, "
        f"{settings['repeats']} per point (medians)",
        "",
        table(rows),
        "",
        "fwd str: the server's forwarded streams (media-stats, audio + video slots carrying "
        "someone); fps: received per selected stream, mean over bots and the worst bot; "
        "worst: the worst bot's frames / frames sent while selected; audio: microphones per "
        "bot; sw: speaker switch until every other bot had the speaker's video (about one "
        "frame when everyone already receives everyone: K - 1 <= last_n); remap95: p95 per "
        "bot that had to get the speaker on a slot first",
    ]
    for clip in ("main", "light"):
        mine = [r for r in rows if r["clip"] == clip and r["server_cpu_per_participant_percent"]]
        if not mine:
            continue
        per = [r["server_cpu_per_participant_percent"] for r in mine]
        lines.append(
            f"server CPU per participant, {mine[0]['clip_format']}: "
            + ", ".join(f"K={r['k']} {r['server_cpu_per_participant_percent']:.2f}%" for r in mine)
            + (
                f" (largest / smallest {max(per) / min(per):.2f}: "
                + ("flat" if max(per) / min(per) <= 1.25 else "NOT flat")
                + " at fixed last_n)"
                if len(per) > 1
                else ""
            )
        )
    per_bot = [r for r in rows if r["bots_cpu_per_bot_percent"]]
    if per_bot:
        lines.append(
            "bots' CPU per bot (the load generator's own cost; one core holds about 100 / that "
            "many): "
            + ", ".join(
                f"K={r['k']} {r['clip_format']} {r['bots_cpu_per_bot_percent']:.2f}%"
                for r in per_bot
            )
        )
    for r in rows:
        switch = r["speaker_switch"] or {}
        s = switch.get("switch_s", {})
        lines.append(
            f"K={r['k']} {r['clip_format']}: worst bot "
            f"{_f(None if r['video_ratio_min'] is None else r['video_ratio_min'] * 100, '.0f')}"
            f"% of the sent rate (target >= {PASS_RATIO:.0%}), speaker switch p95 "
            f"{_f(s.get('p95'), '.3f')} s over {switch.get('turns', 0)} turns, "
            f"{switch.get('missed_turns', 0)} missed (target <= {SWITCH_TARGET_S} s): "
            + ("meets the targets" if r["meets_targets"] else "does not meet the targets")
            + (f" [{', '.join(r['flags'])}]" if r["flags"] else "")
        )
    m = result["machine"]
    lines.append("")
    lines.append(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, aiortc {m['aiortc']}; server on CPU {m['server_cpu']}, "
        f"bots on CPU {m['bots_cpu']}; load average at start {m['load_average_at_start']}; "
        f"idle server {result['idle_server_cpu_percent']:.1f}% of a core"
    )
    lines.append(f"command: {result['command']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ main


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Options]:
    p = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__.split("\n")[0])
    p.add_argument(
        "--ks", default="10,20,30,50", help="K with the main clip (stops once the bots saturate)"
    )
    p.add_argument("--clip", default="640x480@30", help="main clip, WxH@FPS (default 640x480@30)")
    p.add_argument("--light-ks", default="10,20,30,50", help="K with the light clip ('' skips)")
    p.add_argument("--light-clip", default="320x240@15", help="light clip (default 320x240@15)")
    p.add_argument("--last-n", type=int, default=9, help="what every bot asks for (default 9)")
    p.add_argument(
        "--audio-streams",
        type=int,
        default=3,
        help="the server's M, TERTULIA_AUDIO_STREAMS (default 3)",
    )
    p.add_argument("--speak-every", type=float, default=3.0, help="seconds per speaker (3)")
    p.add_argument("--window", type=float, default=15.0, help="seconds per measured window")
    p.add_argument("--repeats", type=int, default=3, help="undisturbed windows per point")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before the first window")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and bots to CPUs")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--bots-cpu", type=int, default=1)
    p.add_argument("--processes", type=int, default=1, help="bot processes")
    p.add_argument(
        "--quiet-threshold",
        type=float,
        default=20.0,
        help="%% of one core other processes may use before a window is disturbed",
    )
    p.add_argument("--quiet-wait", type=float, default=120.0, help="longest wait for quiet (s)")
    p.add_argument(
        "--stop-below",
        type=float,
        default=0.5,
        help="stop a clip's sweep after a K whose worst bot got less than this share of the frames",
    )
    p.add_argument(
        "--mesh-timeout",
        type=float,
        default=60.0,
        help="longest wait for every bot to receive its last-N video (s)",
    )
    p.add_argument("--data-dir", type=Path, help="server data (default: a temporary directory)")
    p.add_argument("--server-source", type=Path, help="run the server from this checkout")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the server (repeatable)",
    )
    p.add_argument("--clip-dir", type=Path, help="cache of the encoded clips")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--json-out", type=Path, help="also write the JSON results to this file")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if not 0 <= args.last_n <= 25:
        p.error("--last-n must be between 0 and 25")
    if args.speak_every <= 0:
        p.error("--speak-every must be positive: the switches are what this measures")
    server_env = []
    for item in args.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("TERTULIA_"):
            p.error(f"--server-env {item!r}: expected TERTULIA_NAME=VALUE")
        server_env.append((name, value))
    try:
        clip, light = ClipSpec.parse(args.clip), ClipSpec.parse(args.light_clip)
    except ValueError as exc:
        p.error(str(exc))
    opts = Options(
        ks=_ints(args.ks),
        light_ks=_ints(args.light_ks),
        clip=clip,
        light_clip=light,
        last_n=args.last_n,
        audio_streams=args.audio_streams,
        speak_every=args.speak_every,
        window=args.window,
        repeats=max(1, args.repeats),
        warmup=args.warmup,
        pin=not args.no_pin and procstat.core_count() >= 2,
        server_cpu=args.server_cpu,
        bots_cpu=args.bots_cpu,
        processes=args.processes,
        quiet_threshold=args.quiet_threshold,
        quiet_wait=args.quiet_wait,
        stop_below=args.stop_below,
        mesh_timeout=args.mesh_timeout,
        data_dir=args.data_dir,
        clip_dir=args.clip_dir or default_clip_dir(),
        server_source=args.server_source.resolve() if args.server_source else None,
        server_env=tuple(server_env),
    )
    return args, opts


async def run(opts: Options, command: str) -> dict[str, Any]:
    if opts.pin:
        os.sched_setaffinity(0, {opts.bots_cpu})  # the bot processes inherit it
    for clip in {opts.clip, opts.light_clip}:
        await asyncio.to_thread(clip.load, opts.clip_dir, True)
    info = machine_info(opts)
    with tempfile.TemporaryDirectory(prefix="tertulia-large-") as tmp:
        points, idle = await sweep(opts, opts.data_dir or Path(tmp))
    return {
        "machine": info,
        "command": command,
        "settings": {
            "last_n": opts.last_n,
            "audio_streams": opts.audio_streams,
            "speak_every_s": opts.speak_every,
            "loud_level": LOUD_LEVEL,
            "quiet_level": QUIET_LEVEL,
            "window_s": opts.window,
            "repeats": opts.repeats,
            "warmup_s": opts.warmup,
            "quiet_threshold_percent": opts.quiet_threshold,
            "bot_processes": opts.processes,
            "pinned": opts.pin,
            "clips": {"main": str(opts.clip), "light": str(opts.light_clip)},
            "bitrates": {"main": opts.clip.bitrate, "light": opts.light_clip.bitrate},
        },
        "idle_server_cpu_percent": round(idle, 2),
        "points": [point.figures() for point in points],
    }


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args, opts = parse(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("bench.large").setLevel(logging.INFO)
    command = shlex.join([Path(sys.executable).name, "-m", "bench.large", *sys.argv[1:]])
    if argv is not None:
        command = shlex.join(["python", "-m", "bench.large", *argv])
    result = asyncio.run(run(opts, command))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        out.write(summary(result) + "\n")
    points = result["points"]
    return 0 if points and not any(p["error"] for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
