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
import json
import logging
import os
import platform
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from client.loadtest import procstat
from client.loadtest.accounts import Api, ApiError, create_bot_accounts
from client.loadtest.cli import default_clip_dir
from client.loadtest.report import build_report
from client.loadtest.runner import LoadTest, Plan
from client.loadtest.server import LocalServer
from client.loadtest.stats import median
from rtp.synthetic import load_clip

from .machine import Machine

log = logging.getLogger("bench.capacity")
PASS_RATIO = 0.9
EVERYONE_TO_EVERYONE = {"TERTULIA_AUDIO_STREAMS": "25", "TERTULIA_LAST_N": "25"}
ADMIN_EMAIL = "bench-admin@loadtest.example"


@dataclass(frozen=True)
class Options:
    ks: tuple[int, ...]
    baseline_ks: tuple[int, ...]
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
    data_dir: Path | None
    clip_dir: Path
    server_source: Path | None = None  # run the server from this checkout
    server_env: tuple[tuple[str, str], ...] = ()  # extra TERTULIA_* settings for the server


@dataclass
class Window:
    """One measured window at one K."""

    seconds: float
    server_cpu: float  # % of one core
    server_rss_mb: float
    bots_cpu: float
    bots_peak: float  # highest 1 s bots' CPU in the window
    others_cpu: float  # % of one core used by everything else on the machine
    core_busy: dict[str, float]
    report: dict[str, Any]
    disturbed: bool  # others used more than the quiet threshold
    # from the server's /api/admin/media-stats (None on a server without it)
    forwarded_packets: int | None = None
    retransmissions: int | None = None


@dataclass
class Row:
    mode: str
    k: int
    windows: list[Window] = field(default_factory=list)
    first_frame: dict[str, Any] = field(default_factory=dict)
    decoded: list[dict[str, Any]] = field(default_factory=list)
    quiet_wait_s: float = 0.0
    join_peak: float = 0.0  # highest 1 s bots' CPU while joining and warming up
    mesh_complete: bool = True
    bots_cores: float = 1.0  # how much CPU the bot processes can use, in cores
    error: str | None = None

    def used(self) -> list[Window]:
        calm = [w for w in self.windows if not w.disturbed]
        return calm or self.windows

    def med(self, pick: Any) -> float | None:
        values = [v for v in (pick(w) for w in self.used()) if v is not None]
        return median(values)

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
        per_forwarded = self.med(
            lambda w: (
                w.server_cpu / 100 * w.seconds / w.forwarded_packets * 1e6
                if w.forwarded_packets
                else None
            )
        )
        flags = []
        if self.error:
            flags.append("error")
        if self.windows and all(w.disturbed for w in self.windows):
            flags.append("disturbed")
        elif any(w.disturbed for w in self.windows):
            flags.append(f"{sum(w.disturbed for w in self.windows)} window(s) disturbed, retried")
        bots = self.med(lambda w: w.bots_cpu)
        capacity = 100 * self.bots_cores
        peak = max((w.bots_peak for w in self.windows), default=0.0)
        if (bots is not None and bots >= 0.9 * capacity) or peak >= 0.95 * capacity:
            flags.append(f"bots saturated (peak {peak:.0f}%)")
        elif self.join_peak >= 0.95 * capacity:
            flags.append(f"bots saturated while joining (peak {self.join_peak:.0f}%)")
        if not self.mesh_complete:
            flags.append("mesh incomplete after 30 s")
        if server is not None and server >= 95:
            flags.append("server saturated")
        return {
            "mode": self.mode,
            "k": self.k,
            "windows": len(self.windows),
            "server_cpu_percent": _r(server, 1),
            "server_rss_mb": _r(self.med(lambda w: w.server_rss_mb), 0),
            "bots_cpu_percent": _r(bots, 1),
            "bots_cpu_peak_percent": _r(peak, 1),
            "bots_cpu_join_peak_percent": _r(self.join_peak, 1),
            "others_cpu_percent": _r(self.med(lambda w: w.others_cpu), 1),
            "video_fps_mean": _r(self.med(lambda w: w.report["totals"]["video"]["rate_mean"]), 2),
            "video_fps_min": _r(self.med(lambda w: w.report["totals"]["video"]["rate_min"]), 2),
            "video_ratio_min": _r(self.med(lambda w: w.report["totals"]["video"]["ratio_min"])),
            "audio_pps_mean": _r(self.med(lambda w: w.report["totals"]["audio"]["rate_mean"]), 1),
            "video_loss": _r(self.med(lambda w: w.report["totals"]["video"]["loss"]), 4),
            "audio_loss": _r(self.med(lambda w: w.report["totals"]["audio"]["loss"]), 4),
            "latency_p50_ms": _r(self.med(lambda w: w.report["totals"]["latency_ms"]["p50"]), 1),
            "latency_p95_ms": _r(self.med(lambda w: w.report["totals"]["latency_ms"]["p95"]), 1),
            "send_lag_p95_ms": _r(self.med(lambda w: w.report["sent"]["send_lag_ms"]["p95"]), 1),
            "identical_fraction": _r(
                self.med(lambda w: w.report["totals"]["video"]["identical_fraction"])
            ),
            "join_to_first_frame_s": self.first_frame,
            "forwarded_streams": streams,
            "server_cpu_per_stream_percent": _r(server / streams, 2) if server else None,
            "server_cpu_per_packet_us": _r(per_packet, 1),
            "server_cpu_per_forwarded_packet_us": _r(per_forwarded, 1),
            "forwarded_packets_per_s": _r(
                self.med(
                    lambda w: w.forwarded_packets / w.seconds if w.forwarded_packets else None
                ),
                0,
            ),
            "retransmissions_per_s": _r(
                self.med(
                    lambda w: (
                        w.retransmissions / w.seconds if w.retransmissions is not None else None
                    )
                ),
                1,
            ),
            "received_packets_per_s": _r(
                self.med(lambda w: w.report["totals"]["received_packets_per_s"]), 0
            ),
            "decoded_sample": self.decoded,
            "quiet_wait_s": round(self.quiet_wait_s, 1),
            "per_window": [
                {
                    "seconds": round(w.seconds, 2),
                    "server_cpu_percent": round(w.server_cpu, 1),
                    "bots_cpu_percent": round(w.bots_cpu, 1),
                    "bots_cpu_peak_percent": round(w.bots_peak, 1),
                    "others_cpu_percent": round(w.others_cpu, 1),
                    "core_busy_percent": w.core_busy,
                    "video_fps_mean": w.report["totals"]["video"]["rate_mean"],
                    "video_fps_min": w.report["totals"]["video"]["rate_min"],
                    "disturbed": w.disturbed,
                }
                for w in self.windows
            ],
            "flags": flags,
            "error": self.error,
        }


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------------ one K


async def measure_k(
    mode: str,
    k: int,
    server: LocalServer,
    api: Api,
    admin: str,
    tokens: list[str],
    opts: Options,
) -> Row:
    row = Row(mode, k)
    row.bots_cores = min(opts.processes, len(os.sched_getaffinity(0)))
    machine = Machine(os.getpid())  # the server and the bot processes are its children
    row.quiet_wait_s = await machine.wait_quiet(opts.quiet_threshold, opts.quiet_wait)
    room = await api.create_meeting(admin, f"capacity {mode} K={k}", k)
    plan = Plan(
        base_url=server.base_url,
        room_id=room,
        tokens=tuple(tokens[:k]),
        processes=opts.processes,
        clip_dir=opts.clip_dir,
        decode_sample=True,
    )
    try:
        async with LoadTest(plan) as test:
            joined = await test.wait_joined(timeout=30 + k * plan.join_interval)
            if not await test.wait_mesh(30):
                log.warning("%s K=%d: not every bot receives every other after 30 s", mode, k)
                row.mesh_complete = False
            await asyncio.sleep(opts.warmup)
            row.join_peak = test.reset_peak()
            attempts = 0
            while len([w for w in row.windows if not w.disturbed]) < opts.repeats:
                if attempts >= 2 * opts.repeats:
                    break
                attempts += 1
                window = await _window(test, server, machine, opts, joined, api, admin)
                row.windows.append(window)
                log.info(
                    "%s K=%d window %d: server %.0f%%, bots %.0f%%, others %.0f%%, "
                    "video %.1f fps (min %.1f)%s",
                    mode,
                    k,
                    attempts,
                    window.server_cpu,
                    window.bots_cpu,
                    window.others_cpu,
                    window.report["totals"]["video"]["rate_mean"] or 0,
                    window.report["totals"]["video"]["rate_min"] or 0,
                    " DISTURBED" if window.disturbed else "",
                )
            finals = await test.stop()
            final = build_report([], joined, finals)
            row.first_frame = final["totals"]["join_to_first_frame_s"]
            row.decoded = final["decoded_sample"]
    except Exception as exc:  # one K failing must not lose the rest of the sweep
        log.error("%s K=%d failed: %s", mode, k, exc)
        row.error = str(exc)
    finally:
        try:
            await api.end_meeting(admin, room)
        except Exception as exc:
            log.warning("could not end the meeting: %s", exc)
    return row


async def media_stats(api: Api, admin: str) -> dict[str, int] | None:
    """The server's own counters; None when this server version does not have them."""
    try:
        stats: dict[str, int] = await api.call(
            "GET", "/api/admin/media-stats", "read the media counters", admin
        )
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return stats


def _delta(before: dict[str, int] | None, after: dict[str, int] | None, key: str) -> int | None:
    if before is None or after is None:
        return None
    return after[key] - before[key]


async def _window(
    test: LoadTest,
    server: LocalServer,
    machine: Machine,
    opts: Options,
    joined: Any,
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
    report = build_report(raw, joined)
    others, cores = machine.others(before, after)
    return Window(
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
    )


# ------------------------------------------------------------------------ a sweep


async def idle_cpu(server: LocalServer, seconds: float = 3.0) -> float:
    """The server's CPU with nobody connected, % of one core."""
    await asyncio.sleep(1.0)  # let the sign-ins' password hashing finish
    before, t0 = server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(seconds)
    return (server.cpu_seconds() - before) / (time.monotonic() - t0) * 100


async def sweep(mode: str, ks: Sequence[int], opts: Options, root: Path) -> tuple[list[Row], float]:
    """Rows for each K (stopping early when it is pointless), and the idle server CPU
    (forwarding mode only)."""
    # Everyone-to-everyone: every camera and every microphone is forwarded to everyone
    # (since the large-meetings work the server's defaults forward only the 3 loudest
    # microphones and 20 cameras), so figures stay comparable with earlier runs.
    env = {**EVERYONE_TO_EVERYONE, **dict(opts.server_env)}
    if mode == "relay":
        env["TERTULIA_FORWARDING"] = "relay"
    server = LocalServer(
        root / mode,
        cpus=(opts.server_cpu,) if opts.pin else (),
        env=env,
        source=opts.server_source,
    )
    password = secrets.token_urlsafe(16)
    server.create_user(ADMIN_EMAIL, "Bench admin", password, admin=True)
    await asyncio.to_thread(server.start)
    rows: list[Row] = []
    idle = 0.0
    try:
        async with Api(server.base_url) as api:
            admin = await api.login(ADMIN_EMAIL, password)
            accounts = await create_bot_accounts(api, admin, max(ks))
            if mode == "forward":  # the same code runs idle in both modes
                idle = await idle_cpu(server)
                log.info("idle server CPU %.1f%% of a core", idle)
            for k in ks:
                log.info("%s: K=%d", mode, k)
                row = await measure_k(mode, k, server, api, admin, accounts.tokens, opts)
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
    finally:
        await asyncio.to_thread(server.stop)
    return rows, idle


def relay_supported() -> str | None:
    """None when this checkout has the relay baseline, else why it is skipped."""
    from signaling.config import Settings

    if "forwarding" not in Settings.model_fields:
        return "this checkout has no TERTULIA_FORWARDING setting (relay baseline missing)"
    return None


# ------------------------------------------------------------------------ output


class Pinning(Protocol):
    """Where the server and the bots run (bench.capacity's and bench.large's options)."""

    @property
    def pin(self) -> bool: ...
    @property
    def server_cpu(self) -> int: ...
    @property
    def bots_cpu(self) -> int: ...


def machine_info(opts: Pinning) -> dict[str, Any]:
    import aiortc

    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiortc": aiortc.__version__,
        "load_average_at_start": procstat.load_average(),
        "server_cpu": opts.server_cpu if opts.pin else None,
        "bots_cpu": opts.bots_cpu if opts.pin else None,
    }


def _f(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


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
            f"{f['mode']:<8}{f['k']:>3} {_f(f['server_cpu_percent']):>8} "
            f"{_f(f['server_rss_mb'], '.0f'):>7} {_f(f['bots_cpu_percent']):>6} "
            f"{_f(f['video_fps_mean']):>9} {_f(f['video_fps_min']):>8} "
            f"{_f(f['audio_pps_mean']):>9} {_f(None if loss is None else loss * 100):>5}% "
            f"{_f(first.get('median'), '.2f'):>8} {_f(f['latency_p50_ms']):>8} "
            f"{_f(f['latency_p95_ms']):>8} {_f(f['server_cpu_per_stream_percent'], '.2f'):>9} "
            f"{_f(f['server_cpu_per_packet_us'], '.0f'):>7}  {', '.join(f['flags'])}"
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
                f"{_f(f['received_packets_per_s'], '.0f')} packets/s: "
                f"{f['server_cpu_per_stream_percent']:.2f}% of a core per stream, "
                f"{_f(f['server_cpu_per_packet_us'], '.0f')} us of server CPU per packet"
            )
            if f["forwarded_packets_per_s"]:
                lines.append(
                    f"      server counters: {f['forwarded_packets_per_s']:.0f} packets/s "
                    f"forwarded, {f['server_cpu_per_forwarded_packet_us']:.1f} us of server "
                    f"CPU per forwarded packet, {_f(f['retransmissions_per_s'])} "
                    "retransmissions/s"
                )
    m = result["machine"]
    lines.append("")
    lines.append(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, aiortc {m['aiortc']}; server on CPU {m['server_cpu']}, "
        f"bots on CPU {m['bots_cpu']}; load average at start {m['load_average_at_start']}"
    )
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


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Options]:
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n")[0])
    p.add_argument(
        "--ks", default="2,4,6,8,10,12,14,16", help="participant counts to sweep, in order"
    )
    p.add_argument("--baseline-ks", default="2,3", help="K for the relay baseline ('' skips it)")
    p.add_argument("--window", type=float, default=15.0, help="seconds per measured window")
    p.add_argument("--repeats", type=int, default=3, help="undisturbed windows per K (median)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before the first window")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and bots to CPUs")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--bots-cpu", type=int, default=1)
    p.add_argument("--processes", type=int, default=1, help="bot processes")
    p.add_argument(
        "--quiet-threshold",
        type=float,
        default=20.0,
        help="%% of one core other processes may use before a window counts as disturbed",
    )
    p.add_argument("--quiet-wait", type=float, default=120.0, help="longest wait for quiet (s)")
    p.add_argument(
        "--stop-below",
        type=float,
        default=0.5,
        help="stop a sweep after a K whose worst stream got less than this share of the frames",
    )
    p.add_argument("--data-dir", type=Path, help="server data (default: a temporary directory)")
    p.add_argument(
        "--server-source",
        type=Path,
        help="run the server from this checkout (e.g. a git worktree of an older commit)",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the server, e.g. TERTULIA_EVENT_LOOP=asyncio (repeatable)",
    )
    p.add_argument("--clip-dir", type=Path, help="cache of the encoded clip")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--json-out", type=Path, help="also write the JSON results to this file")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    opts = Options(
        ks=_ints(args.ks),
        baseline_ks=_ints(args.baseline_ks),
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
        data_dir=args.data_dir,
        clip_dir=args.clip_dir or default_clip_dir(),
        server_source=args.server_source.resolve() if args.server_source else None,
        server_env=tuple(_setting(item, p) for item in args.server_env),
    )
    return args, opts


def _setting(item: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.startswith("TERTULIA_"):
        parser.error(f"--server-env {item!r}: expected TERTULIA_NAME=VALUE")
    return name, value


async def run(opts: Options, command: str) -> dict[str, Any]:
    if opts.pin:
        os.sched_setaffinity(0, {opts.bots_cpu})  # the bot processes inherit it
    await asyncio.to_thread(load_clip, opts.clip_dir, "VP8", 10.0)
    info = machine_info(opts)
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
        "settings": {
            "window_s": opts.window,
            "repeats": opts.repeats,
            "warmup_s": opts.warmup,
            "quiet_threshold_percent": opts.quiet_threshold,
            "bot_processes": opts.processes,
            "pinned": opts.pin,
        },
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
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("bench.capacity").setLevel(logging.INFO)
    command = shlex.join([Path(sys.executable).name, "-m", "bench.capacity", *sys.argv[1:]])
    if argv is not None:
        command = shlex.join(["python", "-m", "bench.capacity", *argv])
    result = asyncio.run(run(opts, command))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        out.write(summary(result) + "\n")
    return 0 if result["forwarding"] and not any(r["error"] for r in result["forwarding"]) else 1


if __name__ == "__main__":
    sys.exit(main())
