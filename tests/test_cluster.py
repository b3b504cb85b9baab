"""Two workers of one deployment (two apps sharing one database and one Redis): a meeting's
people on both see each other, their events and their departures — including a worker's
sudden death. Real Redis (127.0.0.1:6379, or TERTULIA_TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from client.signaling import SignalingClient, SignalingError
from signaling.keys import LIFECYCLE, LIVE, TOKENS, WAITING_ROOM
from signaling.realtime.protocol import CloseCode
from storage import meetings
from tests.cluster_fixtures import url_of


async def connect(
    worker: TestClient, user, room: str, opened: list[SignalingClient], allow_waiting=False
):
    client = SignalingClient(url_of(worker), room, worker.app[TOKENS].issue(user.id, user.role))
    opened.append(client)
    await client.connect(allow_waiting=allow_waiting)
    return client


async def new_meeting(worker: TestClient, host, **settings) -> str:
    token = worker.app[TOKENS].issue(host.id, host.role)
    response = await worker.post(
        "/api/meetings",
        json={"title": "Across", "settings": settings},
        headers={"Authorization": f"Bearer {token}"},
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


async def test_a_worker_that_dies_is_noticed(workers, make_user, opened, prefix, database):
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
    # its visits end too (or the meeting would never be empty, its seats never free)
    assert await one.app[LIFECYCLE].close_visits_of_dead_workers() == 1
    async with database.session() as db:
        meeting = await meetings.get_meeting(db, room)
        assert await meetings.participants_inside(db, meeting.id) == 1


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


async def test_a_mute_follows_the_person_to_another_worker(workers, make_user, opened):
    """What moderation decided about a person (held sources, a raised hand) is kept in
    Redis: reconnecting to another worker (a drain, a dead worker) does not lift a mute."""
    one, two = workers
    host, guest = await make_user(), await make_user()
    room = await new_meeting(one, host, allow_self_unmute=False)
    a = await connect(one, host, room, opened)
    b = await connect(two, guest, room, opened)
    await b.send({"type": "media-state", "microphone": True, "camera": True, "screen": False})
    await b.request({"type": "hand", "raised": True}, "ack")
    await a.request(
        {"type": "mute", "participant_id": b.participant_id, "sources": ["microphone"]}, "ack"
    )
    await b.wait_for("muted")
    await b.close()
    await a.wait_for("participant-left", lambda e: e["participant_id"] == b.participant_id)
    again = await connect(one, guest, room, opened)
    assert again.welcome["you"]["held"] == ["microphone"]
    # a second tab on the other worker replaces this connection, as on one worker
    tab = await connect(two, guest, room, opened)
    assert await again.wait_closed() == CloseCode.REPLACED
    assert guest.id not in {p["user_id"] for p in tab.welcome["participants"]}
    again = await connect(one, guest, room, opened)
    assert await tab.wait_closed() == CloseCode.REPLACED
    assert again.welcome["you"]["hand_raised_at"] is not None
    peer = one.app[LIVE].rooms[room].peers[again.participant_id]
    assert peer.standing.blocked == {"microphone"}
    with pytest.raises(SignalingError, match="muted-by-moderator"):
        await again.request(
            {"type": "media-state", "microphone": True, "camera": True, "screen": False},
            "media-state",
        )


async def test_the_waiting_room_across_workers(workers, make_user, opened):
    """People wait on one worker, moderators decide on another: one queue (Redis), the
    first decision wins whatever worker it comes from, and the waiting learn whether
    someone who can let them in is inside, wherever they are."""
    one, two = workers
    host, guest, other = [await make_user() for _ in range(3)]
    room = await new_meeting(one, host, require_approval=True)
    # nobody inside yet: guest waits on worker two, told nobody can let them in
    g = await connect(two, guest, room, opened, allow_waiting=True)
    assert g.events[0]["type"] == "waiting" and g.events[0]["host_present"] is False
    # the host comes in on worker one: sees the knock from worker two in `welcome`, and the
    # guest learns the host is there
    a = await connect(one, host, room, opened)
    assert [k["user_id"] for k in a.welcome["waiting"]] == [guest.id]
    await g.wait_for("waiting", lambda e: e["host_present"])
    # admitted from worker one into worker two, then made a moderator
    await a.request(
        {"type": "admit", "participant_id": a.welcome["waiting"][0]["participant_id"]}, "ack"
    )
    welcome = await g.admitted()
    assert welcome["you"]["user_id"] == guest.id
    await a.request(
        {"type": "set-role", "participant_id": g.participant_id, "role": "moderator"}, "ack"
    )
    await g.wait_for("role-changed")
    # someone knocks on worker one: both moderators hear it and decide at once; exactly
    # one decision wins
    o = await connect(one, other, room, opened, allow_waiting=True)
    knock = await g.wait_for("knock")
    assert knock["user_id"] == other.id
    assert (await a.wait_for("knock"))["user_id"] == other.id
    results = await asyncio.gather(
        a.request({"type": "deny", "participant_id": knock["participant_id"]}, "ack"),
        g.request({"type": "deny", "participant_id": knock["participant_id"]}, "ack"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and "not-waiting" in str(refused[0]), results
    assert (await o.wait_for("denied"))["type"] == "denied"
    assert await o.wait_closed() == CloseCode.DENIED
    resolved = await a.wait_for(
        "knock-resolved", lambda e: e["participant_id"] == knock["participant_id"]
    )
    assert resolved["outcome"] == "denied"
    cluster = one.app[LIVE].cluster
    assert await cluster.redis.hlen(f"{cluster.prefix}:room:{room}:waiting") == 0
    # the waiting see the last person able to admit leave, on the other worker
    late = await make_user()
    w = await connect(one, late, room, opened, allow_waiting=True)
    assert w.events[0]["host_present"] is True
    await a.send({"type": "leave"})
    await g.send({"type": "leave"})
    await w.wait_for("waiting", lambda e: not e["host_present"])
    # their second tab, on the other worker, takes their place in the one queue
    again = await connect(two, late, room, opened, allow_waiting=True)
    assert again.events[0]["type"] == "waiting"
    assert await w.wait_closed() == CloseCode.REPLACED
    waiter = two.app[LIVE].rooms[room].waiter_of_user(late.id)
    queue = await one.app[WAITING_ROOM].queue(room)
    assert waiter is not None and [k.participant_id for k in queue] == [waiter.participant_id]


async def test_the_shared_queue_drops_what_it_cannot_trust(workers):
    """Entries of a worker whose lease is gone (its sockets are gone) and malformed ones
    are dropped when read; taking one of them is `not-waiting`, not a decision."""
    import json

    from signaling.knocks import Knocks

    one, _ = workers
    cluster = one.app[LIVE].cluster
    knocks = Knocks(cluster)
    key = f"{cluster.prefix}:room:r-1:waiting"
    dead = {
        "worker": "gone:1",
        "knock": {
            "participant_id": "p-dead",
            "user_id": 1,
            "display_name": "D",
            "since": "2026-01-01T00:00:00Z",
        },
    }
    await cluster.redis.hset(key, mapping={"p-dead": json.dumps(dead), "p-bad": "{not json"})
    assert await knocks.take("r-1", "p-dead") is None
    await cluster.redis.hset(key, "p-dead", json.dumps(dead))
    assert await knocks.queue("r-1") == []
    assert await cluster.redis.hlen(key) == 0


# --- media across workers -----------------------------------------------------------------


class _Door:
    """What tests/test_meeting_media.People needs of a server: its URL and tokens."""

    def __init__(self, worker: TestClient) -> None:
        self.base_url = url_of(worker)
        self.worker = worker

    def token_for(self, user) -> str:
        return self.worker.app[TOKENS].issue(user.id, user.role)


async def test_media_crosses_workers_through_pipes(workers, make_user, cast):
    """Ana on worker one and Bo on worker two see and hear each other: each publication is
    piped once to the other worker, which forwards it like its own."""
    from tests.helpers import eventually
    from tests.test_meeting_media import People, receives_all

    one, two = workers
    host, guest, third = await make_user(), await make_user(), await make_user()
    room = await new_meeting(one, host)
    people_one, people_two = People(_Door(one), cast), People(_Door(two), cast)
    people_two.joined = people_one.joined  # one cast: the n-th person plays persona n
    try:
        a = await people_one(host, room)
        b = await people_two(guest, room)
        c = await people_two(third, room)  # a second receiver on worker two: still one pipe
        everyone = [a, b, c]
        await eventually(
            lambda: all(receives_all(p, [o for o in everyone if o is not p]) for p in everyone),
            30,
            "everyone to receive the others across the workers",
        )
        # every slot started at a whole keyframe: new slots wait for `answer-applied`, so
        # nothing reaches a receiver that does not know the m-line yet (docs/protocol.md)
        for p in everyone:
            for o in everyone:
                if o is not p:
                    probe = p.peer.probe_for(o.participant_id, "camera")
                    assert probe is not None and probe.first_frame_was_keyframe is True
                    assert probe.misrouted == 0
        for person, people in ((a, people_one), (b, people_two), (c, people_two)):
            people._personas.update(people_one._personas | people_two._personas)
            people.check_receives(person, [o for o in everyone if o is not person])
        # every worker hears every microphone, so both workers' detectors pick the same
        # dominant speaker and everyone is told the same

        def dominant(person) -> str | None:
            said = [e for e in person.signaling.events if e["type"] == "active-speaker"]
            return said[-1]["participant_id"] if said else None

        await eventually(
            lambda: len({dominant(p) for p in everyone}) == 1 and dominant(a) is not None,
            10,
            "everyone to be told the same speaker",
            lambda: [dominant(p) for p in everyone],
        )
        stats_one, stats_two = one.app[LIVE].media.stats(), two.app[LIVE].media.stats()
        # a's microphone and camera go to worker two once (not once per receiver there), and
        # b's and c's come to worker one
        assert stats_one["pipe_streams_out"] == 2 and stats_two["pipe_streams_in"] == 2
        assert stats_two["pipe_streams_out"] == 4 and stats_one["pipe_streams_in"] == 4
        assert stats_one["decoders_started"] == stats_two["decoders_started"] == 0
        # b leaves: worker one stops receiving b's streams
        await b.leave()
        await eventually(
            lambda: one.app[LIVE].media.stats()["pipe_streams_in"] == 2, 10, "b's pipes to end"
        )
        # worker two dies without a word: worker one ends every pipe to and from it (none
        # left behind), and its people go on with a meeting of their own worker
        cluster = two.app[LIVE].cluster
        assert cluster is not None
        for task in cluster._tasks:
            task.cancel()
        await cluster.redis.pexpire(f"{cluster.prefix}:worker:{cluster.worker_id}", 300)
        await eventually(
            lambda: (
                (one.app[LIVE].media.stats()["pipe_streams_in"], len(one.app[LIVE].piping.outgoing))
                == (0, 0)
            ),
            15,
            "worker one's pipes with the dead worker to end",
            lambda: one.app[LIVE].media.stats(),
        )
        await eventually(
            lambda: one.app[LIVE].media.stats()["pipe_streams_out"] == 0,
            10,
            "no pipe left sending to the dead worker",
        )
    finally:
        for person in people_one.joined:
            await person.close()
