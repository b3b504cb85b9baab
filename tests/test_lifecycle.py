"""The meeting's clock, with shortened timeouts: empty meetings end, scheduled ends are
announced five minutes before and kept, and every socket (the waiting room's too) is told."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from client.signaling import SignalingClient
from signaling.keys import LIFECYCLE
from signaling.realtime.protocol import CloseCode
from storage import audit, meetings
from storage.types import utcnow
from tests.test_signaling import new_meeting
from tests.test_waiting_room import join


@pytest.fixture
def settings(settings):
    return settings.model_copy(
        update={"empty_meeting_timeout_seconds": 0.5, "lifecycle_interval_seconds": 3600}
    )


@pytest.fixture
async def clients():
    opened: list[SignalingClient] = []
    yield opened
    await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)


async def status_of(database, room):
    async with database.session() as db:
        return (await meetings.get_meeting(db, room)).status


async def test_scheduled_active_ended_when_empty(api, make_user, database, clients):
    host = await make_user()
    room = await new_meeting(api, host)
    lifecycle = api.app[LIFECYCLE]
    assert await status_of(database, room) == "scheduled"
    a = await join(api, host, room, clients)
    assert await status_of(database, room) == "active"
    await asyncio.sleep(0.6)
    assert await lifecycle.sweep() == []  # someone is inside
    await a.send({"type": "leave"})
    await a.wait_closed()
    assert await lifecycle.sweep() == []  # empty, but not for long enough
    await asyncio.sleep(0.6)
    assert await lifecycle.sweep() == [room]
    assert await status_of(database, room) == "ended"
    async with database.session() as db:
        [row] = await audit.trail(db, action="meeting-auto-end")
    assert row.room_id == room and row.user_id is None and "empty" in row.detail
    assert await lifecycle.sweep() == []


async def test_scheduled_end_warns_then_ends_everyone(api, make_user, database, clients):
    host, guest, waiting = await make_user(), await make_user(), await make_user()
    room = await new_meeting(api, host, end_on_schedule=True, require_approval=True)
    lifecycle = api.app[LIFECYCLE]
    a = await join(api, host, room, clients)
    w = await join(api, waiting, room, clients, allow_waiting=True)
    await a.wait_for("knock")
    b_user = guest
    status, _ = await api.call(
        "PUT", f"/api/meetings/{room}/waiting-room", user=host, json={"enabled": False}
    )
    assert status == 200
    b = await join(api, b_user, room, clients)
    await w.admitted()
    # the meeting's scheduled end is 4 minutes away: everyone is warned, once
    async with database.session() as db:
        meeting = await meetings.get_meeting(db, room)
        meeting.scheduled_start = utcnow() - timedelta(minutes=56)
        meeting.duration_minutes = 60
    assert await lifecycle.sweep() == []
    warning = await b.wait_for("meeting-ending")
    assert 230 <= warning["seconds"] <= 240
    await lifecycle.sweep()
    await asyncio.sleep(0.1)
    assert sum(e["type"] == "meeting-ending" for e in b.events) == 1
    # the end comes: everyone is told and sent away
    async with database.session() as db:
        meeting = await meetings.get_meeting(db, room)
        meeting.scheduled_start = utcnow() - timedelta(minutes=61)
    assert await lifecycle.sweep() == [room]
    for client in (a, b, w):
        assert (await client.wait_for("meeting-ended"))["reason"].startswith("the meeting's")
        assert await client.wait_closed() == CloseCode.MEETING_ENDED
    assert await status_of(database, room) == "ended"


async def test_the_clock_runs_by_itself(api, make_user, database, settings):
    """Without anyone calling sweep(): the app's own task ends an empty meeting."""
    lifecycle = api.app[LIFECYCLE]
    await lifecycle.close()
    lifecycle.interval = 0.2
    lifecycle.start()
    host = await make_user()
    room = await new_meeting(api, host)
    status, _ = await api.call("POST", f"/api/meetings/{room}/join", user=host)
    assert status == 200
    async with database.session() as db:
        meeting = await meetings.get_meeting(db, room)
        for visit in await meetings.visits(db, meeting.id):
            visit.left_at = utcnow() - timedelta(seconds=5)
    for _ in range(50):
        if await status_of(database, room) == "ended":
            break
        await asyncio.sleep(0.1)
    assert await status_of(database, room) == "ended"
