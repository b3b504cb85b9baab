"""Coordinates bot processes: start them, wait for the mesh, measure windows, stop.

Used by `tertulia loadtest` and by `bench/capacity.py`. The bots never run in this
process: each worker process (`client.loadtest.worker`) runs its share on one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.media import MIC_LEVEL
from rtp.synthetic import load_clip

from .media import load_key_variants

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    base_url: str
    room_id: str
    tokens: tuple[str, ...]
    processes: int = 1
    ice_host_addresses: tuple[str, ...] = ("127.0.0.1",)
    clip_dir: Path = Path(".")
    clip_seconds: float = 10.0
    codec: str = "VP8"
    decode_sample: bool = False
    join_interval: float = 0.2
    cpus: tuple[int, ...] = ()
    log_level: str = "WARNING"
    clip_size: tuple[int, int] = (640, 480)
    clip_fps: int = 30
    clip_bitrate: int = 600_000
    key_variants: bool = True  # answer keyframe requests with a keyframe (media.KeyVariants)
    last_n: int | None = None  # send `receive` {last_n, visible: null} right after joining
    audio_level: int = MIC_LEVEL  # every microphone's level until a speaking turn changes it
    event_loop: str = "uvloop"  # or "asyncio" (the bots' processes)
    # Where each bot joins, in the order of `tokens` (empty: every bot at `base_url`): a
    # meeting across the workers or nodes of one deployment with a known split
    # (bench.workers), where `tertulia serve --workers N` would let the kernel choose.
    base_urls: tuple[str, ...] = ()


@dataclass
class Progress:
    """The latest state of every worker, for a live display."""

    bots: int
    joined: int = 0
    failed: int = 0
    video_rates: list[float] = field(default_factory=list)
    audio_rates: list[float] = field(default_factory=list)
    cpu_percent: float = 0.0


@dataclass
class Joined:
    bot: int
    participant_id: str | None = None
    join_started_at: float | None = None
    joined_at: float | None = None
    error: str | None = None
    process: int = 0
    audio_streams: int | None = None  # the server's M (welcome), None: every microphone
    receive_error: str | None = None  # the server refused our `receive` (its error code)


class LoadTestError(RuntimeError):
    pass


def prepare_media(plan: Plan) -> None:
    """The clip the plan's bots publish, and its keyframe variants, encoded and cached."""
    clip = load_clip(
        plan.clip_dir,
        plan.codec,
        seconds=plan.clip_seconds,
        bitrate=plan.clip_bitrate,
        size=plan.clip_size,
        fps=plan.clip_fps,
    )
    if plan.key_variants:
        load_key_variants(plan.clip_dir, clip)


class _WorkerProcess:
    def __init__(self, number: int, process: asyncio.subprocess.Process) -> None:
        self.number = number
        self.process = process
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.progress: dict[str, Any] = {}
        self.reader: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()


class LoadTest:
    """`async with LoadTest(plan) as test:` starts the bot processes; leaving stops them."""

    def __init__(self, plan: Plan, on_progress: Callable[[Progress], None] | None = None) -> None:
        if not plan.tokens:
            raise LoadTestError("no bot tokens")
        if plan.base_urls and len(plan.base_urls) != len(plan.tokens):
            raise LoadTestError("base_urls must name one server per bot token")
        self.plan = plan
        self.on_progress = on_progress
        self.workers: list[_WorkerProcess] = []
        self.joined: dict[int, Joined] = {}
        self.progress = Progress(bots=len(plan.tokens))
        self.peak_cpu_percent = 0.0  # highest 1 s CPU of all bot processes (reset_peak())
        self._windows = 0
        self._final: list[dict[str, Any]] = []

    async def __aenter__(self) -> LoadTest:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers]

    async def start(self) -> None:
        if self.workers:
            raise RuntimeError("the bots are already started (async with LoadTest starts them)")
        plan = self.plan
        # encode the clip and its keyframe variants once, here, before any bot is due to
        # join (cached: a no-op after the first run)
        await asyncio.to_thread(prepare_media, plan)
        processes = max(1, min(plan.processes, len(plan.tokens)))
        t0 = time.time() + 0.5
        shares: list[list[dict[str, Any]]] = [[] for _ in range(processes)]
        for n, token in enumerate(plan.tokens, start=1):
            bot: dict[str, Any] = {
                "number": n,
                "token": token,
                "join_at": t0 + (n - 1) * plan.join_interval,
            }
            if plan.base_urls:
                bot["base_url"] = plan.base_urls[n - 1]
            shares[(n - 1) % processes].append(bot)
        for number, bots in enumerate(shares):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "client.loadtest.worker",
                plan.event_loop,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=64 * 1024 * 1024,
            )
            worker = _WorkerProcess(number, process)
            worker.reader = asyncio.create_task(self._read(worker))
            self.workers.append(worker)
            await worker.send(
                {
                    "base_url": plan.base_url,
                    "room_id": plan.room_id,
                    "bots": bots,
                    "clip_dir": str(plan.clip_dir),
                    "clip_seconds": plan.clip_seconds,
                    "clip_size": list(plan.clip_size),
                    "clip_fps": plan.clip_fps,
                    "clip_bitrate": plan.clip_bitrate,
                    "key_variants": plan.key_variants,
                    "last_n": plan.last_n,
                    "audio_level": plan.audio_level,
                    "codec": plan.codec,
                    "ice_host_addresses": list(plan.ice_host_addresses),
                    "decode_sample": plan.decode_sample and number == 0,
                    "cpus": list(plan.cpus),
                    "log_level": plan.log_level,
                }
            )

    async def _read(self, worker: _WorkerProcess) -> None:
        assert worker.process.stdout is not None
        try:
            while line := await worker.process.stdout.readline():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("bot process %d: %s", worker.number, line.decode(errors="replace"))
                    continue
                kind = event.get("event")
                if kind == "progress":
                    worker.progress = event
                    self._update_progress()
                elif kind in ("joined", "join-failed"):
                    self.joined[event["bot"]] = Joined(
                        bot=event["bot"],
                        participant_id=event.get("participant_id"),
                        join_started_at=event.get("join_started_at"),
                        joined_at=event.get("joined_at"),
                        error=event.get("error"),
                        process=worker.number,
                        audio_streams=event.get("audio_streams"),
                        receive_error=event.get("receive_error"),
                    )
                    self._update_progress()
                else:
                    await worker.events.put(event)
        finally:
            await worker.events.put({"event": "exit", "code": await worker.process.wait()})

    def _update_progress(self) -> None:
        progress = Progress(bots=len(self.plan.tokens))
        progress.joined = sum(1 for j in self.joined.values() if j.error is None)
        progress.failed = sum(1 for j in self.joined.values() if j.error is not None)
        for worker in self.workers:
            progress.video_rates += worker.progress.get("video_rates", [])
            progress.audio_rates += worker.progress.get("audio_rates", [])
            progress.cpu_percent += worker.progress.get("cpu_percent", 0.0)
        self.progress = progress
        self.peak_cpu_percent = max(self.peak_cpu_percent, progress.cpu_percent)
        if self.on_progress is not None:
            self.on_progress(progress)

    def reset_peak(self) -> float:
        """The peak bots' CPU since the last reset, and start a new one."""
        peak, self.peak_cpu_percent = self.peak_cpu_percent, 0.0
        return peak

    async def wait_joined(self, timeout: float) -> list[Joined]:
        """Until every bot joined or failed; raises if none joined."""
        deadline = time.monotonic() + timeout
        while len(self.joined) < len(self.plan.tokens):
            self._check_alive()
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        ok = [j for j in self.joined.values() if j.error is None]
        if not ok:
            errors = sorted({j.error or "" for j in self.joined.values()}) or ["timed out"]
            raise LoadTestError(f"no bot could join: {'; '.join(errors)}")
        return sorted(self.joined.values(), key=lambda j: j.bot)

    async def wait_mesh(self, timeout: float, per_bot: int | None = None) -> bool:
        """Until every joined bot receives video from every other one, or from `per_bot`
        others (at most everyone else; a last-N receiver), (True), or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            joined = self.progress.joined
            video = [r for r in self.progress.video_rates if r > 0]
            each = joined - 1 if per_bot is None else min(per_bot, joined - 1)
            if joined and len(video) >= joined * each:
                return True
            await asyncio.sleep(0.2)
        return False

    def participant_id(self, bot: int) -> str | None:
        joined = self.joined.get(bot)
        return joined.participant_id if joined is not None and joined.error is None else None

    async def turn(self, turn: int, speaker: int | None, at: float, loud: int, quiet: int) -> None:
        """A speaking turn at wall-clock time `at`: bot `speaker` (a number; None: nobody)
        at level `loud`, every other bot at `quiet`. Sent ahead of time is best: each
        worker waits for `at` itself."""
        pid = None if speaker is None else self.participant_id(speaker)
        if speaker is not None and pid is None:
            log.warning("turn %d: bot %d has not joined; everyone is quiet", turn, speaker)
        message = {"cmd": "turn", "id": turn, "speaker": pid, "at": at, "loud": loud}
        for worker in self.workers:
            await worker.send({**message, "quiet": quiet})

    async def level(self, bot: int, level: int, at: float) -> None:
        """Bot `bot`'s microphone level from wall-clock time `at` on."""
        for worker in self.workers:
            await worker.send({"cmd": "level", "bot": bot, "level": level, "at": at})

    def _check_alive(self) -> None:
        for worker in self.workers:
            if worker.process.returncode is not None:
                raise LoadTestError(
                    f"bot process {worker.number} exited with {worker.process.returncode}"
                )

    async def window(self, seconds: float) -> list[dict[str, Any]]:
        """Measure one window in every worker at once; the workers' raw window events."""
        self._windows += 1
        number = self._windows
        for worker in self.workers:
            await worker.send({"cmd": "window", "id": number, "seconds": seconds})
        return [await self._expect(worker, "window", seconds + 30) for worker in self.workers]

    async def stop(self) -> list[dict[str, Any]]:
        """Stop the bots (they leave the meeting); the workers' `final` events."""
        if self._final:
            return self._final
        for worker in self.workers:
            with contextlib.suppress(ConnectionError):
                await worker.send({"cmd": "stop"})
        self._final = [await self._expect(worker, "final", 60) for worker in self.workers]
        return self._final

    async def _expect(self, worker: _WorkerProcess, kind: str, timeout: float) -> dict[str, Any]:
        while True:
            event = await asyncio.wait_for(worker.events.get(), timeout)
            if event["event"] == kind:
                return event
            if event["event"] == "exit":
                raise LoadTestError(f"bot process {worker.number} exited with {event['code']}")

    async def close(self) -> None:
        for worker in self.workers:
            if worker.process.stdin is not None and not worker.process.stdin.is_closing():
                worker.process.stdin.close()
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 20)
            except TimeoutError:
                log.warning("bot process %d did not exit; killing it", worker.number)
                worker.process.kill()
                await worker.process.wait()
            if worker.reader is not None:
                await asyncio.gather(worker.reader, return_exceptions=True)
