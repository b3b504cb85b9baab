"""A worker leaving (what SIGTERM does: aiohttp closes the listening socket, then the app
drains): nobody new is seated, every client is told `reconnect` and closed with 1001, and its
recording is stopped cleanly and continued by a worker that stays. Two apps sharing one
database and one real Redis, real aiortc clients; and one process alone."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from client.participant import Participant
from client.signaling import SignalingClient
from signaling.app import create_app
from signaling.keys import DRAIN, JOBS, LIVE, RECORDINGS, TOKENS
from signaling.realtime.protocol import CloseCode
from storage import audit, recordings
from storage.types import utcnow
from tests.cluster_fixtures import join_with_media, token, url_of
from tests.helpers import eventually
from tests.test_cluster_recording import (
    call,
    connect,
    recorded_meeting,
    rows,
)


async def test_a_draining_worker_sends_its_people_on_and_hands_its_recording_over(
    workers, make_user, database, clip, opened
):
    one, two = workers
    ana, bo, cy = (
        await make_user(name="Ana"),
        await make_user(name="Bo"),
        await make_user(name="Cy"),
    )
    room = await recorded_meeting(one, ana)

    async def join(worker: TestClient, user) -> Participant:
        return await join_with_media(worker, user, room, clip, opened)

    a, b = await join(one, ana), await join(two, bo)
    c = await connect(one, cy, room, opened)
    await a.signaling.send({"type": "start-recording"})
    first = (await b.signaling.wait_for("recording-started"))["recording_id"]
    assert room in one.app[RECORDINGS].active
    # a socket accepted before the drain that has not said hello yet
    session = aiohttp.ClientSession()
    late = await session.ws_connect(url_of(one) + f"/api/meetings/{room}/ws")
    try:
        # what SIGTERM does to worker one (signaling.serving), then aiohttp's shutdown
        runner = one.server.runner
        assert runner is not None
        leaving = asyncio.create_task(one.app[DRAIN].leave(runner.sites))
        await eventually(lambda: one.app[LIVE].draining, 10, "worker one to drain")
        with pytest.raises(aiohttp.ClientConnectionError):  # it listens no more
            await session.get(url_of(one) + "/api/health")
        await late.send_json({"type": "hello", "version": 1, "token": token(one, cy)})
        refusal = await late.receive_json(timeout=10)
        assert (refusal["type"], refusal["code"]) == ("error", "server-draining")
        await late.receive(timeout=10)
        assert late.close_code == CloseCode.DRAINING
    finally:
        await session.close()
    # worker one's people are told to reconnect, then closed with 1001
    for client in (a.signaling, c):
        told = await client.wait_for("reconnect", timeout=15)
        assert told["reason"]
        assert await client.wait_closed() == CloseCode.GOING_AWAY
    # its recording was stopped cleanly, and worker two (Bo is there) records from now on
    stopped = await b.signaling.wait_for("recording-stopped")
    assert (stopped["recording_id"], stopped["reason"]) == (first, "server shutting down")
    continued = await b.signaling.wait_for("recording-started", timeout=15)
    second = continued["recording_id"]
    assert second != first and continued["by"] is None
    note = await b.signaling.wait_for(
        "chat", lambda e: "continues" in e["message"]["text"], timeout=15
    )
    assert note["message"]["kind"] == "system"
    assert two.app[RECORDINGS].active[room].recording_id == second
    await leaving
    assert one.app[LIVE].sessions == 0
    await one.close()
    # they reconnect, land on worker two, and are back in the meeting, recorded there
    a2 = await join(two, ana)
    c2 = await connect(two, cy, room, opened)
    assert c2.welcome["recording"] == {"active": True, "recording_id": second}
    inside = {p["participant_id"] for p in c2.welcome["participants"]}
    assert inside == {a2.participant_id, b.participant_id}

    async def recorded() -> set[tuple[str, str]]:
        async with database.session() as db:
            row = await recordings.get_recording(db, second)
            return {(t.participant_id, t.display_name, t.source) for t in row.tracks}

    wanted = {
        (p.participant_id, name, source)
        for p, name in ((a2, "Ana"), (b, "Bo"))
        for source in ("microphone", "camera")
    }
    await eventually(lambda: _is(recorded(), wanted), 20, "the new recording's tracks")
    # nothing was taken for interrupted, even by the leader's recovery
    await two.app[JOBS].recover(stale_before=utcnow() - two.app[JOBS].lease)
    states = {r.id: (r.state, r.worker_id) for r in await rows(database, room)}
    assert states[second] == ("recording", two.app[LIVE].worker_id)
    assert states[first][0] in ("processing", "ready", "failed"), states
    await a2.signaling.send({"type": "stop-recording"})
    await b.signaling.wait_for("recording-stopped", lambda e: e["recording_id"] == second)
    assert all(state != "interrupted" for state, _ in states.values())
    async with database.session() as db:
        trail = [
            (e.action, e.user_id, e.detail) for e in await audit.trail(db) if e.room_id == room
        ]
    assert ("recording-start", None, f"hand-over of recording {first}") in trail


async def test_the_first_claim_wins(workers, make_user, database, opened):
    """Two workers offered the same recording at once: exactly one of them records."""
    one, two = workers
    host, guest = await make_user(name="Hana"), await make_user(name="Gil")
    room = await recorded_meeting(one, host)
    await connect(one, host, room, opened)
    await connect(two, guest, room, opened)
    status, started = await call(one, "POST", f"/api/meetings/{room}/recording", host)
    assert status == 201
    await one.app[RECORDINGS].stop_here(room, None, reason="server shutting down")
    offer = {
        "act": "take-over-recording",
        "previous_id": started["recording_id"],
        "started_by_id": host.id,
    }
    handovers = [w.app[LIVE].on_command for w in (one, two)]
    assert all(handovers)
    await asyncio.gather(*(carry(room, offer) for carry in handovers if carry))
    recording = [r for r in await rows(database, room) if r.state == "recording"]
    assert len(recording) == 1
    holders = [w for w in (one, two) if room in w.app[RECORDINGS].active]
    assert [w.app[LIVE].worker_id for w in holders] == [recording[0].worker_id]
    # a draining worker takes nothing over, and a malformed offer is dropped
    await holders[0].app[RECORDINGS].stop_here(room, None, reason="stopped")
    one.app[LIVE].draining = True
    await one.app[LIVE].on_command(room, offer)  # type: ignore[misc]
    await one.app[LIVE].on_command(room, offer | {"previous_id": "7"})  # type: ignore[misc]
    assert [r.state for r in await rows(database, room)].count("recording") == 0
    one.app[LIVE].draining = False


async def test_one_process_alone_stops_its_recording_and_sends_everyone_to_reconnect(
    settings, database, make_user
):
    app = create_app(settings, database)
    server = TestClient(TestServer(app, host="127.0.0.1"))
    await server.start_server()
    host = await make_user(name="Solo")
    room = await recorded_meeting(server, host)
    client = SignalingClient(url_of(server), room, app[TOKENS].issue(host.id, host.role))
    try:
        await client.connect()
        status, started = await call(server, "POST", f"/api/meetings/{room}/recording", host)
        assert status == 201
        await server.close()
        assert (await client.wait_for("reconnect"))["type"] == "reconnect"
        assert await client.wait_closed() == CloseCode.GOING_AWAY
    finally:
        await client.close()
        await server.close()
    async with database.session() as db:
        row = await recordings.get_recording(db, started["recording_id"])
        assert row.state != "recording" and row.state != "interrupted"


async def _is(value, wanted) -> bool:
    return (await value) == wanted
