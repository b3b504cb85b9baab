"""Who speaks when: speaking turns for the load bots, and a control file to drive them.

A bot "speaks" when the RFC 6464 audio level its microphone packets carry goes from quiet
(`--quiet-level`, 90 = -90 dBov) to loud (`--loud-level`, 20); the Opus payload itself is
the same pre-encoded clip. A **turn** makes one bot loud and every other bot quiet at one
wall-clock instant (each bot process waits for it), so the server's speaker detector sees
one clear speaker at a time. Turns come from

* a rotation (`--speak-every S`): one bot per turn, S seconds each, starting with the bot
  that joined last and going down (bots that joined first are the ones a server ranks first
  among people who never spoke, so the first turns are real switches);
* a list (`--speak 3@0,1@4.5`): bot 3 from second 0, bot 1 from second 4.5; `none@S`:
  everyone quiet from second S; seconds count from the start of the warm-up;
* a control file (`--control FILE`): lines appended to it while the test runs take effect
  when read (within 50 ms): `speak N`, `quiet`, `level N LEVEL`; `#` comments. For a test
  that drives bots from outside (e.g. a browser test: "make bot 2 loud now").

Every turn is recorded (its id, the bot, the wall-clock time) for the speaker-switch
latency in the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runner import LoadTest

log = logging.getLogger(__name__)
QUIET_LEVEL = 90  # -90 dBov: a quiet room; the server counts < 60 as voice
LOUD_LEVEL = 20  # -20 dBov: someone talking
SEND_AHEAD_S = 0.5  # turns are sent this long before they start (workers wait for `at`)
CONTROL_POLL_S = 0.05
SETTLE_S = 2.0  # after the last turn, how long its switch may take before figures are read


@dataclass(frozen=True)
class Turn:
    at: float  # seconds after the schedule's start
    bot: int | None  # the bot that speaks (its number); None: everyone quiet


def parse_turns(text: str) -> list[Turn]:
    """`3@0,1@4.5,none@9` -> turns, in time order."""
    turns = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d+|none)@(\d+(?:\.\d*)?)", part)
        if match is None:
            raise ValueError(f"{part!r}: expected BOT@SECOND (e.g. 3@4.5) or none@SECOND")
        bot = None if match[1] == "none" else int(match[1])
        if bot is not None and bot < 1:
            raise ValueError(f"{part!r}: bots are numbered from 1")
        turns.append(Turn(float(match[2]), bot))
    return sorted(turns, key=lambda t: t.at)


def rotation(bots: Sequence[int], every: float, duration: float) -> list[Turn]:
    """One bot at a time, `every` seconds each, from the last bot down, over `duration`."""
    if every <= 0 or not bots:
        return []
    order = sorted(bots, reverse=True)
    count = max(1, int(duration / every + 0.999))
    return [Turn(i * every, order[i % len(order)]) for i in range(count)]


@dataclass
class Speaking:
    """Sends turns to the bots and remembers them (`records`, for the report)."""

    test: LoadTest
    loud: int = LOUD_LEVEL
    quiet: int = QUIET_LEVEL
    records: list[dict[str, Any]] = field(default_factory=list)
    _ids: int = 0

    async def turn(self, bot: int | None, at: float | None = None) -> dict[str, Any]:
        """One turn at wall-clock time `at` (now when None)."""
        self._ids += 1
        at = time.time() if at is None else at
        await self.test.turn(self._ids, bot, at, self.loud, self.quiet)
        record = {
            "turn": self._ids,
            "bot": None if bot is None else f"bot-{bot}",
            "participant_id": None if bot is None else self.test.participant_id(bot),
            "at": at,
        }
        self.records.append(record)
        log.info("turn %d: %s speaks at %.3f", self._ids, record["bot"] or "nobody", at)
        return record

    async def settle(self) -> None:
        """Wait until the latest turn is SETTLE_S old, so that its switch can complete
        before the bots are stopped and their records read."""
        latest = max((r["at"] for r in self.records), default=0.0)
        await asyncio.sleep(max(0.0, latest + SETTLE_S - time.time()))

    async def play(self, turns: Sequence[Turn], start: float) -> None:
        """Play `turns` (seconds after wall-clock `start`); returns after the last is sent."""
        for turn in turns:
            at = start + turn.at
            await asyncio.sleep(max(0.0, at - SEND_AHEAD_S - time.time()))
            await self.turn(turn.bot, at)

    async def follow(self, path: Path) -> None:
        """Execute the control file's lines as they are appended, until cancelled."""
        offset = 0
        pending = b""
        while True:
            with contextlib.suppress(FileNotFoundError):
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                offset += len(chunk)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    await self.command(line.decode(errors="replace"))
            await asyncio.sleep(CONTROL_POLL_S)

    async def command(self, line: str) -> None:
        words = line.split("#", 1)[0].split()
        try:
            if words[:1] == ["speak"] and len(words) == 2:
                await self.turn(int(words[1]))
            elif words == ["quiet"]:
                await self.turn(None)
            elif words[:1] == ["level"] and len(words) == 3:
                await self.test.level(int(words[1]), int(words[2]), time.time())
                log.info("bot-%s: level %s", words[1], words[2])
            elif words:
                log.warning("control file: ignored %r (speak N | quiet | level N LEVEL)", line)
        except ValueError:
            log.warning("control file: ignored %r (numbers expected)", line)
