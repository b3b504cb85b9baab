"""A bot process: runs its share of the bots on one event loop (`python -m client.loadtest.worker`).

Protocol with the coordinating process (`runner.py`), one JSON object per line:

* argv: `uvloop` (the default) or `asyncio`, the event loop to run the bots on.
* stdin, first line: the plan (`base_url`, `room_id`, `bots: [{number, token, join_at}]`
  (a bot with its own `base_url` joins there instead),
  `clip_dir`, `clip_seconds`, `clip_size`, `clip_fps`, `clip_bitrate`, `codec`,
  `key_variants`, `last_n`, `audio_level`, `ice_host_addresses`, `decode_sample`, `cpus`,
  `log_level`); then commands: `{"cmd": "window", "id": n, "seconds": s}`,
  `{"cmd": "turn", "id": n, "speaker": participant id or null, "at": wall time, "loud": l,
  "quiet": q}` (a speaking turn: at `at`, the speaker's level goes to `loud`, everyone
  else's to `quiet`), `{"cmd": "level", "bot": n, "level": l, "at": t}`, `{"cmd": "stop"}`.
* stdout, events: `joined` / `join-failed` per bot, `progress` every second, `window` per
  window command, `final` after stop (with every bot's speaker-switch records).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from client.media import MIC_LEVEL
from rtp.synthetic import load_clip

from .bots import Bot
from .media import ClipIndex, load_key_variants
from .stats import Histogram

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 1.0
LAG_TICK_S = 0.05
WINDOW_FIELDS = (
    "frames",
    "packets",
    "expected_packets",
    "bytes",
    "keyframes",
    "discontinuities",
    "identified",
    "assigned_s",
)


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Worker:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        clip = load_clip(
            plan["clip_dir"],
            plan["codec"],
            seconds=plan["clip_seconds"],
            bitrate=plan.get("clip_bitrate", 600_000),
            size=tuple(plan.get("clip_size", (640, 480))),  # type: ignore[arg-type]
            fps=plan.get("clip_fps", 30),
        )
        variants = load_key_variants(plan["clip_dir"], clip) if plan.get("key_variants") else None
        index = ClipIndex(clip, variants)
        ice = tuple(plan["ice_host_addresses"])
        self.bots = [
            Bot(
                b["number"],
                b.get("base_url", plan["base_url"]),
                plan["room_id"],
                b["token"],
                clip,
                index,
                ice_host_addresses=ice,
                variants=variants,
                last_n=plan.get("last_n"),
                audio_level=plan.get("audio_level", MIC_LEVEL),
            )
            for b in plan["bots"]
        ]
        self.by_number = {bot.number: bot for bot in self.bots}
        self.join_at = {b["number"]: float(b["join_at"]) for b in plan["bots"]}
        self.loop_lag = Histogram()
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, commands: asyncio.StreamReader) -> None:
        joins = [asyncio.create_task(self._join(bot)) for bot in self.bots]
        self._tasks += [
            asyncio.create_task(self._progress()),
            asyncio.create_task(self._measure_loop_lag()),
        ]
        try:
            while line := await commands.readline():
                command = json.loads(line)
                if command["cmd"] == "window":
                    self._tasks.append(asyncio.create_task(self._emit_window(command)))
                elif command["cmd"] == "turn":
                    self._at(command["at"], self._turn, command)
                elif command["cmd"] == "level":
                    self._at(command["at"], self._level, command)
                elif command["cmd"] == "stop":
                    break
        finally:
            for task in [*joins, *self._tasks]:
                task.cancel()
            await asyncio.gather(*joins, *self._tasks, return_exceptions=True)
            emit(self._final())
            await asyncio.gather(*(bot.leave() for bot in self.bots), return_exceptions=True)

    async def _emit_window(self, command: dict[str, Any]) -> None:
        emit(await self._window(command["id"], float(command["seconds"])))

    def _at(self, wall: float, action: Any, command: dict[str, Any]) -> None:
        """Run `action(command)` at wall-clock time `wall` (now if it is past)."""
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, wall - time.time()), action, command)

    def _turn(self, command: dict[str, Any]) -> None:
        for bot in self.bots:
            if bot.joined_at is not None:
                bot.turn(command["id"], command["speaker"], command["loud"], command["quiet"])

    def _level(self, command: dict[str, Any]) -> None:
        bot = self.by_number.get(command["bot"])
        if bot is not None:
            bot.set_level(command["level"])

    async def _join(self, bot: Bot) -> None:
        await asyncio.sleep(max(0.0, self.join_at[bot.number] - time.time()))
        try:
            await bot.join()
        except Exception as exc:
            log.warning("%s could not join: %s", bot.name, exc)
            emit({"event": "join-failed", "bot": bot.number, "error": f"{exc}"})
            return
        emit(
            {
                "event": "joined",
                "bot": bot.number,
                "participant_id": bot.participant_id,
                "join_started_at": bot.join_started_at,
                "joined_at": bot.joined_at,
                "audio_streams": bot.audio_streams_limit,
                "receive_error": bot.receive_error,
            }
        )

    async def _measure_loop_lag(self) -> None:
        """How late the event loop wakes up: a saturated bot process shows here first."""
        while True:
            start = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            self.loop_lag.add(max(0.0, time.monotonic() - start - LAG_TICK_S) * 1000)

    async def _progress(self) -> None:
        """Per-stream video fps and audio pps over the last second, and CPU."""
        previous = self._counts()
        cpu, t = time.process_time(), time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            current = self._counts()
            now_cpu, now = time.process_time(), time.monotonic()
            seconds = now - t
            rates = {
                key: (frames - previous.get(key, (0, ""))[0]) / seconds
                for key, (frames, _) in current.items()
            }
            # streams on a slot now, or still delivering (not the ones a remap took away)
            assigned = {
                (bot.number, pub, source)
                for bot in self.bots
                for pub, source in bot.owners.values()
            }
            live = {key: r for key, r in rates.items() if r > 0 or key in assigned}
            video = [r for key, r in live.items() if current[key][1] == "video"]
            audio = [r for key, r in live.items() if current[key][1] == "audio"]
            emit(
                {
                    "event": "progress",
                    "joined": sum(1 for bot in self.bots if bot.joined_at is not None),
                    "video_rates": video,
                    "audio_rates": audio,
                    "cpu_percent": (now_cpu - cpu) / seconds * 100,
                }
            )
            previous, cpu, t = current, now_cpu, now

    def _counts(self) -> dict[tuple[int, str, str], tuple[int, str]]:
        """Frames per (bot, publisher, source), summed over the slots that carried it."""
        counts: dict[tuple[int, str, str], tuple[int, str]] = {}
        for bot in self.bots:
            for probe in bot.probes:
                for stream in probe.streams.values():
                    key = (bot.number, stream.publisher, stream.source)
                    frames = counts.get(key, (0, ""))[0] + stream.frames
                    counts[key] = (frames, stream.kind)
        return counts

    async def _window(self, window_id: int, seconds: float) -> dict[str, Any]:
        for bot in self.bots:
            bot.reset_window()
        before = [bot.snapshot() for bot in self.bots]
        lag_before = self.loop_lag.copy()
        cpu0, t0, wall0 = time.process_time(), time.monotonic(), time.time()
        await asyncio.sleep(seconds)
        after = [bot.snapshot() for bot in self.bots]
        cpu1, t1 = time.process_time(), time.monotonic()
        latency, send_lag = Histogram(), Histogram()
        streams: list[dict[str, Any]] = []
        bots: list[dict[str, Any]] = []
        for old, new in zip(before, after, strict=True):
            lag = new["send_lag"].since(old["send_lag"])
            send_lag.merge(lag)
            bots.append(
                {
                    "bot": new["bot"],
                    "participant_id": new["participant_id"],
                    "video_frames_sent": new["video_frames_sent"] - old["video_frames_sent"],
                    "audio_packets_sent": new["audio_packets_sent"] - old["audio_packets_sent"],
                    "keyframes_answered": new["keyframes_answered"] - old["keyframes_answered"],
                    "remaps": new["remaps"] - old["remaps"],
                    "video_busy_max": new["video_busy_max"],
                    "send_lag_ms": lag.summary(),
                }
            )
            previous = {(s["publisher"], s["source"]): s for s in old["streams"]}
            for stream in new["streams"]:
                was = previous.get((stream["publisher"], stream["source"]))
                record = {
                    "subscriber": new["participant_id"],
                    "publisher": stream["publisher"],
                    "source": stream["source"],
                    "kind": stream["kind"],
                }
                for name in WINDOW_FIELDS:
                    record[name] = stream[name] - (was[name] if was else 0)
                stream_latency = (
                    stream["latency"].since(was["latency"]) if was else stream["latency"]
                )
                latency.merge(stream_latency)
                record["latency_ms"] = stream_latency.summary()
                streams.append(record)
        return {
            "event": "window",
            "id": window_id,
            "pid": os.getpid(),
            "started_at": wall0,
            "seconds": t1 - t0,
            "cpu_seconds": cpu1 - cpu0,
            "bots": bots,
            "streams": streams,
            "latency": latency.to_json(),
            "send_lag": send_lag.to_json(),
            "loop_lag": self.loop_lag.since(lag_before).to_json(),
        }

    def _final(self) -> dict[str, Any]:
        first_frames = [
            {
                "subscriber": bot.participant_id,
                "publisher": stream["publisher"],
                "source": stream["source"],
                "kind": stream["kind"],
                "first_frame_at": stream["first_frame_at"],
            }
            for bot in self.bots
            for stream in bot.snapshot()["streams"]
        ]
        decoded: list[dict[str, Any]] = []
        if self.plan.get("decode_sample") and self.bots:
            try:
                decoded = self.bots[0].decode_samples()
            except Exception as exc:
                log.warning("decoding the sample failed: %s", exc)
                decoded = [{"subscriber": self.bots[0].participant_id, "error": str(exc)}]
        return {
            "event": "final",
            "first_frames": first_frames,
            "decoded": decoded,
            "switches": [record for bot in self.bots for record in bot.switch_records()],
            "raised": [record for bot in self.bots for record in bot.raised],
        }


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    plan = json.loads(await reader.readline())
    logging.basicConfig(
        level=plan.get("log_level", "WARNING"),
        format=f"%(asctime)s %(levelname)s bots[{os.getpid()}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if plan.get("cpus"):
        os.sched_setaffinity(0, set(plan["cpus"]))
    await Worker(plan).run(reader)


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop unless told otherwise (and when installed): the bots spend much of their time
    in the event loop (one paced sleep per packet sent, one wake-up per datagram)."""
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "uvloop"
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=_loop_factory(kind)) as runner,
    ):
        runner.run(_main())


if __name__ == "__main__":
    main()
