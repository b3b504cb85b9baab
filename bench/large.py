"""Large meetings: one server process, K = 10 … 50 people, each receiving its last N speakers.

Starts the server in its own process (pinned to CPU 0, `TERTULIA_AUDIO_STREAMS` = M) and
the load bots in theirs (pinned to CPU 1). Every bot publishes camera + microphone and
sends `receive` {last_n: N, visible: null} right after joining; one bot at a time speaks
(its microphone's RFC 6464 level goes from 90 to 20), the next one every few seconds, so
the server's dominant speaker, and with it what every bot receives, keeps changing. Per K
and clip it prints: server CPU (per participant, per forwarded stream, per forwarded
packet), the server's forwarded streams, received fps per selected stream (mean and
minimum across bots), speaker-switch latency, join -> first frame, the bots' CPU and
whether they saturated; then CPU per participant across K (flat or falling at fixed last_n?) and the
targets. Method and figures: docs/loadtest.md ("Large meetings: bench/large.py").

    .venv/bin/python -m bench.large [--ks 10,20,30,50] [--light-ks 10,20,30,50] [--last-n 9]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from client.loadtest.cli import ClipSpec
from client.loadtest.report import build_report, switch_figures
from client.loadtest.runner import Joined, LoadTest, Plan
from client.loadtest.speaking import LOUD_LEVEL, QUIET_LEVEL, Speaking, rotation
from client.loadtest.stats import percentile

from .harness import (
    PASS_RATIO,
    Measured,
    Served,
    SweepOptions,
    Window,
    add_measuring_options,
    add_server_options,
    cell,
    idle_cpu,
    ints,
    machine_line,
    measure_window,
    measuring_settings,
    prepare,
    rounded,
    run_main,
    serving,
    sweep_fields,
)

log = logging.getLogger("bench.large")
SWITCH_TARGET_S = 0.5  # speaker switch, p95


@dataclass(frozen=True)
class Options(SweepOptions):
    ks: tuple[int, ...]
    light_ks: tuple[int, ...]
    clip: ClipSpec
    light_clip: ClipSpec
    last_n: int
    audio_streams: int
    speak_every: float
    mesh_timeout: float


@dataclass
class Point(Measured):
    """One K with one clip."""

    clip_name: str
    clip: ClipSpec
    k: int
    last_n: int
    turns: list[dict[str, Any]] = field(default_factory=list)
    finals: list[dict[str, Any]] = field(default_factory=list)
    joined: list[Joined] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        used = self.used()
        server = self.med(lambda w: w.server_cpu)
        forwarded = self.med(lambda w: w.forwarded_streams)
        spans = [(w.started_at, w.started_at + w.seconds) for w in used]
        switches = switch_figures(self.turns, self.finals, spans) if spans else None

        bots, peak, saturated = self.bots_load()
        notes = [f"receive refused ({', '.join(self.refused)})"] if self.refused else []
        flags = self.flags(server, "not every bot had its last-N video before warming up", *notes)
        ratio_min = self.reported("selected", "video_ratio", "min")
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
            "server_cpu_percent": rounded(server, 1),
            "server_cpu_per_participant_percent": rounded(server / self.k if server else None, 2),
            "server_rss_mb": rounded(self.med(lambda w: w.server_rss_mb), 0),
            "forwarded_streams": rounded(forwarded, 1),
            "server_cpu_per_forwarded_stream_percent": rounded(
                server / forwarded if server and forwarded else None, 3
            ),
            "forwarded_packets_per_s": rounded(self.med(lambda w: w.forwarded_packets_per_s), 0),
            "server_cpu_per_forwarded_packet_us": rounded(
                self.med(lambda w: w.server_us_per_forwarded_packet), 1
            ),
            "retransmissions_per_s": rounded(self.med(lambda w: w.retransmissions_per_s), 1),
            "selected_video_streams_per_bot": rounded(
                self.reported("selected", "video_streams_per_bot", "mean"), 2
            ),
            "selected_video_streams_per_bot_min": rounded(
                self.reported("selected", "video_streams_per_bot", "min"), 2
            ),
            "video_fps_per_selected_stream_mean": rounded(
                self.reported("selected", "video_fps", "mean"), 2
            ),
            "video_fps_per_selected_stream_min": rounded(
                self.reported("selected", "video_fps", "min"), 2
            ),
            "video_ratio_min": rounded(ratio_min, 3),
            "audio_streams_per_bot": rounded(
                self.reported("selected", "audio_streams_per_bot", "mean"), 2
            ),
            "audio_pps_per_selected_stream": rounded(
                self.reported("selected", "audio_pps", "mean"), 1
            ),
            "slot_remaps_per_bot_per_s": rounded(
                self.reported("selected", "remaps_per_bot_per_s"), 3
            ),
            "video_loss": rounded(self.reported("totals", "video", "loss"), 4),
            "latency_p50_ms": rounded(self.reported("totals", "latency_ms", "p50"), 1),
            "latency_p95_ms": rounded(self.reported("totals", "latency_ms", "p95"), 1),
            "identical_fraction": rounded(
                self.reported("totals", "video", "identical_fraction"), 3
            ),
            "speaker_switch": switches,
            "join_to_first_frame_s": self.first_frame,
            "bots_cpu_percent": rounded(bots, 1),
            "bots_cpu_per_bot_percent": rounded(bots / self.k if bots else None, 2),
            "bots_cpu_peak_percent": rounded(peak, 1),
            "bots_cpu_join_peak_percent": rounded(self.join_peak, 1),
            "bots_event_loop_lag_p95_ms": rounded(
                self.reported("bots_cpu", "event_loop_lag_ms", "p95"), 1
            ),
            "send_lag_p95_ms": rounded(self.reported("sent", "send_lag_ms", "p95"), 1),
            "others_cpu_percent": rounded(self.med(lambda w: w.others_cpu), 1),
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
                    **w.cpu_figures(),
                    "forwarded_streams": w.forwarded_streams,
                    "video_fps_per_selected_stream": w.report["selected"]["video_fps"],
                    "disturbed": w.disturbed,
                }
                for w in self.windows
            ],
            "flags": flags,
            "error": self.error,
        }


# ------------------------------------------------------------------------ one point


async def measure_point(point: Point, served: Served, opts: Options) -> None:
    k, clip = point.k, point.clip
    title, label = f"large K={k} {point.clip_name}", f"{point.clip_name} K={k}"
    async with point.meeting(served, opts, title, k, label, log) as (room, machine):
        plan = Plan(
            base_url=served.server.base_url,
            room_id=room,
            tokens=tuple(served.tokens[:k]),
            processes=opts.processes,
            clip_dir=opts.clip_dir,
            clip_size=(clip.width, clip.height),
            clip_fps=clip.fps,
            clip_bitrate=clip.bitrate,
            last_n=point.last_n,
            audio_level=QUIET_LEVEL,
        )
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

            async def take(attempt: int) -> Window:
                window = await measure_window(
                    test,
                    served,
                    machine,
                    opts,
                    lambda raw: build_report(raw, point.joined, last_n=point.last_n),
                )
                selected = window.report["selected"]
                log.info(
                    "%s K=%d window %d: server %.0f%%, bots %.0f%%, others %.0f%%, "
                    "%.1f fps per selected stream (worst bot %.1f)%s",
                    point.clip_name,
                    k,
                    attempt,
                    window.server_cpu,
                    window.bots_cpu,
                    window.others_cpu,
                    selected["video_fps"]["mean"] or 0,
                    selected["video_fps"]["min"] or 0,
                    " DISTURBED" if window.disturbed else "",
                )
                return window

            try:
                await asyncio.sleep(opts.warmup)
                point.join_peak = test.reset_peak()
                await point.take_windows(opts.repeats, take)
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


# ------------------------------------------------------------------------ the sweep


async def sweep(opts: Options, root: Path) -> tuple[list[Point], float]:
    env = {"TERTULIA_AUDIO_STREAMS": str(opts.audio_streams), **dict(opts.server_env)}
    points: list[Point] = []
    async with serving(opts, root / "server", env, max((*opts.ks, *opts.light_ks))) as served:
        idle = await idle_cpu(served.server)
        log.info("idle server CPU %.1f%% of a core", idle)
        plan = [("main", opts.clip, opts.ks), ("light", opts.light_clip, opts.light_ks)]
        for name, clip, ks in plan:
            for k in ks:
                log.info("%s (%s): K=%d", name, clip, k)
                point = Point(name, clip, k, opts.last_n)
                await measure_point(point, served, opts)
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
    return points, idle


# ------------------------------------------------------------------------ output


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
            f"{f['clip_format']:<12}{f['k']:>3} {cell(f['server_cpu_percent']):>8} "
            f"{cell(f['server_cpu_per_participant_percent'], '.2f'):>8} "
            f"{cell(f['forwarded_streams'], '.0f'):>7} "
            f"{cell(f['server_cpu_per_forwarded_stream_percent'], '.3f'):>8} "
            f"{cell(f['server_cpu_per_forwarded_packet_us'], '.0f'):>6} "
            f"{cell(f['video_fps_per_selected_stream_mean']):>8} "
            f"{cell(f['video_fps_per_selected_stream_min']):>7} "
            f"{cell(None if ratio is None else ratio * 100, '.0f'):>5}% "
            f"{cell(f['audio_streams_per_bot']):>5} "
            f"{cell(switch.get('p50'), '.3f'):>8} {cell(switch.get('p95'), '.3f'):>8} "
            f"{cell(remapped.get('p95'), '.3f'):>7} "
            f"{cell(first.get('median'), '.2f'):>7} {cell(f['bots_cpu_percent']):>6}  "
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
                f" (K={mine[-1]['k']} / K={mine[0]['k']}: {per[-1] / per[0]:.2f}: "
                + (
                    "the server's CPU grows at most linearly in K"
                    if per[-1] / per[0] <= 1.25  # per participant: flat or falling
                    else "the server's CPU grows faster than K"
                )
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
            f"{cell(None if r['video_ratio_min'] is None else r['video_ratio_min'] * 100, '.0f')}"
            f"% of the sent rate (target >= {PASS_RATIO:.0%}), speaker switch p95 "
            f"{cell(s.get('p95'), '.3f')} s over {switch.get('turns', 0)} turns, "
            f"{switch.get('missed_turns', 0)} missed (target <= {SWITCH_TARGET_S} s): "
            + ("meets the targets" if r["meets_targets"] else "does not meet the targets")
            + (f" [{', '.join(r['flags'])}]" if r["flags"] else "")
        )
    lines.append("")
    lines.append(
        f"{machine_line(result['machine'])}; "
        f"idle server {result['idle_server_cpu_percent']:.1f}% of a core"
    )
    lines.append(f"command: {result['command']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ main


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
    add_measuring_options(
        p,
        repeats="undisturbed windows per point",
        quiet_threshold="%% of one core other processes may use before a window is disturbed",
        stop_below="stop a clip's sweep after a K whose worst bot got less than this share of "
        "the frames",
    )
    p.add_argument(
        "--mesh-timeout",
        type=float,
        default=60.0,
        help="longest wait for every bot to receive its last-N video (s)",
    )
    add_server_options(
        p,
        server_source="run the server from this checkout",
        server_env="a setting for the server (repeatable)",
        clip_dir="cache of the encoded clips",
    )
    args = p.parse_args(argv)
    if not 0 <= args.last_n <= 25:
        p.error("--last-n must be between 0 and 25")
    if args.speak_every <= 0:
        p.error("--speak-every must be positive: the switches are what this measures")
    common = sweep_fields(args, p)  # before the clips: a bad --server-env is reported first
    try:
        clip, light = ClipSpec.parse(args.clip), ClipSpec.parse(args.light_clip)
    except ValueError as exc:
        p.error(str(exc))
    opts = Options(
        ks=ints(args.ks),
        light_ks=ints(args.light_ks),
        clip=clip,
        light_clip=light,
        last_n=args.last_n,
        audio_streams=args.audio_streams,
        speak_every=args.speak_every,
        mesh_timeout=args.mesh_timeout,
        **common,
    )
    return args, opts


async def run(opts: Options, command: str) -> dict[str, Any]:
    loads = (partial(clip.load, opts.clip_dir, True) for clip in {opts.clip, opts.light_clip})
    info = await prepare(opts, *loads)
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
            **measuring_settings(opts),
            "clips": {"main": str(opts.clip), "light": str(opts.light_clip)},
            "bitrates": {"main": opts.clip.bitrate, "light": opts.light_clip.bitrate},
        },
        "idle_server_cpu_percent": round(idle, 2),
        "points": [point.figures() for point in points],
    }


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args, opts = parse(argv)
    result = run_main("bench.large", args, argv, out, lambda command: run(opts, command), summary)
    points = result["points"]
    return 0 if points and not any(p["error"] for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
