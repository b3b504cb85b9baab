"""A worker drained under two browsers: `tertulia serve --workers 2` on PostgreSQL and Redis,
SIGTERM to the worker holding Ana's page. Her page is told `reconnect`, connects again at
once (no back-off: the first attempt waits 0 ms), lands on the other worker and is back in
the meeting with media flowing; Bo never left.

This module has its own server (two workers; the conftest's is one process with SQLite).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from playwright.sync_api import expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.browser.conftest import PASSWORD, TIMEOUT_MS, USERS, Server
from tests.browser.pages import (
    assert_receiving_video,
    join,
    open_person,
    participant_id,
    remote_tile,
    sign_in,
)

POSTGRES_URL = os.environ.get("TERTULIA_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TERTULIA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not POSTGRES_URL, reason="needs TERTULIA_TEST_DATABASE_URL"),
]
WATCH_ATTEMPTS = """() => {
  const session = window.__tertulia.session;
  window.__attempts = [];
  session.addEventListener('reconnect-attempt', (e) => window.__attempts.push(e.detail));
  window.__told = 0;
  session.addEventListener('server-leaving', () => { window.__told += 1; });
}"""


def _in_thread(coroutine: Any) -> Any:
    """asyncio work from a synchronous test (Playwright's sync API owns this thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _database(statement: str) -> None:
    assert POSTGRES_URL is not None
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await admin.dispose()


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, prefix: str) -> Iterator[Server]:
    assert POSTGRES_URL is not None
    name = f"t_drain_{secrets.token_hex(4)}"
    _in_thread(_database(f'CREATE DATABASE "{name}"'))
    srv = Server(tmp_path_factory.mktemp("tertulia-data"))
    srv.env.update(
        TERTULIA_DATABASE_URL=POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}",
        TERTULIA_REDIS_URL=REDIS_URL,
        TERTULIA_REDIS_PREFIX=prefix,
        TERTULIA_WORKERS="2",
        TERTULIA_WORKER_LEASE_SECONDS="2",
    )
    try:
        for email, display_name in USERS.values():
            srv.create_user(email, display_name, PASSWORD)
        srv.start()
        yield srv
    finally:
        srv.stop()
        _in_thread(_database(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def holder(prefix: str, room: str, participant: str) -> str:
    """The worker whose socket holds this participant (Redis presence)."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        raw = client.hget(f"{prefix}:room:{room}:people", participant)
    finally:
        client.close()
    assert raw is not None, f"{participant} is not in presence"
    return str(json.loads(raw)["worker"])


def test_a_drained_workers_page_reconnects_at_once_elsewhere(
    browser: Any, contexts: list[Any], server: Server, prefix: str
) -> None:
    meeting = server.create_meeting("ana", title="Drain")
    room = meeting["room_id"]
    ana = open_person(browser, contexts, server)
    bo = open_person(browser, contexts, server)
    sign_in(ana, server, "ana", path=f"/m/{room}")
    join(ana)
    sign_in(bo, server, "bo", path=f"/m/{room}")
    join(bo)
    for page, name in ((ana, "Bo Berg"), (bo, "Ana Alves")):
        expect(remote_tile(page, name)).to_be_visible()
    before = participant_id(ana)
    victim = holder(prefix, room, before)
    ana.evaluate(WATCH_ATTEMPTS)

    os.kill(int(victim.split(":")[1]), signal.SIGTERM)

    ana.wait_for_function(
        """(before) => {
          const session = window.__tertulia.session;
          return session.state === 'connected' && !!session.participantId
            && session.participantId !== before;
        }""",
        arg=before,
        timeout=TIMEOUT_MS,
    )
    expect(ana.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    after = participant_id(ana)
    assert after != before
    assert ana.evaluate("() => window.__told") == 1
    attempts = ana.evaluate("() => window.__attempts")
    assert attempts and attempts[0]["delayMs"] == 0, attempts
    assert holder(prefix, room, after) != victim  # it landed on the other worker
    expect(ana.get_by_test_id("participant-count")).to_have_text("2 in the meeting")
    for page, other, name in ((ana, bo, "Bo Berg"), (bo, ana, "Ana Alves")):
        expect(remote_tile(page, name)).to_have_count(1)
        assert_receiving_video(page, participant_id(other))
