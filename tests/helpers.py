"""What many tests need: waiting until something is true, without sleeping blindly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float,
    what: str,
    describe: Callable[[], object] | None = None,
    interval: float = 0.05,
) -> float:
    """Poll until `predicate` (plain or async) is true; returns the seconds it took.

    On timeout the assertion names `what` was awaited and, with `describe`, the state the
    test was in, so a failure says more than "timed out".
    """
    t0 = time.monotonic()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            state = f"; state: {describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{state}")
        await asyncio.sleep(interval)


class FakeClock:
    """A monotonic clock a test moves by hand: `clock.now += 5`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
