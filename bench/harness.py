"""The measuring harness bench.capacity and bench.large share.

Both benches start one server in its own process and the load bots in theirs, pinned to
different CPUs, and measure each point of a sweep (one K) in windows on a machine other
processes use too: wait for quiet, take windows until enough undisturbed ones, read the
server's own counters around each, report medians. bench.large began as a copy of
bench.capacity; what stayed the same lives here, so that a fix to the method (the quiet
wait, a counter, an option, the machine description) reaches both. Each bench keeps its
own figures, tables and summaries.

Code here that logs takes the bench's logger, so the lines read as before (and show at
INFO without -v, as the bench's own do).
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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from client.loadtest import procstat
from client.loadtest.accounts import Api, ApiError, create_bot_accounts
from client.loadtest.cli import default_clip_dir
from client.loadtest.runner import LoadTest
from client.loadtest.server import LocalServer
from client.loadtest.stats import median

from .machine import Machine

PASS_RATIO = 0.9  # a subscriber that gets less of the sent frame rate is not served
ADMIN_EMAIL = "bench-admin@loadtest.example"


# ------------------------------------------------------------------------ numbers


def rounded(value: float | None, digits: int = 3) -> float | None:
    """`round`, passing None through: a figure a window could not give stays missing."""
    return None if value is None else round(value, digits)


def cell(value: float | None, spec: str = ".1f") -> str:
    """A table cell: `-` for a missing figure."""
    return "-" if value is None else format(value, spec)


def ints(text: str) -> tuple[int, ...]:
    """`2,4,6` -> (2, 4, 6); '' -> () (a sweep that is skipped)."""
    return tuple(int(part) for part in text.split(",") if part.strip())


# ------------------------------------------------------------------------ options


@dataclass(frozen=True, kw_only=True)
class SweepOptions:
    """How a bench measures and where its server and bots run; each bench adds its own."""

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


def add_measuring_options(
    p: argparse.ArgumentParser, *, repeats: str, quiet_threshold: str, stop_below: str
) -> None:
    """--window … --stop-below; the arguments are the bench's own help for those options."""
    p.add_argument("--window", type=float, default=15.0, help="seconds per measured window")
    p.add_argument("--repeats", type=int, default=3, help=repeats)
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before the first window")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and bots to CPUs")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--bots-cpu", type=int, default=1)
    p.add_argument("--processes", type=int, default=1, help="bot processes")
    p.add_argument("--quiet-threshold", type=float, default=20.0, help=quiet_threshold)
    p.add_argument("--quiet-wait", type=float, default=120.0, help="longest wait for quiet (s)")
    p.add_argument("--stop-below", type=float, default=0.5, help=stop_below)


def add_server_options(
    p: argparse.ArgumentParser, *, server_source: str, server_env: str, clip_dir: str
) -> None:
    """--data-dir … --verbose; the arguments are the bench's own help for those options."""
    p.add_argument("--data-dir", type=Path, help="server data (default: a temporary directory)")
    p.add_argument("--server-source", type=Path, help=server_source)
    p.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE", help=server_env
    )
    p.add_argument("--clip-dir", type=Path, help=clip_dir)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--json-out", type=Path, help="also write the JSON results to this file")
    p.add_argument("-v", "--verbose", action="store_true")


def sweep_fields(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The SweepOptions fields from the options above (exits on a bad --server-env)."""
    return {
        "window": args.window,
        "repeats": max(1, args.repeats),
        "warmup": args.warmup,
        "pin": not args.no_pin and procstat.core_count() >= 2,
        "server_cpu": args.server_cpu,
        "bots_cpu": args.bots_cpu,
        "processes": args.processes,
        "quiet_threshold": args.quiet_threshold,
        "quiet_wait": args.quiet_wait,
        "stop_below": args.stop_below,
        "data_dir": args.data_dir,
        "clip_dir": args.clip_dir or default_clip_dir(),
        "server_source": args.server_source.resolve() if args.server_source else None,
        "server_env": tuple(_setting(item, parser) for item in args.server_env),
    }


def _setting(item: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.startswith("TERTULIA_"):
        parser.error(f"--server-env {item!r}: expected TERTULIA_NAME=VALUE")
    return name, value


def measuring_settings(opts: SweepOptions) -> dict[str, Any]:
    """The results' `settings` that say how the windows were measured."""
    return {
        "window_s": opts.window,
        "repeats": opts.repeats,
        "warmup_s": opts.warmup,
        "quiet_threshold_percent": opts.quiet_threshold,
        "bot_processes": opts.processes,
        "pinned": opts.pin,
    }


# ------------------------------------------------------------------------ the machine


def machine_info(opts: SweepOptions) -> dict[str, Any]:
    """What the figures were measured on, for the results (they mean little without it)."""
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


def machine_line(m: dict[str, Any]) -> str:
    """machine_info as the summary's `machine:` line."""
    return (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, aiortc {m['aiortc']}; server on CPU {m['server_cpu']}, "
        f"bots on CPU {m['bots_cpu']}; load average at start {m['load_average_at_start']}"
    )


async def prepare(opts: SweepOptions, *clips: Callable[[], object]) -> dict[str, Any]:
    """Pins this process to the bots' CPU (the bot processes inherit it), encodes the
    clips there before any bot needs them, and returns machine_info."""
    if opts.pin:
        os.sched_setaffinity(0, {opts.bots_cpu})
    for load in clips:
        await asyncio.to_thread(load)
    return machine_info(opts)


# ------------------------------------------------------------------------ the server


class Served(NamedTuple):
    """A bench's server, signed in as its administrator, with the bots' sign-in tokens."""

    server: LocalServer
    api: Api
    admin: str
    tokens: list[str]


@asynccontextmanager
async def serving(
    opts: SweepOptions, data: Path, env: dict[str, str], bots: int
) -> AsyncIterator[Served]:
    """A server of the bench's own in `data` (on the server CPU), an administrator and
    `bots` bot accounts; the server stops when the block ends, however it ends."""
    server = LocalServer(
        data,
        cpus=(opts.server_cpu,) if opts.pin else (),
        env=env,
        source=opts.server_source,
    )
    password = secrets.token_urlsafe(16)
    server.create_user(ADMIN_EMAIL, "Bench admin", password, admin=True)
    await asyncio.to_thread(server.start)
    try:
        async with Api(server.base_url) as api:
            admin = await api.login(ADMIN_EMAIL, password)
            accounts = await create_bot_accounts(api, admin, bots)
            yield Served(server, api, admin, accounts.tokens)
    finally:
        await asyncio.to_thread(server.stop)


async def idle_cpu(server: LocalServer, seconds: float = 3.0) -> float:
    """The server's CPU with nobody connected, % of one core."""
    await asyncio.sleep(1.0)  # let the sign-ins' password hashing finish
    before, t0 = server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(seconds)
    return (server.cpu_seconds() - before) / (time.monotonic() - t0) * 100


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


# ------------------------------------------------------------------------ windows


@dataclass(kw_only=True)
class Window:
    """One measured window at one point."""

    started_at: float
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
    forwarded_streams: float | None = None  # mean of the readings before and after
    # each server process's own (several in bench.workers), in the order measured: CPU in %
    # of one core, and media counters before and after the window (None: a server without)
    server_cpus: tuple[float, ...] = ()
    server_stats: tuple[tuple[dict[str, int] | None, dict[str, int] | None], ...] = ()

    @property
    def forwarded_packets_per_s(self) -> float | None:
        return self.forwarded_packets / self.seconds if self.forwarded_packets else None

    @property
    def retransmissions_per_s(self) -> float | None:
        return self.retransmissions / self.seconds if self.retransmissions is not None else None

    @property
    def server_us_per_forwarded_packet(self) -> float | None:
        if not self.forwarded_packets:
            return None
        return self.server_cpu / 100 * self.seconds / self.forwarded_packets * 1e6

    def cpu_figures(self) -> dict[str, Any]:
        """The CPU part of the results' `per_window` entry."""
        return {
            "seconds": round(self.seconds, 2),
            "server_cpu_percent": round(self.server_cpu, 1),
            "bots_cpu_percent": round(self.bots_cpu, 1),
            "bots_cpu_peak_percent": round(self.bots_peak, 1),
            "others_cpu_percent": round(self.others_cpu, 1),
            "core_busy_percent": self.core_busy,
        }


async def measure_window(
    test: LoadTest,
    served: Served,
    machine: Machine,
    opts: SweepOptions,
    report: Callable[[list[dict[str, Any]]], dict[str, Any]],
    *,
    also: Sequence[Served] = (),
) -> Window:
    """One window: the server's, the bots' and everybody else's CPU, the server's counters
    read around it, and `report` of what the bots got.

    `also`: more server processes of the same deployment (the workers of bench.workers).
    Then the server figures (CPU, RSS, counters) are their sums, as one deployment's, and
    `server_cpus` and `server_stats` keep each process's own: the busiest decides."""
    servers = (served, *also)
    test.reset_peak()
    stats0 = [await media_stats(s.api, s.admin) for s in servers]
    before, cpu0 = machine.sample(), [s.server.cpu_seconds() for s in servers]
    raw = await test.window(opts.window)
    after, cpu1 = machine.sample(), [s.server.cpu_seconds() for s in servers]
    stats1 = [await media_stats(s.api, s.admin) for s in servers]
    elapsed = after[0] - before[0]
    got = report(raw)
    others, cores = machine.others(before, after)
    cpus = tuple((c1 - c0) / elapsed * 100 for c0, c1 in zip(cpu0, cpu1, strict=True))
    pairs = tuple(zip(stats0, stats1, strict=True))

    def total(key: str) -> int | None:
        deltas = [_delta(s0, s1, key) for s0, s1 in pairs]
        return None if any(d is None for d in deltas) else sum(d or 0 for d in deltas)

    forwarded = None
    if all(s0 is not None and s1 is not None for s0, s1 in pairs):
        forwarded = sum(
            (s0["forwarded_streams"] + s1["forwarded_streams"]) / 2
            for s0, s1 in pairs
            if s0 is not None and s1 is not None
        )
    return Window(
        started_at=got["window_started_at"] or time.time() - elapsed,
        seconds=elapsed,
        server_cpu=sum(cpus),
        server_rss_mb=sum(s.server.rss_bytes() for s in servers) / 2**20,
        bots_cpu=got["bots_cpu"]["percent_of_one_core"] or 0.0,
        bots_peak=test.reset_peak(),
        others_cpu=others,
        core_busy=cores,
        report=got,
        disturbed=others > opts.quiet_threshold,
        forwarded_packets=total("packets_forwarded"),
        retransmissions=total("retransmissions"),
        forwarded_streams=forwarded,
        server_cpus=cpus,
        server_stats=pairs,
    )


@dataclass(kw_only=True)
class Measured:
    """One point of a sweep: its windows and what happened around them."""

    windows: list[Window] = field(default_factory=list)
    first_frame: dict[str, Any] = field(default_factory=dict)
    quiet_wait_s: float = 0.0
    join_peak: float = 0.0  # highest 1 s bots' CPU while joining and warming up
    mesh_complete: bool = True
    bots_cores: float = 1.0  # how much CPU the bot processes can use, in cores
    error: str | None = None

    def used(self) -> list[Window]:
        """The undisturbed windows; all of them when every one was disturbed."""
        calm = [w for w in self.windows if not w.disturbed]
        return calm or self.windows

    def med(self, pick: Callable[[Window], float | None]) -> float | None:
        """The median of `pick` over the windows used, leaving out the ones without it."""
        return median([v for v in (pick(w) for w in self.used()) if v is not None])

    def reported(self, *path: str) -> float | None:
        """med of one figure of the bots' report, by its keys: ("totals", "video", "loss")."""

        def pick(w: Window) -> Any:
            value: Any = w.report
            for key in path:
                value = value[key]
            return value

        return self.med(pick)

    def bots_load(self) -> tuple[float | None, float, bool]:
        """The bots' CPU (median), its 1 s peak, and whether they saturated: then the
        figures describe the bots more than the server."""
        bots = self.med(lambda w: w.bots_cpu)
        capacity = 100 * self.bots_cores
        peak = max((w.bots_peak for w in self.windows), default=0.0)
        saturated = (bots is not None and bots >= 0.9 * capacity) or peak >= 0.95 * capacity
        return bots, peak, saturated

    def flags(self, server: float | None, incomplete_mesh: str, *notes: str) -> list[str]:
        """Why the figures may mislead: an error, the bench's `notes`, disturbed windows,
        saturated bots, `incomplete_mesh` when not every bot received, a saturated server."""
        flags = ["error"] if self.error else []
        flags.extend(notes)
        if self.windows and all(w.disturbed for w in self.windows):
            flags.append("disturbed")
        elif any(w.disturbed for w in self.windows):
            flags.append(f"{sum(w.disturbed for w in self.windows)} window(s) disturbed, retried")
        _, peak, saturated = self.bots_load()
        if saturated:
            flags.append(f"bots saturated (peak {peak:.0f}%)")
        elif self.join_peak >= 0.95 * 100 * self.bots_cores:
            flags.append(f"bots saturated while joining (peak {self.join_peak:.0f}%)")
        if not self.mesh_complete:
            flags.append(incomplete_mesh)
        if server is not None and server >= 95:
            flags.append("server saturated")
        return flags

    @asynccontextmanager
    async def meeting(
        self,
        served: Served,
        opts: SweepOptions,
        title: str,
        size: int,
        label: str,
        log: logging.Logger,
    ) -> AsyncIterator[tuple[str, Machine]]:
        """Waits for a quiet machine, then a meeting for `size` people (its room id, and
        the Machine to measure with) that is ended afterwards. An exception in the block
        becomes this point's error: one point failing must not lose the rest of the sweep."""
        self.bots_cores = min(opts.processes, len(os.sched_getaffinity(0)))
        machine = Machine(os.getpid())  # the server and the bot processes are its children
        self.quiet_wait_s = await machine.wait_quiet(opts.quiet_threshold, opts.quiet_wait)
        room = await served.api.create_meeting(served.admin, title, size)
        try:
            yield room, machine
        except Exception as exc:
            log.error("%s failed: %s", label, exc)
            self.error = str(exc)
        finally:
            try:
                await served.api.end_meeting(served.admin, room)
            except Exception as exc:
                log.warning("could not end the meeting: %s", exc)

    async def take_windows(self, repeats: int, take: Callable[[int], Awaitable[Window]]) -> None:
        """Windows (`take` gets the attempt's number) until `repeats` undisturbed ones;
        at most twice `repeats`, so a busy machine costs retries, not the whole sweep."""
        attempts = 0
        while len([w for w in self.windows if not w.disturbed]) < repeats:
            if attempts >= 2 * repeats:
                break
            attempts += 1
            self.windows.append(await take(attempts))


# ------------------------------------------------------------------------ main


def run_main(
    name: str,
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    out: TextIO,
    run: Callable[[str], Coroutine[Any, Any, dict[str, Any]]],
    summary: Callable[[dict[str, Any]], str],
) -> dict[str, Any]:
    """A bench's main once its options are parsed: progress to standard error (the bench's
    own at INFO, everything else at INFO only with -v), `run` with the command line that
    reproduces it, the results to the --json-out file and to `out` (JSON, or `summary`)."""
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger(name).setLevel(logging.INFO)
    command = shlex.join([Path(sys.executable).name, "-m", name, *sys.argv[1:]])
    if argv is not None:
        command = shlex.join(["python", "-m", name, *argv])
    result = asyncio.run(run(command))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        out.write(summary(result) + "\n")
    return result
