"""Fixtures for SFU tests: loopback-only media server and a cached synthetic clip."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sfu import MediaServer, MediaSettings


@pytest.fixture
async def server() -> AsyncIterator[MediaServer]:
    srv = MediaServer(MediaSettings(ice_host_addresses=("127.0.0.1",)))
    yield srv
    await srv.close()


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float,
    what: str,
    describe: Callable[[], object] | None = None,
) -> float:
    """Poll until predicate is true; returns the seconds it took."""
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
        await asyncio.sleep(0.05)


logging.getLogger("aioice").setLevel(logging.WARNING)
