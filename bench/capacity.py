"""Meeting capacity: how many people one server process holds, and what it costs.

Starts the server in its own process (pinned to CPU 0), the load bots in theirs (pinned
to CPU 1), sweeps K = 2, 4, 6, … and prints per K: server CPU and RSS, bots' CPU, received
video fps (mean, worst stream), audio pps, loss, join-to-first-frame, latency p50/p95, the
server's CPU per forwarded stream and per forwarded packet; then the largest K at which
every subscriber gets ≥ 90 % of the sent frame rate. The same bots then run against the
same server with `TERTULIA_FORWARDING=relay` (aiortc MediaRelay: decode once, re-encode per
subscriber) for the side-by-side baseline.

It waits for a quiet machine before each K and flags windows that other processes
disturbed. Method and results: docs/performance.md ("Meeting capacity").

    .venv/bin/python -m bench.capacity [--ks 2,4,6,8,10,12] [--window 15] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from client.loadtest.report import build_report
from client.loadtest.runner import LoadTest, Plan
from rtp.synthetic import load_clip

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

log = logging.getLogger("bench.capacity")
EVERYONE_TO_EVERYONE = {"TERTULIA_AUDIO_STREAMS": "25", "TERTULIA_LAST_N": "25"}


@dataclass(frozen=True)
class Options(SweepOptions):
    ks: tuple[int, ...]
    baseline_ks: tuple[int, ...]


@dataclass
class Row(Measured):
    """One K in one mode: forwarding, or the relay baseline."""

    mode: str
    k: int
    decoded: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        streams = self.k * (self.k - 1)  # forwarded camera+microphone pairs
        server = self.med(lambda w: w.server_cpu)
        per_packet = self.med(
            lambda w: (
                w.server_cpu / 100 * w.seconds / packets * 1e6
                if (packets := w.report["totals"]["received_packets"])
                else None
            )
        )
        bots, peak, _ = self.bots_load()
        flags = self.flags(server, "mesh incomplete after 30 s")
        return {
            "mode": self.mode,
            "k": self.k,
            "windows": len(self.windows),
            "server_cpu_percent": rounded(server, 1),
            "server_rss_mb": rounded(self.med(lambda w: w.server_rss_mb), 0),
            "bots_cpu_percent": rounded(bots, 1),
            "bots_cpu_peak_percent": rounded(peak, 1),
            "bots_cpu_join_peak_percent": rounded(self.join_peak, 1),
            "others_cpu_percent": rounded(self.med(lambda w: w.others_cpu), 1),
            "video_fps_mean": rounded(self.reported("totals", "video", "rate_mean"), 2),
            "video_fps_min": rounded(self.reported("totals", "video", "rate_min"), 2),
            "video_ratio_min": rounded(self.reported("totals", "video", "ratio_min")),
            "audio_pps_mean": rounded(self.reported("totals", "audio", "rate_mean"), 1),
            "video_loss": rounded(self.reported("totals", "video", "loss"), 4),
            "audio_loss": rounded(self.reported("totals", "audio", "loss"), 4),
            "latency_p50_ms": rounded(self.reported("totals", "latency_ms", "p50"), 1),
            "latency_p95_ms": rounded(self.reported("totals", "latency_ms", "p95"), 1),
            "send_lag_p95_ms": rounded(self.reported("sent", "send_lag_ms", "p95"), 1),
            "identical_fraction": rounded(self.reported("totals", "video", "identical_fraction")),
            "join_to_first_frame_s": self.first_frame,
            "forwarded_streams": streams,
            "server_cpu_per_stream_percent": rounded(server / streams, 2) if server else None,
            "server_cpu_per_packet_us": rounded(per_packet, 1),
            "server_cpu_per_forwarded_packet_us": rounded(
                self.med(lambda w: w.server_us_per_forwarded_packet), 1
            ),
            "forwarded_packets_per_s": rounded(self.med(lambda w: w.forwarded_packets_per_s), 0),
            "retransmissions_per_s": rounded(self.med(lambda w: w.retransmissions_per_s), 1),
            "received_packets_per_s": rounded(self.reported("totals", "received_packets_per_s"), 0),
            "decoded_sample": self.decoded,
            "quiet_wait_s": round(self.quiet_wait_s, 1),
            "per_window": [
                {
                    **w.cpu_figures(),
                    "video_fps_mean": w.report["totals"]["video"]["rate_mean"],
                    "video_fps_min": w.report["totals"]["video"]["rate_min"],
                    "disturbed": w.disturbed,
                }
                for w in self.windows
            ],
            "flags": flags,
            "error": self.error,
        }


# ------------------------------------------------------------------------ one K


async def measure_k(mode: str, k: int, served: Served, opts: Options) -> Row:
    row = Row(mode, k)
    title, label = f"capacity {mode} K={k}", f"{mode} K={k}"
    async with row.meeting(served, opts, title, k, label, log) as (room, machine):
        plan = Plan(
            base_url=served.server.base_url,
            room_id=room,
            tokens=tuple(served.tokens[:k]),
            processes=opts.processes,
            clip_dir=opts.clip_dir,
            decode_sample=True,
        )
        async with LoadTest(plan) as test:
            joined = await test.wait_joined(timeout=30 + k * plan.join_interval)
            if not await test.wait_mesh(30):
                log.warning("%s K=%d: not every bot receives every other after 30 s", mode, k)
                row.mesh_complete = False
            await asyncio.sleep(opts.warmup)
            row.join_peak = test.reset_peak()

            async def take(attempt: int) -> Window:
                window = await measure_window(
                    test, served, machine, opts, lambda raw: build_report(raw, joined)
                )
                log.info(
                    "%s K=%d window %d: server %.0f%%, bots %.0f%%, others %.0f%%, "
                    "video %.1f fps (min %.1f)%s",
                    mode,
                    k,
                    attempt,
                    window.server_cpu,
                    window.bots_cpu,
                    window.others_cpu,
                    window.report["totals"]["video"]["rate_mean"] or 0,
                    window.report["totals"]["video"]["rate_min"] or 0,
                    " DISTURBED" if window.disturbed else "",
                )
                return window

            await row.take_windows(opts.repeats, take)
            finals = await test.stop()
            final = build_report([], joined, finals)
            row.first_frame = final["totals"]["join_to_first_frame_s"]
            row.decoded = final["decoded_sample"]
    return row


# ------------------------------------------------------------------------ a sweep


async def sweep(mode: str, ks: Sequence[int], opts: Options, root: Path) -> tuple[list[Row], float]:
    """Rows for each K (stopping early when it is pointless), and the idle server CPU
    (forwarding mode only)."""
    # Everyone-to-everyone: every camera and every microphone is forwarded to everyone
    # (since the large-meetings work the server's defaults forward only the 3 loudest
    # microphones and 20 cameras), so figures stay comparable with earlier runs.
    env = {**EVERYONE_TO_EVERYONE, **dict(opts.server_env)}
    if mode == "relay":
        env["TERTULIA_FORWARDING"] = "relay"
    rows: list[Row] = []
    idle = 0.0
    async with serving(opts, root / mode, env, max(ks)) as served:
        if mode == "forward":  # the same code runs idle in both modes
            idle = await idle_cpu(served.server)
            log.info("idle server CPU %.1f%% of a core", idle)
        for k in ks:
            log.info("%s: K=%d", mode, k)
            row = await measure_k(mode, k, served, opts)
            rows.append(row)
            figures = row.figures()
            ratio, bots = figures["video_ratio_min"], figures["bots_cpu_percent"]
            if row.error or (ratio is not None and ratio < opts.stop_below):
                log.warning(
                    "%s: stopping the sweep at K=%d (worst stream at %s of the sent rate)",
                    mode,
                    k,
                    "-" if ratio is None else f"{ratio:.0%}",
                )
                break
            if bots is not None and bots >= 90 * row.bots_cores:
                log.warning(
                    "%s: stopping the sweep at K=%d: the bots are saturated, a larger K "
                    "would measure them, not the server",
                    mode,
                    k,
                )
                break
    return rows, idle


def relay_supported() -> str | None:
    """None when this checkout has the relay baseline, else why it is skipped."""
    from signaling.config import Settings

    if "forwarding" not in Settings.model_fields:
        return "this checkout has no TERTULIA_FORWARDING setting (relay baseline missing)"
    return None


# ------------------------------------------------------------------------ output


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'mode':<8}{'K':>3} {'srv CPU%':>8} {'RSS MB':>7} {'bots%':>6} {'fps mean':>9} "
        f"{'fps min':>8} {'audio pps':>9} {'loss':>6} {'first s':>8} {'lat p50':>8} "
        f"{'lat p95':>8} {'%/stream':>9} {'us/pkt':>7}  flags"
    )
    lines = [header, "-" * len(header)]
    for f in rows:
        loss = f["video_loss"]
        first = f["join_to_first_frame_s"] or {}
        lines.append(
            f"{f['mode']:<8}{f['k']:>3} {cell(f['server_cpu_percent']):>8} "
            f"{cell(f['server_rss_mb'], '.0f'):>7} {cell(f['bots_cpu_percent']):>6} "
            f"{cell(f['video_fps_mean']):>9} {cell(f['video_fps_min']):>8} "
            f"{cell(f['audio_pps_mean']):>9} {cell(None if loss is None else loss * 100):>5}% "
            f"{cell(first.get('median'), '.2f'):>8} {cell(f['latency_p50_ms']):>8} "
            f"{cell(f['latency_p95_ms']):>8} {cell(f['server_cpu_per_stream_percent'], '.2f'):>9} "
            f"{cell(f['server_cpu_per_packet_us'], '.0f'):>7}  {', '.join(f['flags'])}"
        )
    return "\n".join(lines)


def largest_passing(rows: list[dict[str, Any]]) -> int | None:
    passing = [
        r["k"]
        for r in rows
        if r["video_ratio_min"] is not None
        and r["video_ratio_min"] >= PASS_RATIO
        and not r["error"]
    ]
    return max(passing, default=None)


def summary(result: dict[str, Any]) -> str:
    forward, relay = result["forwarding"], result["relay"]
    lines = [table(forward + (relay if isinstance(relay, list) else []))]
    best = result["largest_k_at_90_percent"]
    lines.append("")
    lines.append(
        f"largest K at which every subscriber gets >= 90% of the sent frame rate: "
        f"{best if best is not None else 'none'} (forwarding)"
    )
    if isinstance(relay, list):
        lines.append(
            f"relay baseline (MediaRelay, decode + re-encode): largest K at 90%: "
            f"{result['relay_largest_k_at_90_percent'] or 'none'}"
        )
        for pair in result["comparison"]:
            lines.append(
                f"K={pair['k']}: server CPU per forwarded stream {pair['forwarding']:.2f}% "
                f"(forwarding) vs {pair['relay']:.2f}% (relay): relay costs "
                f"{pair['ratio']:.1f}x as much"
            )
    else:
        lines.append(f"relay baseline skipped: {relay['skipped']}")
    idle = result["idle_server_cpu_percent"]
    lines.append(f"idle server (nobody connected): {idle:.1f}% of a core")
    for f in forward:
        if f["server_cpu_per_stream_percent"] is not None:
            lines.append(
                f"K={f['k']}: {f['forwarded_streams']} forwarded camera+microphone streams, "
                f"{cell(f['received_packets_per_s'], '.0f')} packets/s: "
                f"{f['server_cpu_per_stream_percent']:.2f}% of a core per stream, "
                f"{cell(f['server_cpu_per_packet_us'], '.0f')} us of server CPU per packet"
            )
            if f["forwarded_packets_per_s"]:
                lines.append(
                    f"      server counters: {f['forwarded_packets_per_s']:.0f} packets/s "
                    f"forwarded, {f['server_cpu_per_forwarded_packet_us']:.1f} us of server "
                    f"CPU per forwarded packet, {cell(f['retransmissions_per_s'])} "
                    "retransmissions/s"
                )
    lines.append("")
    lines.append(machine_line(result["machine"]))
    lines.append(f"command: {result['command']}")
    return "\n".join(lines)


def comparison(forward: list[dict[str, Any]], relay: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_k = {r["k"]: r for r in forward}
    pairs = []
    for r in relay:
        f = by_k.get(r["k"])
        a = f and f["server_cpu_per_stream_percent"]
        b = r["server_cpu_per_stream_percent"]
        if a and b:
            pairs.append({"k": r["k"], "forwarding": a, "relay": b, "ratio": round(b / a, 2)})
    return pairs


# ------------------------------------------------------------------------ main


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Options]:
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n")[0])
    p.add_argument(
        "--ks", default="2,4,6,8,10,12,14,16", help="participant counts to sweep, in order"
    )
    p.add_argument("--baseline-ks", default="2,3", help="K for the relay baseline ('' skips it)")
    add_measuring_options(
        p,
        repeats="undisturbed windows per K (median)",
        quiet_threshold="%% of one core other processes may use before a window counts as "
        "disturbed",
        stop_below="stop a sweep after a K whose worst stream got less than this share of the "
        "frames",
    )
    add_server_options(
        p,
        server_source="run the server from this checkout (e.g. a git worktree of an older commit)",
        server_env="a setting for the server, e.g. TERTULIA_EVENT_LOOP=asyncio (repeatable)",
        clip_dir="cache of the encoded clip",
    )
    args = p.parse_args(argv)
    opts = Options(ks=ints(args.ks), baseline_ks=ints(args.baseline_ks), **sweep_fields(args, p))
    return args, opts


async def run(opts: Options, command: str) -> dict[str, Any]:
    info = await prepare(opts, lambda: load_clip(opts.clip_dir, "VP8", 10.0))
    with tempfile.TemporaryDirectory(prefix="tertulia-capacity-") as tmp:
        root = opts.data_dir or Path(tmp)
        forward_rows, forward_idle = await sweep("forward", opts.ks, opts, root)
        forward = [row.figures() for row in forward_rows]
        relay: list[dict[str, Any]] | dict[str, str]
        skipped = relay_supported() if opts.baseline_ks else "not requested (--baseline-ks '')"
        if skipped:
            log.warning("relay baseline skipped: %s", skipped)
            relay = {"skipped": skipped}
        else:
            relay_rows, _ = await sweep("relay", opts.baseline_ks, opts, root)
            relay = [row.figures() for row in relay_rows]
            for r in relay:
                if r["identical_fraction"] and r["identical_fraction"] > 0.5:
                    log.warning("relay K=%d: frames arrived unchanged: was relay mode on?", r["k"])
    return {
        "machine": info,
        "command": command,
        "settings": measuring_settings(opts),
        "idle_server_cpu_percent": round(forward_idle, 2),
        "forwarding": forward,
        "relay": relay,
        "largest_k_at_90_percent": largest_passing(forward),
        "relay_largest_k_at_90_percent": largest_passing(relay)
        if isinstance(relay, list)
        else None,
        "comparison": comparison(forward, relay) if isinstance(relay, list) else [],
    }


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args, opts = parse(argv)
    result = run_main(
        "bench.capacity", args, argv, out, lambda command: run(opts, command), summary
    )
    return 0 if result["forwarding"] and not any(r["error"] for r in result["forwarding"]) else 1


if __name__ == "__main__":
    sys.exit(main())
