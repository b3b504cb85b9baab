"""`tertulia loadtest`: join K bots to a meeting on a running server and report what they get.

Progress goes to standard error; the report (text, or JSON with `--json`) to standard output.
Exit status: 0 when every bot joined and every stream delivered media, 1 otherwise, 2 for
bad options or an unreachable server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from client.media import MIC_LEVEL
from rtp.synthetic import load_clip

from .accounts import Api, ApiError, BotAccounts, create_bot_accounts, read_tokens
from .media import load_key_variants
from .report import build_report, format_report
from .runner import LoadTest, LoadTestError, Plan, Progress
from .speaking import LOUD_LEVEL, QUIET_LEVEL, Speaking, Turn, parse_turns, rotation

log = logging.getLogger("tertulia.loadtest")
PASSWORD_ENV = "TERTULIA_LOADTEST_PASSWORD"
DEFAULT_SPEAK_EVERY = 3.0


def default_clip_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tertulia"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tertulia loadtest",
        description="Join K load bots to a meeting on a running Tertulia server; each publishes "
        "a pre-encoded 640x480@30 VP8 + Opus clip and receives everyone else without decoding.",
    )
    p.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    p.add_argument("--room", help="room id of an existing meeting (default: create one)")
    p.add_argument("--admin-email", help="an administrator, to create the bot accounts")
    p.add_argument(
        "--admin-password",
        help=f"the administrator's password (default: ${PASSWORD_ENV}, else standard input)",
    )
    p.add_argument("--tokens-file", type=Path, help="sign-in tokens for the bots, one per line")
    p.add_argument("-k", "--bots", type=int, default=4, help="number of bots (default 4)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds (default 20)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (default 5)")
    p.add_argument("--processes", type=int, default=1, help="bot processes (default 1)")
    p.add_argument(
        "--ice-host",
        default="127.0.0.1",
        help="comma-separated local addresses the bots gather ICE candidates on "
        "(default 127.0.0.1; empty: every non-loopback interface)",
    )
    p.add_argument("--join-interval", type=float, default=0.2, help="seconds between joins")
    p.add_argument(
        "--mesh-timeout",
        type=float,
        default=30.0,
        help="longest wait for every bot to receive every other before warming up (default 30)",
    )
    p.add_argument(
        "--last-n",
        type=int,
        metavar="N",
        help="each bot sends `receive` {last_n: N, visible: null} right after joining "
        "(0-25; default: no receive message, the server's defaults)",
    )
    p.add_argument(
        "--speak-every",
        type=float,
        metavar="S",
        help="speaking rotation: one bot at a time is loud, S seconds each, from the last bot "
        "down (default 3; 0: no speaking schedule, every microphone at level 42 throughout)",
    )
    p.add_argument(
        "--speak",
        metavar="BOT@S,...",
        help="speaking turns instead of the rotation: e.g. 3@0,1@4.5,none@9 (seconds from the "
        "start of the warm-up; none: everyone quiet)",
    )
    p.add_argument(
        "--control",
        type=Path,
        metavar="FILE",
        help="follow this file: lines appended to it (speak N | quiet | level N LEVEL) act "
        "when read; no rotation unless --speak-every is given too",
    )
    p.add_argument("--loud-level", type=int, default=LOUD_LEVEL, help="level of a speaker (20)")
    p.add_argument(
        "--quiet-level", type=int, default=QUIET_LEVEL, help="level of everyone else (90)"
    )
    p.add_argument(
        "--clip",
        default="640x480@30",
        metavar="WxH@FPS",
        help="the video every bot publishes (default 640x480@30; e.g. 320x240@15)",
    )
    p.add_argument(
        "--clip-bitrate",
        type=int,
        help="video bitrate of the clip (default 600000 at 640x480, 150000 below)",
    )
    p.add_argument(
        "--no-keyframe-answers",
        action="store_true",
        help="publishers ignore keyframe requests (keyframes only every second, as before)",
    )
    p.add_argument("--cpus", help="pin the bot processes to these CPUs, e.g. 1 or 2,3")
    p.add_argument("--decode-sample", action="store_true", help="bot-1 decodes what it received")
    p.add_argument("--clip-dir", type=Path, default=None, help="cache of the encoded clip")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-streams", action="store_true", help="text report without per-stream rows")
    p.add_argument("--keep", action="store_true", help="keep the meeting open and the bot accounts")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    return p


class ProgressLine:
    """One status line on standard error: rewritten in place on a terminal, logged otherwise."""

    def __init__(
        self, stream: TextIO = sys.stderr, every: float = 5.0, per_bot: int | None = None
    ) -> None:
        self.stream = stream
        self.per_bot = per_bot  # videos each bot asked for (--last-n), None: everyone
        self.tty = stream.isatty()
        self.every = every
        self.phase = "starting"
        self._last = 0.0
        self._width = 0

    def set_phase(self, phase: str) -> None:
        self.phase = phase

    def update(self, progress: Progress) -> None:
        text = self.render(progress)
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            self._width = len(text)
        elif time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.stream.write(text + "\n")
            self.stream.flush()

    def render(self, progress: Progress) -> str:
        video = progress.video_rates
        audio = progress.audio_rates
        each = progress.joined - 1
        if self.per_bot is not None:
            each = min(each, self.per_bot)
        expected = progress.joined * max(0, each)
        parts = [
            self.phase,
            f"joined {progress.joined}/{progress.bots}"
            + (f" ({progress.failed} failed)" if progress.failed else ""),
            f"video {sum(1 for r in video if r > 0)}/{expected} streams",
        ]
        if video:
            parts.append(f"{sum(video) / len(video):.1f} fps mean, {min(video):.0f} min")
        if audio:
            parts.append(f"audio {sum(audio) / len(audio):.0f} pps")
        parts.append(f"bots CPU {progress.cpu_percent:.0f}%")
        return " | ".join(parts)

    def done(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


async def _accounts(api: Api, args: argparse.Namespace) -> BotAccounts:
    if args.tokens_file:
        tokens = read_tokens(args.tokens_file)
        if len(tokens) < args.bots:
            raise LoadTestError(f"{args.tokens_file} has {len(tokens)} tokens for {args.bots} bots")
        return BotAccounts(tokens[: args.bots])
    if not args.admin_email:
        raise LoadTestError("give --admin-email (to create bot accounts) or --tokens-file")
    password = args.admin_password or os.environ.get(PASSWORD_ENV)
    if password is None:
        password = sys.stdin.readline().rstrip("\n")
    admin = await api.login(args.admin_email, password)
    return await create_bot_accounts(api, admin, args.bots)


@dataclass(frozen=True)
class ClipSpec:
    width: int = 640
    height: int = 480
    fps: int = 30
    bitrate: int = 600_000

    @classmethod
    def parse(cls, text: str, bitrate: int | None = None) -> ClipSpec:
        match = re.fullmatch(r"(\d+)x(\d+)(?:@(\d+))?", text.strip())
        if match is None:
            raise ValueError(f"--clip {text!r}: expected WIDTHxHEIGHT@FPS, e.g. 320x240@15")
        width, height, fps = int(match[1]), int(match[2]), int(match[3] or 30)
        default = 600_000 if width * height >= 640 * 480 else 150_000
        return cls(width, height, fps, bitrate or default)

    def load(self, clip_dir: Path, key_variants: bool) -> None:
        """Encode the clip (and its keyframe variants) once, before the bots start."""
        clip = load_clip(
            clip_dir,
            "VP8",
            10.0,
            self.bitrate,
            size=(self.width, self.height),
            fps=self.fps,
        )
        if key_variants:
            load_key_variants(clip_dir, clip)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.fps}"


def speaking_turns(args: argparse.Namespace, bots: list[int], seconds: float) -> list[Turn]:
    """The turns the options ask for, over `seconds` from the start of the warm-up."""
    if args.speak:
        return parse_turns(args.speak)
    every = args.speak_every
    if every is None:
        every = 0.0 if args.control else DEFAULT_SPEAK_EVERY
    return rotation(bots, every, seconds)


def speaking_on(args: argparse.Namespace) -> bool:
    return bool(args.speak or args.control) or args.speak_every is None or args.speak_every > 0


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    display = ProgressLine(per_bot=args.last_n)
    clip_dir = args.clip_dir or default_clip_dir()
    clip = ClipSpec.parse(args.clip, args.clip_bitrate)
    # encode once, before the bots
    await asyncio.to_thread(clip.load, clip_dir, not args.no_keyframe_answers)
    async with Api(args.url) as api:
        accounts = await _accounts(api, args)
        host_token = accounts.admin_token or accounts.tokens[0]
        room = args.room or await api.create_meeting(
            host_token, f"Load test ({args.bots} bots)", args.bots
        )
        plan = Plan(
            base_url=args.url,
            room_id=room,
            tokens=tuple(accounts.tokens),
            processes=args.processes,
            ice_host_addresses=tuple(a for a in args.ice_host.split(",") if a.strip()),
            clip_dir=clip_dir,
            decode_sample=args.decode_sample,
            join_interval=args.join_interval,
            cpus=tuple(int(c) for c in args.cpus.split(",")) if args.cpus else (),
            log_level="INFO" if args.verbose else "WARNING",
            clip_size=(clip.width, clip.height),
            clip_fps=clip.fps,
            clip_bitrate=clip.bitrate,
            key_variants=not args.no_keyframe_answers,
            last_n=args.last_n,
            audio_level=args.quiet_level if speaking_on(args) else MIC_LEVEL,
        )
        try:
            report = await _measure(plan, args, display)
        finally:
            display.done()
            if not args.keep:
                if not args.room:
                    with contextlib.suppress(ApiError, aiohttp.ClientError):
                        await api.end_meeting(host_token, room)
                await accounts.disable(api)
    report = {
        "url": args.url,
        "room_id": room,
        "warmup_s": args.warmup,
        **report,
    }
    if args.json:
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        out.write(format_report(report, streams=not args.no_streams) + "\n")
    return 0 if complete(report, args.bots) else 1


def complete(report: dict[str, Any], bots: int) -> bool:
    """Every bot joined and every stream it should have delivered media (docs/loadtest.md,
    exit status)."""
    video, audio = report["totals"]["video"], report["totals"]["audio"]
    joined = all(p["error"] is None for p in report["participants"]) and report["bots"] == bots
    if not report["receive"]["selecting"]:  # everyone receives everyone
        return (
            joined
            and video["receiving"] == video["streams"]
            and audio["receiving"] == audio["streams"]
        )
    selected = report["selected"]
    expected = selected["expected_video_per_bot"]
    fewest = selected["video_streams_per_bot"]["min"]
    enough = expected is None or (fewest is not None and fewest >= expected - 0.5)
    return joined and enough and video["silent_settled"] == 0 and audio["silent_settled"] == 0


async def _measure(plan: Plan, args: argparse.Namespace, display: ProgressLine) -> dict[str, Any]:
    async with LoadTest(plan, on_progress=display.update) as test:
        display.set_phase("joining")
        joined = await test.wait_joined(timeout=30 + len(plan.tokens) * plan.join_interval)
        display.set_phase("waiting for media")
        refused = {j.receive_error for j in joined if j.receive_error}
        if refused:
            log.warning(
                "the server refused `receive` (%s): it forwards by its own defaults",
                ", ".join(sorted(refused)),
            )
        per_bot = plan.last_n if not refused else None
        if not await test.wait_mesh(args.mesh_timeout, per_bot):
            log.warning("not every bot receives what it asked for after %.0f s", args.mesh_timeout)
        speaking = Speaking(test, loud=args.loud_level, quiet=args.quiet_level)
        bots = [j.bot for j in joined if j.error is None]
        turns = speaking_turns(args, bots, args.warmup + args.duration)
        tasks = [asyncio.create_task(speaking.play(turns, time.time()))]
        if args.control:
            tasks.append(asyncio.create_task(speaking.follow(args.control)))
        try:
            display.set_phase(f"warming up {args.warmup:.0f} s")
            await asyncio.sleep(args.warmup)
            display.set_phase(f"measuring {args.duration:.0f} s")
            windows = await test.window(args.duration)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await speaking.settle()
        display.set_phase("leaving")
        finals = await test.stop()
    report = build_report(windows, joined, finals, last_n=plan.last_n, turns=speaking.records)
    report["speaking"]["schedule"] = {
        "turns": [{k: t[k] for k in ("turn", "bot", "at")} for t in speaking.records],
        "loud_level": args.loud_level,
        "quiet_level": args.quiet_level,
    }
    return report


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, or None."""
    if args.last_n is not None and not 0 <= args.last_n <= 25:
        return "--last-n must be between 0 and 25"
    for name in ("loud_level", "quiet_level"):
        if not 0 <= getattr(args, name) <= 127:
            return f"--{name.replace('_', '-')} must be between 0 and 127"
    if args.speak_every is not None and args.speak_every < 0:
        return "--speak-every must be 0 or more"
    try:
        ClipSpec.parse(args.clip, args.clip_bitrate)
        turns = parse_turns(args.speak) if args.speak else []
    except ValueError as exc:
        return str(exc)
    if any(t.bot is not None and t.bot > args.bots for t in turns):
        return f"--speak names a bot above {args.bots}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.bots < 2:
        sys.stderr.write("tertulia loadtest: --bots must be at least 2\n")
        return 2
    problem = _check(args)
    if problem:
        sys.stderr.write(f"tertulia loadtest: {problem}\n")
        return 2
    try:
        return asyncio.run(run(args))
    except (LoadTestError, ApiError) as exc:
        sys.stderr.write(f"tertulia loadtest: {exc}\n")
        return 2
    except aiohttp.ClientError as exc:
        sys.stderr.write(f"tertulia loadtest: cannot reach {args.url}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
