"""Fixtures for SFU tests: loopback-only media server and a cached synthetic clip."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from sfu import MediaServer, MediaSettings


@pytest.fixture
async def server() -> AsyncIterator[MediaServer]:
    srv = MediaServer(MediaSettings(ice_host_addresses=("127.0.0.1",)))
    yield srv
    await srv.close()


logging.getLogger("aioice").setLevel(logging.WARNING)
