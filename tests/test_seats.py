"""Seats count people who are there: REST joins only hold a seat for a while, the host is
never refused, and visits a crash left open are closed when the server starts."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestServer

from client.signaling import SignalingClient, SignalingError
from signaling.app import create_app
from signaling.handlers import meetings as meetings_handlers
from signaling.realtime.protocol import CloseCode
from storage import meetings


async def new_meeting(api, host, seats: int) -> str:
    body = {"title": "Seats", "settings": {"max_participants": seats}}
    status, meeting = await api.call("POST", "/api/meetings", user=host, json=body)
    assert status == 201
    return meeting["room_id"]


async def test_rest_joins_do_not_lock_out_the_host(api, make_user):
    host = await make_user()
    room = await new_meeting(api, host, 3)
    members = [await make_user() for _ in range(4)]
    for member in members[:3]:
        assert (await api.call("POST", f"/api/meetings/{room}/join", user=member))[0] == 200
    status, body = await api.call("POST", f"/api/meetings/{room}/join", user=members[3])
    assert (status, body["error"]["code"]) == (409, "meeting-full")
    client = SignalingClient(api.base_url, room, api.token_for(host))
    welcome = await client.connect()  # the host's own meeting: never full for them
    assert welcome["you"]["role"] == "host"
    await client.close()


async def test_an_unconfirmed_seat_is_given_back(api, make_user, monkeypatch, database):
    monkeypatch.setattr(meetings_handlers, "SEAT_HOLD_SECONDS", 0.5)
    host, ghost, late = await make_user(), await make_user(), await make_user()
    room = await new_meeting(api, host, 2)
    host_client = SignalingClient(api.base_url, room, api.token_for(host))
    await host_client.connect()
    try:
        status, held = await api.call("POST", f"/api/meetings/{room}/join", user=ghost)
        assert status == 200 and held["held_until"] is not None
        with_ghost = SignalingClient(api.base_url, room, api.token_for(late))
        try:
            await with_ghost.connect()
            raise AssertionError("the held seat should have filled the meeting")
        except SignalingError as refused:
            assert (refused.close_code, refused.code) == (CloseCode.CONFLICT, "meeting-full")
        await asyncio.sleep(0.7)  # the ghost never connects: the hold runs out
        late_client = SignalingClient(api.base_url, room, api.token_for(late))
        await late_client.connect()
        await late_client.close()
    finally:
        await host_client.close()
    async with database.session() as session:
        meeting = await meetings.get_meeting(session, room)
        ghost_visit = next(
            v for v in await meetings.visits(session, meeting.id) if v.user_id == ghost.id
        )
        assert ghost_visit.left_at is not None and ghost_visit.left_at == ghost_visit.held_until


async def test_the_connection_confirms_the_held_seat(api, make_user, database):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host, 5)
    status, held = await api.call("POST", f"/api/meetings/{room}/join", user=guest)
    assert status == 200
    client = SignalingClient(api.base_url, room, api.token_for(guest))
    await client.connect()
    async with database.session() as session:
        meeting = await meetings.get_meeting(session, room)
        (visit,) = await meetings.visits(session, meeting.id)
        assert visit.id == held["participation_id"] and visit.held_until is None
        assert visit.left_at is None
    # while connected, a REST join keeps the live visit as it is
    status, again = await api.call("POST", f"/api/meetings/{room}/join", user=guest)
    assert status == 200 and again["participation_id"] == held["participation_id"]
    assert again["held_until"] is None
    await client.close()


async def test_visits_left_open_by_a_crash_are_closed_at_start_up(
    api, make_user, database, settings
):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host, 2)
    async with database.session() as session:  # as a crashed server would leave them
        await meetings.join_meeting(session, room, host.id)
        await meetings.join_meeting(session, room, guest.id)
    restarted = TestServer(create_app(settings, database), host="127.0.0.1")
    await restarted.start_server()
    try:
        async with database.session() as session:
            meeting = await meetings.get_meeting(session, room)
            assert all(v.left_at is not None for v in await meetings.visits(session, meeting.id))
            assert await meetings.participants_inside(session, meeting.id) == 0
    finally:
        await restarted.close()
