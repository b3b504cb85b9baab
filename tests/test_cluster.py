"""Two workers of one deployment (two apps sharing one database and one Redis): a meeting's
people on both see each other, their events and their departures — including a worker's
sudden death. Real Redis (127.0.0.1:6379, or TERTULIA_TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from client.signaling import SignalingClient
from signaling.app import create_app
from signaling.keys import LIVE, TOKENS
from signaling.realtime.protocol import CloseCode

REDIS_URL = os.environ.get("TERTULIA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def prefix() -> str:
    return f"test-{secrets.token_hex(4)}"  # keys of this test only


@pytest.fixture
async def workers(settings, database, prefix) -> AsyncIterator[list[TestClient]]:
    clustered = settings.model_copy(update={"redis_url": REDIS_URL, "redis_prefix": prefix})
    started: list[TestClient] = []
    for _ in range(2):
        client = TestClient(TestServer(create_app(clustered, database), host="127.0.0.1"))
        await client.start_server()
        started.append(client)
    yield started
    for client in started:
        await client.close()


def url_of(worker: TestClient) -> str:
    return str(worker.make_url("")).rstrip("/")


async def connect(worker: TestClient, user, room: str, opened: list[SignalingClient]):
    client = SignalingClient(url_of(worker), room, worker.app[TOKENS].issue(user.id, user.role))
    opened.append(client)
    await client.connect()
    return client


@pytest.fixture
async def opened() -> AsyncIterator[list[SignalingClient]]:
    clients: list[SignalingClient] = []
    yield clients
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def new_meeting(worker: TestClient, host) -> str:
    token = worker.app[TOKENS].issue(host.id, host.role)
    response = await worker.post(
        "/api/meetings", json={"title": "Across"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 201
    return (await response.json())["room_id"]


async def test_a_meeting_across_two_workers(workers, make_user, opened):
    one, two = workers
    host, guest, late = await make_user(name="Ana"), await make_user(name="Bo"), await make_user()
    room = await new_meeting(one, host)
    a = await connect(one, host, room, opened)
    b = await connect(two, guest, room, opened)
    # b, on the other worker, is told who is in the meeting; a hears that b came
    assert [p["display_name"] for p in b.welcome["participants"]] == ["Ana"]
    joined = await a.wait_for("participant-joined")
    assert joined["participant"]["participant_id"] == b.participant_id
    # events cross in both directions, in order
    await b.request({"type": "chat", "text": "hello from worker two"}, "chat")
    assert (await a.wait_for("chat"))["message"]["text"] == "hello from worker two"
    await a.send({"type": "media-state", "microphone": True, "camera": True, "screen": False})
    state = await b.wait_for("media-state")
    assert (state["participant_id"], state["camera"]) == (a.participant_id, True)
    await b.request({"type": "hand", "raised": True}, "ack")
    assert (await a.wait_for("hand"))["participant_id"] == b.participant_id
    # someone joining later sees both, with what they announced (presence)
    c = await connect(two, late, room, opened)
    seen = {p["participant_id"]: p for p in c.welcome["participants"]}
    assert set(seen) == {a.participant_id, b.participant_id}
    assert seen[a.participant_id]["media"]["camera"] is True
    assert seen[b.participant_id]["hand_raised_at"] is not None
    # leaving is seen across
    await b.send({"type": "leave"})
    left = await a.wait_for("participant-left")
    assert left["participant_id"] == b.participant_id
    # the host ends the meeting on worker one: worker two sends its people away too
    await a.send({"type": "end-meeting"})
    assert await c.wait_closed() == CloseCode.MEETING_ENDED


async def test_a_worker_that_dies_is_noticed(workers, make_user, opened, prefix):
    one, two = workers
    host, guest = await make_user(), await make_user()
    room = await new_meeting(one, host)
    a = await connect(one, host, room, opened)
    b = await connect(two, guest, room, opened)
    await a.wait_for("participant-joined")
    # worker two vanishes without a word: its tasks stop, its lease is left to run out
    cluster = two.app[LIVE].cluster
    assert cluster is not None
    for task in cluster._tasks:
        task.cancel()
    await cluster.redis.pexpire(f"{prefix}:worker:{cluster.worker_id}", 300)
    left = await a.wait_for("participant-left", timeout=10)
    assert left["participant_id"] == b.participant_id
    assert await one.app[LIVE].remote_people(room) == []


async def test_moderation_across_workers(workers, make_user, opened):
    """Decided on worker one, done to people whose sockets worker two holds."""
    one, two = workers
    host, guest, other = await make_user(), await make_user(), await make_user()
    room = await new_meeting(one, host)
    a = await connect(one, host, room, opened)
    b = await connect(two, guest, room, opened)
    c = await connect(two, other, room, opened)
    await a.send({"type": "media-state", "microphone": True, "camera": True, "screen": False})
    await b.send({"type": "media-state", "microphone": True, "camera": True, "screen": False})
    await a.wait_for("media-state", lambda e: e["participant_id"] == b.participant_id)
    await a.request(
        {"type": "mute", "participant_id": b.participant_id, "sources": ["camera"]}, "ack"
    )
    muted = await b.wait_for("muted")
    assert muted["sources"] == ["camera"] and muted["by"]["user_id"] == host.id
    state = await a.wait_for("media-state", lambda e: e["participant_id"] == b.participant_id)
    assert (state["camera"], state["microphone"]) == (False, True)
    assert two.app[LIVE].rooms[room].peers[b.participant_id].standing.blocked == {"camera"}
    # a promotion decided on worker one reaches the person on worker two
    await a.request(
        {"type": "set-role", "participant_id": b.participant_id, "role": "moderator"}, "ack"
    )
    await b.wait_for("role-changed")
    assert two.app[LIVE].rooms[room].peers[b.participant_id].role == "moderator"
    # ...who may now moderate from worker two someone on worker one? No: the host is spared;
    # but b lowers c's hand on the same worker, and mute-all from one reaches two
    await c.request({"type": "hand", "raised": True}, "ack")
    await a.wait_for("hand", lambda e: e["raised"])
    await a.request({"type": "hand", "raised": False, "participant_id": c.participant_id}, "ack")
    assert (await c.wait_for("hand", lambda e: not e["raised"]))["participant_id"] == (
        c.participant_id
    )
    await a.request({"type": "mute-all"}, "ack")
    assert (await c.wait_for("muted"))["sources"] == ["microphone"]
    # removal decided on one closes the socket on two
    await a.request({"type": "remove", "participant_id": c.participant_id, "bar": True}, "ack")
    assert (await c.wait_for("removed"))["barred"] is True
    assert await c.wait_closed() == CloseCode.REMOVED
    left = await a.wait_for("participant-left", lambda e: e["participant_id"] == c.participant_id)
    assert left["reason"] == "removed"
