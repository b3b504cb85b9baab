"""The server goes away for longer than one retry (a restart): both pages keep trying and
come back by themselves, with media flowing again.

This module has its own server (conftest's `server` fixture is per module): stopping it
disturbs no other test.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import TIMEOUT_MS, Server
from tests.browser.pages import (
    assert_receiving_video,
    assert_tile_playing,
    join,
    open_person,
    participant_id,
    remote_tile,
    sign_in,
)

pytestmark = pytest.mark.browser

OUTAGE_SECONDS = 12  # longer than the first retries (0.5 s, 1 s, 2 s, 4 s ...)


def attempts(page: Page) -> int:
    return int(page.evaluate("() => window.__tertulia.session.reconnectAttempts"))


def test_both_pages_come_back_after_a_server_restart(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    meeting = server.create_meeting("ana", title="Server restart")
    room_id = meeting["room_id"]
    ana = open_person(browser, contexts, server)
    bo = open_person(browser, contexts, server)
    sign_in(ana, server, "ana", path=f"/m/{room_id}")
    join(ana)
    sign_in(bo, server, "bo", path=f"/m/{room_id}")
    join(bo)
    people = ((ana, bo, "Bo Berg"), (bo, ana, "Ana Alves"))
    for page, other, name in people:
        expect(remote_tile(page, name)).to_be_visible()
        assert_receiving_video(page, participant_id(other), seconds=1.5)
    before = {id(page): participant_id(page) for page in (ana, bo)}

    server.stop()
    try:
        for page in (ana, bo):
            state = page.get_by_test_id("connection-state")
            expect(state).to_have_attribute("data-state", "reconnecting")
            expect(state).to_have_text("Reconnecting…")
        time.sleep(OUTAGE_SECONDS)
        # Still trying after several failed attempts: not given up, not closed.
        for page in (ana, bo):
            expect(page.get_by_test_id("room")).to_be_visible()
            expect(page.get_by_test_id("connection-state")).to_have_attribute(
                "data-state", "reconnecting"
            )
            assert attempts(page) >= 3, attempts(page)
    finally:
        server.start()  # same port, data directory and JWT secret: the tokens stay valid

    # Both pages come back by themselves: joined again, media flowing on new connections.
    for page in (ana, bo):
        state = page.get_by_test_id("connection-state")
        expect(state).to_have_attribute("data-state", "connected", timeout=2 * TIMEOUT_MS)
        expect(state).to_have_text("Connected")
        expect(page.get_by_test_id("participant-count")).to_have_text("2 in the meeting")
        assert participant_id(page) != before[id(page)]
        assert page.evaluate("() => window.__tertulia.session.state") == "connected"
    for page, other, name in people:
        tile = remote_tile(page, name)
        expect(tile).to_have_count(1)
        assert_receiving_video(page, participant_id(other))
        assert_tile_playing(tile)
