"""A meeting across workers and nodes (issue 13): what a second worker buys, and how long
the people of a node that dies take to be back.

**1 worker vs 2 workers.** Two Tertulia server processes, A and B, form one deployment
(one PostgreSQL database and one Redis prefix of their own, created for the run and removed
after it), each on its own port, both pinned to the server CPU; the load bots run in one
process on the other CPU, so they do not compete with the server. That is what
`tertulia serve --workers 2` runs, minus the kernel's choice of worker: the bench needs a
known split. For each K the same bots, clip and settings (everyone receives everyone, as
bench.capacity) meet in turn

* on **1 worker**: every bot joins A (B runs, with nobody in the meeting);
* on **2 workers**: odd bots join A, even bots join B, so each worker pipes every
  publication of its people to the other (2K piped streams).

The setups alternate window by window (1, 2, 2, 1, 1, 2, …), each window in a fresh meeting
after the bots joined and warmed up, so drift on a shared machine hits both alike; windows
that other processes disturbed are flagged and retried; figures are medians. Each worker's
CPU is read from its own process. The busiest worker decides how large a meeting may grow
once each worker has a core of its own, so the figure that matters is the single worker's
CPU over the busiest of the two; the sum is what the split costs in all (pipes, and each
process's fixed costs twice). Both workers share one core here: their CPU times are each
one's own work, but they also contend for that core (see docs/performance.md).

**A node killed.** Two nodes (A and B again), a meeting of `--people` protocol clients
(client.participant, in this process: the load bots do not reconnect) split across them.
One window of every receiver's camera frame rate from every publisher; then B is killed
with SIGKILL, and each of B's people does what the browser does (web/js/protocol.js): on the
dropped socket, wait 0.5 s (doubling up to 5 s per failed attempt) and join again, here at
A's address. Timed from the kill: the socket drop, the welcome, receiving the camera and
microphone of everyone who stayed, and the meeting whole again (everyone receives everyone).

    .venv/bin/python -m bench.workers [--ks 2,4,6,8,10] [--window 10] [--repeats 3] [--people 6]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import redis.asyncio as aioredis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from client.loadtest import procstat
from client.loadtest.accounts import Api
from client.loadtest.media import ClipSchedule, KeyVariants, ScheduledClipTrack, load_key_variants
from client.loadtest.report import build_report
from client.loadtest.runner import LoadTest, Plan
from client.loadtest.server import LocalServer
from client.loadtest.stats import median
from client.media import SOURCE_KIND, wait_connected
from client.participant import Participant
from rtp.synthetic import Clip, ClipTrack, load_clip
from rtp.types import Source

from .capacity import EVERYONE_TO_EVERYONE
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
from .machine import Machine

log = logging.getLogger("bench.workers")
SINGLE, SPLIT = "1 worker", "2 workers"
LOOPBACK = ("127.0.0.1",)
DATABASE_URL = os.environ.get(
    "TERTULIA_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TERTULIA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BOTH: tuple[Source, ...] = ("camera", "microphone")
RECONNECT_FIRST_S, RECONNECT_MAX_S = 0.5, 5.0  # the browser's back-off (web/js/protocol.js)


@dataclass(frozen=True, kw_only=True)
class Options(SweepOptions):
    ks: tuple[int, ...]
    database_url: str  # where the run's own database is created (and dropped)
    redis_url: str
    people: int  # the node kill: people in the meeting, half on each node (0: skipped)
    kill_window: float


# ------------------------------------------------------------------------ the deployment


@dataclass(frozen=True)
class Deployment:
    """Workers A and B of one deployment, both signed in as the bench's administrator."""

    a: Served
    b: Served
    prefix: str  # of every Redis key of the run

    def url(self, setup: str, bot: int) -> str:
        """Where bot number `bot` (from 1) joins: A, or alternately A and B."""
        on_b = setup == SPLIT and bot % 2 == 0
        return (self.b if on_b else self.a).server.base_url


@asynccontextmanager
async def deployment(opts: Options, root: Path, bots: int) -> AsyncIterator[Deployment]:
    """A fresh database and Redis prefix, then workers A (with the administrator and `bots`
    bot accounts) and B; everything is stopped and removed when the block ends."""
    name = f"bench_workers_{secrets.token_hex(4)}"
    prefix = f"bench-workers-{secrets.token_hex(4)}"
    admin = create_async_engine(opts.database_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    env = {
        **EVERYONE_TO_EVERYONE,
        "TERTULIA_DATABASE_URL": make_url(opts.database_url)
        .set(database=name)
        .render_as_string(hide_password=False),
        "TERTULIA_REDIS_URL": opts.redis_url,
        "TERTULIA_REDIS_PREFIX": prefix,
        # one process per server: with Redis and PostgreSQL `serve` would otherwise start
        # one worker per core behind its port, and the split would be the kernel's
        "TERTULIA_WORKERS": "1",
        **dict(opts.server_env),
    }
    try:
        async with serving(opts, root / "a", env, bots) as a:
            b = LocalServer(
                root / "b",
                cpus=(opts.server_cpu,) if opts.pin else (),
                env=env,
                source=opts.server_source,
            )
            await asyncio.to_thread(b.start)
            try:
                async with Api(b.base_url) as api:
                    yield Deployment(a, Served(b, api, a.admin, a.tokens), prefix)
            finally:
                await asyncio.to_thread(b.stop)
    finally:
        await _forget(opts.redis_url, prefix)
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _forget(url: str, prefix: str) -> None:
    """Delete what a killed worker left in Redis (the others clean up after themselves)."""
    client: Any = aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# ------------------------------------------------------------------------ 1 vs 2 workers


@dataclass
class Row(Measured):
    """One K on one setup."""

    setup: str
    k: int
    # per window, per worker: event-loop wake-ups per second, and the kernel's share of its
    # CPU (% of that worker's time spent in system calls: sends, receives, the scheduler)
    wakeups: list[tuple[float, ...]] = field(default_factory=list)
    system_share: list[tuple[float, ...]] = field(default_factory=list)

    def on_b(self) -> set[str]:
        """The bots (report names) that joined worker B."""
        return {f"bot-{n}" for n in range(2, self.k + 1, 2)} if self.setup == SPLIT else set()

    def worker_cpu(self, index: int) -> float | None:
        return self.med(lambda w: w.server_cpus[index])

    def counter_rate(self, key: str) -> float | None:
        """A counter of both workers together, per second of window (median)."""

        def rate(w: Window) -> float | None:
            pairs = [(s0, s1) for s0, s1 in w.server_stats if s0 is not None and s1 is not None]
            if len(pairs) != len(w.server_stats):
                return None
            return sum(s1[key] - s0[key] for s0, s1 in pairs) / w.seconds

        return self.med(rate)

    def pipe_streams(self) -> float | None:
        """Piped streams at the end of the window, both workers' incoming (median)."""

        def streams(w: Window) -> float | None:
            ends = [s1 for _, s1 in w.server_stats]
            return None if None in ends else sum(s["pipe_streams_in"] for s in ends if s)

        return self.med(streams)

    def latency_p50(self, piped: bool) -> float | None:
        """Median over video streams of each stream's frame latency p50: the streams that
        crossed a pipe (publisher and subscriber on different workers), or the others."""
        on_b = self.on_b()

        def pick(w: Window) -> float | None:
            values = [
                s["latency_ms"]["p50"]
                for s in w.report["streams"]
                if s["kind"] == "video"
                and s.get("latency_ms")
                and s["latency_ms"]["p50"] is not None
                and ((s["subscriber"] in on_b) != (s["publisher"] in on_b)) == piped
            ]
            return statistics.median(values) if values else None

        return self.med(pick)

    def per_worker(self, series: list[tuple[float, ...]], index: int) -> float | None:
        """One worker's figure of a per-window series, median over the windows used."""
        used = {id(w) for w in self.used()}
        pairs = zip(self.windows, series, strict=True)
        return median([values[index] for w, values in pairs if id(w) in used])

    def figures(self) -> dict[str, Any]:
        busiest = self.med(lambda w: max(w.server_cpus))
        total = self.med(lambda w: w.server_cpu)
        bots, peak, _ = self.bots_load()
        return {
            "setup": self.setup,
            "k": self.k,
            "windows": len(self.windows),
            "worker_a_cpu_percent": rounded(self.worker_cpu(0), 1),
            "worker_b_cpu_percent": rounded(self.worker_cpu(1), 1),
            "sum_cpu_percent": rounded(total, 1),
            "busiest_cpu_percent": rounded(busiest, 1),
            "rss_mb": rounded(self.med(lambda w: w.server_rss_mb), 0),
            "bots_cpu_percent": rounded(bots, 1),
            "bots_cpu_peak_percent": rounded(peak, 1),
            "others_cpu_percent": rounded(self.med(lambda w: w.others_cpu), 1),
            "worker_a_wakeups_per_s": rounded(self.per_worker(self.wakeups, 0), 0),
            "worker_b_wakeups_per_s": rounded(self.per_worker(self.wakeups, 1), 0),
            "worker_a_system_percent": rounded(self.per_worker(self.system_share, 0), 1),
            "worker_b_system_percent": rounded(self.per_worker(self.system_share, 1), 1),
            # The bots do the same work in both setups, so their CPU gauges how fast this
            # shared VM ran in each window: the busiest worker's CPU per bots' CPU.
            "busiest_per_bots_cpu": rounded(
                self.med(lambda w: max(w.server_cpus) / w.bots_cpu if w.bots_cpu else None), 3
            ),
            "received_packets_per_s": rounded(self.counter_rate("packets_received"), 0),
            "pipe_streams": rounded(self.pipe_streams(), 0),
            "piped_packets_per_s": rounded(self.counter_rate("packets_piped_in"), 0),
            "forwarded_packets_per_s": rounded(self.med(lambda w: w.forwarded_packets_per_s), 0),
            "video_fps_mean": rounded(self.reported("totals", "video", "rate_mean"), 2),
            "video_fps_min": rounded(self.reported("totals", "video", "rate_min"), 2),
            "video_ratio_min": rounded(self.reported("totals", "video", "ratio_min")),
            "audio_pps_mean": rounded(self.reported("totals", "audio", "rate_mean"), 1),
            "video_loss": rounded(self.reported("totals", "video", "loss"), 4),
            "latency_p50_ms": rounded(self.reported("totals", "latency_ms", "p50"), 1),
            "latency_p95_ms": rounded(self.reported("totals", "latency_ms", "p95"), 1),
            "latency_direct_p50_ms": rounded(self.latency_p50(piped=False), 2),
            "latency_piped_p50_ms": rounded(self.latency_p50(piped=True), 2),
            "join_to_first_frame_s": self.first_frame,
            "per_window": [
                {
                    **w.cpu_figures(),
                    "worker_cpu_percent": [round(c, 1) for c in w.server_cpus],
                    "worker_wakeups_per_s": [round(v) for v in woken],
                    "worker_system_percent": [round(v, 1) for v in system],
                    "worker_pipe_streams_in": [
                        s1["pipe_streams_in"] if s1 else None for _, s1 in w.server_stats
                    ],
                    "video_fps_mean": w.report["totals"]["video"]["rate_mean"],
                    "video_fps_min": w.report["totals"]["video"]["rate_min"],
                    "disturbed": w.disturbed,
                }
                for w, woken, system in zip(
                    self.windows, self.wakeups, self.system_share, strict=True
                )
            ],
            "flags": self.flags(total, "mesh incomplete after 30 s"),
            "error": self.error,
        }


async def measure(row: Row, dep: Deployment, opts: Options, attempt: int) -> None:
    """One window of `row` in a meeting of its own: the bots join, warm up, are measured."""
    k, label = row.k, f"{row.setup} K={row.k}"
    async with row.meeting(dep.a, opts, f"workers {label}", k, label, log) as (room, machine):
        plan = Plan(
            base_url=dep.a.server.base_url,
            room_id=room,
            tokens=tuple(dep.a.tokens[:k]),
            processes=opts.processes,
            clip_dir=opts.clip_dir,
            base_urls=tuple(dep.url(row.setup, n) for n in range(1, k + 1)),
        )
        async with LoadTest(plan) as test:
            joined = await test.wait_joined(timeout=30 + k * plan.join_interval)
            if not await test.wait_mesh(30):
                log.warning("%s: not every bot receives every other after 30 s", label)
                row.mesh_complete = False
            await asyncio.sleep(opts.warmup)
            row.join_peak = max(row.join_peak, test.reset_peak())
            pids = (dep.a.server.pid, dep.b.server.pid)
            woken = [procstat.wakeups(pid) for pid in pids]
            times = [procstat.process_cpu_times(pid) for pid in pids]
            window = await measure_window(
                test, dep.a, machine, opts, lambda raw: build_report(raw, joined), also=(dep.b,)
            )
            row.windows.append(window)
            row.wakeups.append(
                tuple(
                    (procstat.wakeups(pid) - w0) / window.seconds
                    for pid, w0 in zip(pids, woken, strict=True)
                )
            )
            row.system_share.append(
                tuple(_system_share(pid, t0) for pid, t0 in zip(pids, times, strict=True))
            )
            video = window.report["totals"]["video"]
            log.info(
                "%s window %d: A %.1f%%, B %.1f%%, bots %.0f%%, others %.0f%%, "
                "video %.1f fps (min %.1f)%s",
                label,
                attempt,
                window.server_cpus[0],
                window.server_cpus[1],
                window.bots_cpu,
                window.others_cpu,
                video["rate_mean"] or 0,
                video["rate_min"] or 0,
                " DISTURBED" if window.disturbed else "",
            )
            finals = await test.stop()
            if not row.first_frame:
                final = build_report([], joined, finals)
                row.first_frame = final["totals"]["join_to_first_frame_s"]


def _system_share(pid: int, before: tuple[float, float]) -> float:
    """% of a process's CPU since `before` (user, system) that was system time."""
    user, system = procstat.process_cpu_times(pid)
    spent = user - before[0] + system - before[1]
    return (system - before[1]) / spent * 100 if spent > 0 else 0.0


def _calm(row: Row) -> int:
    return sum(1 for w in row.windows if not w.disturbed)


async def measure_k(k: int, dep: Deployment, opts: Options) -> tuple[Row, Row]:
    """The two setups at one K, alternating window by window (ABBA…), until each has
    `repeats` undisturbed windows (at most twice as many attempts)."""
    single, split = Row(SINGLE, k), Row(SPLIT, k)
    for attempt in range(1, 2 * opts.repeats + 1):
        order = (single, split) if attempt % 2 else (split, single)
        for row in order:
            if row.error is None and _calm(row) < opts.repeats:
                await measure(row, dep, opts, attempt)
        if all(r.error is not None or _calm(r) >= opts.repeats for r in (single, split)):
            break
    return single, split


def comparison(single: dict[str, Any], split: dict[str, Any]) -> dict[str, Any]:
    """What the second worker buys at one K, from the two rows' medians."""
    one, busiest, total = (
        single["worker_a_cpu_percent"],
        split["busiest_cpu_percent"],
        split["sum_cpu_percent"],
    )
    streams = split["pipe_streams"]
    extra = total - one if total is not None and one is not None else None
    direct, piped = split["latency_direct_p50_ms"], split["latency_piped_p50_ms"]
    gauge = (single["busiest_per_bots_cpu"], split["busiest_per_bots_cpu"])
    return {
        "k": single["k"],
        "single_cpu_percent": one,
        "busiest_cpu_percent": busiest,
        "ratio_single_to_busiest": rounded(one / busiest, 2) if one and busiest else None,
        # the same ratio with each window's CPU taken per bots' CPU (machine speed gauged)
        "ratio_gauged_by_bots": rounded(gauge[0] / gauge[1], 2) if gauge[0] and gauge[1] else None,
        "sum_cpu_percent": total,
        "sum_to_single": rounded(total / one, 2) if total and one else None,
        "extra_cpu_percent": rounded(extra, 1),
        "pipe_streams": streams,
        "extra_cpu_per_piped_stream_percent": rounded(extra / streams, 3)
        if extra is not None and streams
        else None,
        "extra_us_per_piped_packet": rounded(extra * 1e4 / split["piped_packets_per_s"], 1)
        if extra is not None and split["piped_packets_per_s"]
        else None,
        "latency_added_p50_ms": rounded(piped - direct, 2)
        if piped is not None and direct is not None
        else None,
    }


# ------------------------------------------------------------------------ a node killed


@dataclass
class Person:
    """One protocol client of the node-kill meeting, and where it is."""

    name: str
    token: str
    url: str
    participant: Participant | None = None
    variants: KeyVariants | None = None  # keyframes to answer a request with
    ids: list[str] = field(default_factory=list)  # participant ids, one per connection
    left_seen: dict[str, float] = field(default_factory=dict)  # id -> `participant-left`

    @property
    def pid(self) -> str:
        """The participant id of the current connection."""
        return self.ids[-1]

    async def join(self, room: str, clip: Clip) -> None:
        """Join at `url`, publishing the clip as the load bots do: a keyframe request is
        answered with a keyframe, as a browser's encoder does (a plain clip would make a
        new receiver wait up to its 1 s GOP for the first picture)."""

        def track(clip: Clip, source: Source) -> ClipTrack:
            pid = self.participant.participant_id if self.participant else ""
            schedule = ClipSchedule.for_participant(clip, pid)
            return ScheduledClipTrack(clip, SOURCE_KIND[source], schedule, self.variants)

        self.participant = Participant(
            self.url, room, self.token, clip, ice_host_addresses=LOOPBACK, track_factory=track
        )
        self.participant.signaling.on("participant-left", self._left)
        await asyncio.wait_for(self.participant.join(), 20)
        self.ids.append(self.participant.participant_id)

    def _left(self, event: dict[str, Any]) -> None:
        self.left_seen.setdefault(str(event.get("participant_id")), time.monotonic())

    def first_frame(self, publisher: str, source: Source, since: float) -> float | None:
        """When the first frame of `publisher`'s `source` at or after `since` arrived on
        the slot that carries it now (None: not yet, or not connected)."""
        media = self.participant.media if self.participant is not None else None
        probe = media.probe_for(publisher, source) if media is not None else None
        return None if probe is None else probe.first_frame_since(since)

    def camera_fps(self, publisher: str, t0: float, seconds: float) -> float:
        media = self.participant.media if self.participant is not None else None
        probe = media.probe_for(publisher, "camera") if media is not None else None
        return 0.0 if probe is None else probe.frames_since(t0) / seconds


async def _until(what: str, timeout: float, done: Any) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def _everyone_receives(people: Sequence[Person], since: float) -> float | None:
    """When every person got a camera frame of every other (at or after `since`), or None."""
    times = [p.first_frame(q.pid, "camera", since) for p in people for q in people if q is not p]
    return None if any(t is None for t in times) else max(t for t in times if t is not None)


async def fps_window(
    people: Sequence[Person], seconds: float, fps: float, quiet_threshold: float
) -> dict[str, Any]:
    """Every receiver's camera frame rate from every other person over one window, and
    what other processes used meanwhile (the people share this process and its core)."""
    machine = Machine(os.getpid())
    before = machine.sample()
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    others, _ = machine.others(before, machine.sample())
    rates = {
        (p.name, q.name, p.url == q.url): p.camera_fps(q.pid, t0, elapsed)
        for p in people
        for q in people
        if q is not p
    }
    worst = {p.name: min(r for (sub, _, _), r in rates.items() if sub == p.name) for p in people}
    return {
        "seconds": round(elapsed, 2),
        "streams": len(rates),
        "fps_mean": round(statistics.mean(rates.values()), 2),
        "fps_min": round(min(rates.values()), 2),
        "fps_mean_direct": _mean(r for (_, _, same), r in rates.items() if same),
        "fps_mean_piped": _mean(r for (_, _, same), r in rates.items() if not same),
        "worst_per_receiver": {name: round(r, 2) for name, r in worst.items()},
        "every_receiver_at_90_percent": all(r >= PASS_RATIO * fps for r in rates.values()),
        "others_cpu_percent": round(others, 1),
        "disturbed": others > quiet_threshold,
    }


def _mean(values: Iterable[float]) -> float | None:
    listed = list(values)
    return round(statistics.mean(listed), 2) if listed else None


async def come_back(
    person: Person, room: str, clip: Clip, url: str, killed: float
) -> dict[str, Any]:
    """What the browser does when its socket drops: wait 0.5 s, doubling up to 5 s after
    each failed attempt, and join again, here at the surviving node's `url`."""
    assert person.participant is not None
    await asyncio.wait_for(person.participant.signaling.closed.wait(), 30)
    dropped = time.monotonic()
    await person.participant.close()
    person.url = url
    attempts = 0
    while True:
        await asyncio.sleep(min(RECONNECT_FIRST_S * 2**attempts, RECONNECT_MAX_S))
        attempts += 1
        try:
            await person.join(room, clip)
            break
        except Exception as exc:
            log.info("%s: attempt %d to join again failed: %s", person.name, attempts, exc)
            if person.participant is not None:
                with contextlib.suppress(Exception):
                    await person.participant.close()
            if time.monotonic() - killed > 60:
                raise
    welcome = time.monotonic()
    assert person.participant is not None
    await wait_connected(person.participant.peer.pc, 30)
    return {
        "name": person.name,
        "socket_dropped_s": round(dropped - killed, 3),
        "attempts": attempts,
        "welcome_s": round(welcome - killed, 3),
        "media_connected_s": round(time.monotonic() - killed, 3),
    }


async def node_kill(dep: Deployment, opts: Options, clip: Clip) -> dict[str, Any]:
    """A meeting split over nodes A and B; B killed; B's people back on A."""
    n = opts.people
    room = await dep.a.api.create_meeting(dep.a.admin, "workers: a node killed", n)
    a_url, b_url = dep.a.server.base_url, dep.b.server.base_url
    variants = await asyncio.to_thread(load_key_variants, opts.clip_dir, clip)
    people = [
        Person(f"person-{i + 1}", dep.a.tokens[i], a_url if i % 2 == 0 else b_url, None, variants)
        for i in range(n)
    ]
    result: dict[str, Any] = {"people": n, "on_a": (n + 1) // 2, "on_b": n // 2}
    try:
        for person in people:
            await person.join(room, clip)
        t0 = time.monotonic()
        await _until("everyone to receive everyone", 30, lambda: _everyone_receives(people, t0))
        await asyncio.sleep(2.0)  # settle
        result["before"] = await fps_window(
            people, opts.kill_window, clip.fps, opts.quiet_threshold
        )
        log.info("node kill, before: %s", result["before"])
        stay = [p for p in people if p.url == a_url]
        move = [p for p in people if p.url == b_url]
        ghosts = {p.pid for p in move}
        assert dep.b.server.process is not None
        doomed = procstat.descendants(dep.b.server.pid)  # the node: the process and any child
        killed = time.monotonic()
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        returns = await asyncio.gather(*(come_back(p, room, clip, a_url, killed) for p in move))

        def back_at(person: Person, sources: tuple[Source, ...] = BOTH) -> float | None:
            times = [person.first_frame(s.pid, source, killed) for s in stay for source in sources]
            return None if None in times else max(t for t in times if t is not None)

        await _until(
            "B's people to receive everyone who stayed",
            60,
            lambda: all(back_at(p) is not None for p in move),
        )
        for record, person in zip(returns, move, strict=True):
            at, heard = back_at(person), back_at(person, ("microphone",))
            record["back_s"] = round(at - killed, 3) if at is not None else None
            record["audio_back_s"] = round(heard - killed, 3) if heard is not None else None
        await _until(
            "everyone to receive everyone again",
            60,
            lambda: _everyone_receives(people, killed + 0.1),
        )
        whole = _everyone_receives(people, killed + 0.1)
        assert whole is not None
        lease = float(dict(opts.server_env).get("TERTULIA_WORKER_LEASE_SECONDS", 10))
        await _until(
            "the dead node's people to be announced gone",
            lease + 30,
            lambda: all(ghosts <= set(s.left_seen) for s in stay),
        )
        gone = max(s.left_seen[g] for s in stay for g in ghosts)
        backs = [r["back_s"] for r in returns if r["back_s"] is not None]
        result.update(
            {
                "returns": list(returns),
                "back_median_s": round(statistics.median(backs), 3) if backs else None,
                "back_max_s": round(max(backs), 3) if backs else None,
                "whole_s": round(whole - killed, 3),
                "ghosts_gone_s": round(gone - killed, 3),
                "lease_s": lease,
            }
        )
        await asyncio.sleep(2.0)
        result["after"] = await fps_window(people, opts.kill_window, clip.fps, opts.quiet_threshold)
        log.info("node kill: %s", {k: v for k, v in result.items() if k != "before"})
    except Exception as exc:
        log.error("node kill failed: %s", exc)
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await asyncio.gather(
            *(p.participant.leave() for p in people if p.participant is not None),
            return_exceptions=True,
        )
        with contextlib.suppress(Exception):
            await dep.a.api.end_meeting(dep.a.admin, room)
    return result


# ------------------------------------------------------------------------ output


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'setup':<10}{'K':>3} {'A CPU%':>7} {'B CPU%':>7} {'sum%':>6} {'busiest%':>9} "
        f"{'pipes':>6} {'piped pps':>10} {'bots%':>6} {'fps mean':>9} {'fps min':>8} "
        f"{'lat p50':>8} {'lat p95':>8}  flags"
    )
    lines = [header, "-" * len(header)]
    for f in rows:
        lines.append(
            f"{f['setup']:<10}{f['k']:>3} {cell(f['worker_a_cpu_percent']):>7} "
            f"{cell(f['worker_b_cpu_percent']):>7} {cell(f['sum_cpu_percent']):>6} "
            f"{cell(f['busiest_cpu_percent']):>9} {cell(f['pipe_streams'], '.0f'):>6} "
            f"{cell(f['piped_packets_per_s'], '.0f'):>10} {cell(f['bots_cpu_percent']):>6} "
            f"{cell(f['video_fps_mean']):>9} {cell(f['video_fps_min']):>8} "
            f"{cell(f['latency_p50_ms']):>8} {cell(f['latency_p95_ms']):>8}  "
            f"{', '.join(f['flags'])}"
        )
    return "\n".join(lines)


def ratio_table(pairs: list[dict[str, Any]]) -> str:
    header = (
        f"{'K':>3} {'single%':>8} {'busiest%':>9} {'single/busiest':>15} {'gauged':>7} {'sum%':>6} "
        f"{'sum/single':>11} {'pipes':>6} {'extra%/pipe':>12} {'us/piped pkt':>13} "
        f"{'hop ms (p50)':>13}"
    )
    lines = [header, "-" * len(header)]
    for p in pairs:
        lines.append(
            f"{p['k']:>3} {cell(p['single_cpu_percent']):>8} {cell(p['busiest_cpu_percent']):>9} "
            f"{cell(p['ratio_single_to_busiest'], '.2f'):>15} "
            f"{cell(p['ratio_gauged_by_bots'], '.2f'):>7} {cell(p['sum_cpu_percent']):>6} "
            f"{cell(p['sum_to_single'], '.2f'):>11} {cell(p['pipe_streams'], '.0f'):>6} "
            f"{cell(p['extra_cpu_per_piped_stream_percent'], '.3f'):>12} "
            f"{cell(p['extra_us_per_piped_packet'], '.0f'):>13} "
            f"{cell(p['latency_added_p50_ms'], '.2f'):>13}"
        )
    return "\n".join(lines)


def load_table(rows: list[dict[str, Any]]) -> str:
    """Where the CPU goes: each worker's wake-ups, its kernel share, and the gauge."""
    header = (
        f"{'setup':<10}{'K':>3} {'wake-ups/s A':>13} {'B':>6} {'system% A':>10} {'B':>6} "
        f"{'rx pps':>7} {'fwd pps':>8} {'busiest/bots':>13}"
    )
    lines = [header, "-" * len(header)]
    for f in rows:
        lines.append(
            f"{f['setup']:<10}{f['k']:>3} {cell(f['worker_a_wakeups_per_s'], '.0f'):>13} "
            f"{cell(f['worker_b_wakeups_per_s'], '.0f'):>6} "
            f"{cell(f['worker_a_system_percent']):>10} {cell(f['worker_b_system_percent']):>6} "
            f"{cell(f['received_packets_per_s'], '.0f'):>7} "
            f"{cell(f['forwarded_packets_per_s'], '.0f'):>8} "
            f"{cell(f['busiest_per_bots_cpu'], '.3f'):>13}"
        )
    return "\n".join(lines)


def largest_passing(rows: list[dict[str, Any]], setup: str) -> int | None:
    return max(
        (
            r["k"]
            for r in rows
            if r["setup"] == setup
            and not r["error"]
            and r["video_ratio_min"] is not None
            and r["video_ratio_min"] >= PASS_RATIO
        ),
        default=None,
    )


def kill_lines(kill: dict[str, Any] | None) -> list[str]:
    if not kill:
        return ["node kill: skipped"]
    if "error" in kill and "before" not in kill:
        return [f"node kill: failed: {kill['error']}"]
    lines = []
    for when in ("before", "after"):
        f = kill.get(when)
        if f:
            lines.append(
                f"node kill, {when}: {kill['people']} people ({kill['on_a']} on A, "
                f"{kill['on_b']} on B before), {f['streams']} camera streams, "
                f"fps mean {f['fps_mean']} (direct {f['fps_mean_direct']}, piped "
                f"{f['fps_mean_piped']}), worst {f['fps_min']}; every receiver >= 90%: "
                f"{f['every_receiver_at_90_percent']}; others {f['others_cpu_percent']}% of a "
                f"core{' (disturbed)' if f['disturbed'] else ''}"
            )
    for r in kill.get("returns", []):
        lines.append(
            f"  {r['name']}: socket dropped {r['socket_dropped_s']:.3f} s after the kill, "
            f"welcome {r['welcome_s']:.2f} s ({r['attempts']} attempt(s)), media connected "
            f"{r['media_connected_s']:.2f} s, hearing everyone who stayed "
            f"{cell(r.get('audio_back_s'), '.2f')} s, hearing and seeing them "
            f"{cell(r.get('back_s'), '.2f')} s"
        )
    if "back_median_s" in kill:
        lines.append(
            f"back in the meeting: median {cell(kill['back_median_s'], '.2f')} s, max "
            f"{cell(kill['back_max_s'], '.2f')} s; everyone receiving everyone again "
            f"{kill['whole_s']:.2f} s; the dead node's people announced gone "
            f"{kill['ghosts_gone_s']:.1f} s (lease {kill['lease_s']:.0f} s)"
        )
    if "error" in kill:
        lines.append(f"node kill: failed: {kill['error']}")
    return lines


def summary(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [table(rows), "", ratio_table(result["comparison"]), "", load_table(rows), ""]
    for setup in (SINGLE, SPLIT):
        best = largest_passing(rows, setup)
        lines.append(
            f"largest K with every subscriber at >= 90% of the sent frame rate, {setup}: "
            f"{best if best is not None else 'none'}"
        )
    idle = result["idle_cpu_percent"]
    lines.append(f"idle workers (nobody connected): A {idle[0]:.1f}%, B {idle[1]:.1f}% of a core")
    lines.extend(kill_lines(result["node_kill"]))
    lines.append("")
    lines.append(machine_line(result["machine"]) + " (both workers on the server CPU)")
    lines.append(f"command: {result['command']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ main


def parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Options]:
    p = argparse.ArgumentParser(
        prog="python -m bench.workers", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--ks", default="2,4,6,8,10", help="participant counts (even), in order")
    p.add_argument(
        "--people", type=int, default=6, help="node kill: people, half per node (0 skips it)"
    )
    p.add_argument(
        "--kill-window", type=float, default=10.0, help="node kill: seconds of fps measured"
    )
    p.add_argument("--database-url", default=DATABASE_URL, help="PostgreSQL (a database per run)")
    p.add_argument("--redis-url", default=REDIS_URL)
    add_measuring_options(
        p,
        repeats="undisturbed windows per K and setup (median)",
        quiet_threshold="%% of one core other processes may use before a window counts as "
        "disturbed",
        stop_below="stop after a K whose worst stream got less than this share of the frames",
    )
    # shorter than bench.capacity's: each window needs the bots to join a fresh meeting
    p.set_defaults(window=10.0, warmup=3.0, quiet_wait=30.0)
    add_server_options(
        p,
        server_source="run the workers from this checkout",
        server_env="a setting for both workers, e.g. TERTULIA_WORKER_LEASE_SECONDS=5 (repeatable)",
        clip_dir="cache of the encoded clip",
    )
    args = p.parse_args(argv)
    ks = ints(args.ks)
    if any(k < 2 or k % 2 for k in ks):
        p.error("--ks: even counts of at least 2 (half the bots on each worker)")
    if args.people and args.people < 2:
        p.error("--people: at least 2 (one on each node), or 0")
    opts = Options(
        ks=ks,
        database_url=args.database_url,
        redis_url=args.redis_url,
        people=args.people,
        kill_window=args.kill_window,
        **sweep_fields(args, p),
    )
    return args, opts


async def run(opts: Options, command: str) -> dict[str, Any]:
    clips: list[Clip] = []
    info = await prepare(opts, lambda: clips.append(load_clip(opts.clip_dir, "VP8", 10.0)))
    rows: list[Row] = []
    pairs: list[dict[str, Any]] = []
    kill: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="tertulia-workers-") as tmp:
        root = opts.data_dir or Path(tmp)
        async with deployment(opts, root, max((*opts.ks, opts.people))) as dep:
            idle = [await idle_cpu(dep.a.server), await idle_cpu(dep.b.server)]
            log.info("idle workers: A %.1f%%, B %.1f%% of a core", *idle)
            for k in opts.ks:
                log.info("K=%d", k)
                single, split = await measure_k(k, dep, opts)
                rows += [single, split]
                pair = comparison(single.figures(), split.figures())
                pairs.append(pair)
                log.info("K=%d: %s", k, pair)
                ratios = [r.figures()["video_ratio_min"] for r in (single, split)]
                if any(r.error for r in (single, split)) or all(
                    ratio is not None and ratio < opts.stop_below for ratio in ratios
                ):
                    log.warning("stopping the sweep at K=%d (errors or streams starved)", k)
                    break
                bots, _, saturated = single.bots_load()
                if saturated and bots is not None and bots >= 90 * single.bots_cores:
                    log.warning("stopping the sweep at K=%d: the bots are saturated", k)
                    break
            if opts.people:
                kill = await node_kill(dep, opts, clips[0])
    figures = [row.figures() for row in rows]
    return {
        "machine": info,
        "command": command,
        "settings": {
            **measuring_settings(opts),
            "server_env": {**EVERYONE_TO_EVERYONE, **dict(opts.server_env)},
            "workers_cpu": opts.server_cpu if opts.pin else None,
        },
        "idle_cpu_percent": [round(v, 2) for v in idle],
        "rows": figures,
        "comparison": pairs,
        "largest_k_at_90_percent": {s: largest_passing(figures, s) for s in (SINGLE, SPLIT)},
        "node_kill": kill,
    }


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args, opts = parse(argv)
    result = run_main("bench.workers", args, argv, out, lambda command: run(opts, command), summary)
    failed = any(r["error"] for r in result["rows"]) or bool(
        (result["node_kill"] or {}).get("error")
    )
    return 1 if failed or (opts.ks and not result["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
