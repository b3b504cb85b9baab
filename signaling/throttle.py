"""Sign-in throttling: a growing back-off after failed sign-ins, without a lock-out.

Password guessing is slowed by three counters of failed sign-ins (OWASP's "slow down online
guessing attacks with device cookies"):

- per **client address**, whatever the account: one machine guessing many accounts;
- per **account**, for clients that hold no device cookie of that account: many machines
  guessing one account;
- per **account and device**: a browser in which the person signed in before holds a device
  cookie (see `signaling.tokens.TokenService.issue_device`). It is judged by its own failures
  and its address only, so an attacker who keeps the account-wide counter blocked never
  locks the real person out of a device they have used.

Each counter allows some failures for free, then blocks for 1 s, 2 s, 4 s ... up to
`MAX_BLOCK_SECONDS` after every further failure. A counter is forgotten after
`FORGET_AFTER_SECONDS` without failures; the account and device counters also on a
successful sign-in (the address counter is not: a guesser could reset it by signing in to
an account of its own). Refused attempts cost no password hashing and do not extend a block.

The state lives in this process and is bounded (least recently used counters are dropped
first). A deployment of several processes shares it through Redis (a later issue).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_BLOCK_SECONDS = 15 * 60.0
FORGET_AFTER_SECONDS = 3600.0
MAX_COUNTERS = 100_000
FREE_FAILURES = {"address": 20, "account": 5, "device": 10}


@dataclass(frozen=True)
class Attempt:
    """Who is trying to sign in: the (normalized) e-mail, the client address, and the device
    id of a valid device cookie for that account, if the client sent one."""

    account: str
    address: str
    device: str | None = None

    def counters(self) -> list[tuple[str, str]]:
        """The (kind, key) counters that judge this attempt."""
        keyed = [("address", self.address)]
        if self.device is None:
            keyed.append(("account", self.account))
        else:
            keyed.append(("device", f"{self.account}\0{self.device}"))
        return keyed


@dataclass
class _Counter:
    failures: int = 0
    last_failure: float = 0.0
    blocked_until: float = 0.0
    refused: int = 0  # attempts refused during the current block


@dataclass(frozen=True)
class Block:
    """A counter that started blocking (for the audit trail)."""

    kind: str  # "address", "account" or "device"
    failures: int
    seconds: float


@dataclass(frozen=True)
class Refusal:
    """The first attempt refused while a counter blocks (for the audit trail)."""

    kind: str
    retry_after: int  # whole seconds, for the Retry-After header


@dataclass
class SignInThrottle:
    clock: Callable[[], float] = time.monotonic
    _counters: OrderedDict[tuple[str, str], _Counter] = field(default_factory=OrderedDict)

    def check(self, attempt: Attempt) -> tuple[int, Refusal | None]:
        """Seconds to wait before this attempt may be judged (0: go ahead), and a Refusal
        to audit when it is the first attempt refused by that block."""
        now = self.clock()
        wait, first_refusal = 0.0, None
        for kind, key in attempt.counters():
            counter = self._get(kind, key, now)
            if counter is None or counter.blocked_until <= now:
                continue
            counter.refused += 1
            remaining = counter.blocked_until - now
            if counter.refused == 1 and first_refusal is None:
                first_refusal = Refusal(kind, math.ceil(remaining))
            wait = max(wait, remaining)
        return math.ceil(wait), first_refusal

    def failed(self, attempt: Attempt) -> list[Block]:
        """Count a wrong password (or unknown e-mail); returns the blocks it starts."""
        now = self.clock()
        blocks = []
        for kind, key in attempt.counters():
            counter = self._get(kind, key, now) or self._add(kind, key)
            counter.failures += 1
            counter.last_failure = now
            over = counter.failures - FREE_FAILURES[kind]
            if over > 0:
                seconds = min(MAX_BLOCK_SECONDS, 2.0 ** (over - 1))
                counter.blocked_until = now + seconds
                counter.refused = 0
                blocks.append(Block(kind, counter.failures, seconds))
        return blocks

    def succeeded(self, attempt: Attempt) -> None:
        for kind, key in attempt.counters():
            if kind != "address":
                self._counters.pop((kind, key), None)

    def _get(self, kind: str, key: str, now: float) -> _Counter | None:
        counter = self._counters.get((kind, key))
        if counter is None:
            return None
        if now - counter.last_failure > FORGET_AFTER_SECONDS and counter.blocked_until <= now:
            del self._counters[(kind, key)]
            return None
        self._counters.move_to_end((kind, key))
        return counter

    def _add(self, kind: str, key: str) -> _Counter:
        while len(self._counters) >= MAX_COUNTERS:
            self._counters.popitem(last=False)
        counter = self._counters[(kind, key)] = _Counter()
        return counter


@dataclass
class _Written:
    at: float
    skipped: int = 0  # refusals from this address not written since


@dataclass
class RefusalSampler:
    """Which refusals to write to the audit trail when they can come in floods (requests
    with a bad token: anyone can send them as fast as they like, and a row per request
    would turn the flood into as many database writes and bury the trail).

    The first refusal from an address in each `window` is written, and no more than
    `max_per_window` rows in all per window (so a client with many addresses, an IPv6
    prefix, cannot get around it either). `admit` says how many refusals from that address
    were skipped since its last row, for the row to tell. The map is bounded: at most
    `max_addresses` addresses are remembered, the one written longest ago forgotten first.
    Like the sign-in throttle, the state lives in this process.
    """

    window: float = 60.0
    max_per_window: int = 100
    max_addresses: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _written: OrderedDict[str, _Written] = field(default_factory=OrderedDict)
    _window_start: float = -math.inf
    _rows_in_window: int = 0

    def admit(self, address: str) -> int | None:
        """None: do not write this refusal; otherwise write it, and the refusals from this
        address skipped since the last row written for it."""
        now = self.clock()
        if now - self._window_start >= self.window:
            self._window_start, self._rows_in_window = now, 0
        last = self._written.get(address)
        if (last is not None and now - last.at < self.window) or (
            self._rows_in_window >= self.max_per_window
        ):
            if last is not None:
                last.skipped += 1
            return None
        skipped = last.skipped if last is not None else 0
        self._written.pop(address, None)
        while len(self._written) >= self.max_addresses:
            self._written.popitem(last=False)
        self._written[address] = _Written(now)
        self._rows_in_window += 1
        return skipped
