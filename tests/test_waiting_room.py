"""The waiting room over the real server: who waits, who decides, and every way around it
that a client could try (the bypass matrix), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from client.signaling import SignalingClient, SignalingError
from signaling.keys import LIVE
from signaling.realtime.protocol import CloseCode
from storage import audit
from tests.test_signaling import new_meeting


@pytest.fixture
async def clients():
    opened: list[SignalingClient] = []
    yield opened
    await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)


async def join(api, user, room, clients, *, allow_waiting=False):
    client = SignalingClient(api.base_url, room, api.token_for(user))
    clients.append(client)
    await client.connect(allow_waiting=allow_waiting)
    return client


async def knocks(api, room, user):
    status, body = await api.call("GET", f"/api/meetings/{room}/waiting", user=user)
    assert status == 200, body
    return body["items"]


async def trail(database, room):
    async with database.session() as db:
        return [
            (e.action, e.outcome, e.user_id) for e in await audit.trail(db) if e.room_id == room
        ]


async def test_a_waiting_person_sees_nothing_until_admitted(api, make_user, database, clients):
    host, guest = await make_user(name="Host"), await make_user(name="Guest")
    room = await new_meeting(api, host, require_approval=True, enable_recording=True)
    a = await join(api, host, room, clients)
    await a.request({"type": "chat", "text": "secret agenda"}, "chat")
    b = await join(api, guest, room, clients, allow_waiting=True)
    waiting = b.events[0]
    assert waiting == {
        "type": "waiting",
        "meeting": {"room_id": room, "title": "Signaling"},
        "host_present": True,
        "may_be_recorded": True,
    }
    knock = await a.wait_for("knock")
    assert (knock["user_id"], knock["display_name"]) == (guest.id, "Guest")
    [queued] = await knocks(api, room, host)
    assert queued["participant_id"] == knock["participant_id"]
    # the people inside learn nothing else of them; they learn nothing of the people inside
    await asyncio.sleep(0.2)
    assert [e["type"] for e in a.events] == ["chat", "knock"]
    assert [e["type"] for e in b.events] == ["waiting"]
    await a.request({"type": "admit", "participant_id": knock["participant_id"]}, "ack")
    welcome = await b.admitted()
    assert welcome["you"]["role"] == "participant"
    assert [m["text"] for m in welcome["chat"]] == ["secret agenda"]
    assert welcome["waiting"] == []
    joined = await a.wait_for("participant-joined")
    assert joined["participant"]["participant_id"] == b.participant_id
    # admitted once: a second tab, or a reconnect, goes straight in (replacing the first)
    again = await join(api, guest, room, clients)
    assert again.welcome["type"] == "welcome"
    assert await b.wait_closed() == CloseCode.REPLACED
    rows = await trail(database, room)
    assert ("knock", "ok", guest.id) in rows and ("admit", "ok", host.id) in rows


async def test_waiting_for_the_host_and_the_meeting_ending(api, make_user, clients):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host, require_approval=True)
    b = await join(api, guest, room, clients, allow_waiting=True)
    assert b.events[0]["host_present"] is False
    a = await join(api, host, room, clients)
    assert [k["user_id"] for k in a.welcome["waiting"]] == [guest.id]
    assert (await b.wait_for("waiting", lambda e: e["host_present"]))["host_present"] is True
    await a.send({"type": "leave"})
    await b.wait_for("waiting", lambda e: not e["host_present"])
    status, _ = await api.call("POST", f"/api/meetings/{room}/end", user=host)
    assert status == 200
    assert (await b.wait_for("meeting-ended"))["type"] == "meeting-ended"
    assert await b.wait_closed() == CloseCode.MEETING_ENDED


async def test_deny_is_told_and_holds_for_a_while(api, make_user, database, clients):
    host, guest, other = await make_user(), await make_user(), await make_user()
    room = await new_meeting(api, host, require_approval=True)
    a = await join(api, host, room, clients)
    b = await join(api, guest, room, clients, allow_waiting=True)
    knock = await a.wait_for("knock")
    # REST and signaling are one queue: the first decision wins
    status, _ = await api.call(
        "POST", f"/api/meetings/{room}/waiting/{knock['participant_id']}/deny", user=host
    )
    assert status == 200
    with pytest.raises(SignalingError) as late:
        await a.request({"type": "admit", "participant_id": knock["participant_id"]}, "x")
    assert late.value.code == "not-waiting"
    denied = await b.wait_for("denied")
    assert denied["retry_after"] == 600
    assert await b.wait_closed() == CloseCode.DENIED
    resolved = await a.wait_for("knock-resolved")
    assert resolved["outcome"] == "denied" and resolved["by"]["user_id"] == host.id
    # knocking again at once: refused before the queue, over signaling and REST alike
    with pytest.raises(SignalingError) as again:
        await join(api, guest, room, clients, allow_waiting=True)
    assert (again.value.code, again.value.close_code) == ("denied-recently", 4403)
    status, body = await api.call("POST", f"/api/meetings/{room}/join", user=guest)
    assert (status, body["error"]["code"]) == (403, "denied-recently")
    # someone else still waits normally; switching the waiting room off lets them in
    c = await join(api, other, room, clients, allow_waiting=True)
    await a.wait_for("knock", lambda e: e["user_id"] == other.id)
    await a.request({"type": "waiting-room", "enabled": False}, "ack")
    assert (await c.admitted())["you"]["user_id"] == other.id
    rows = await trail(database, room)
    assert ("deny", "ok", host.id) in rows and ("meeting-join", "refused", guest.id) in rows
    assert ("waiting-room", "ok", host.id) in rows


async def test_bypass_matrix(api, make_user, database, clients):
    """Everything a waiting person might try is refused, and the people inside see none of
    it: only the knock."""
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host, require_approval=True)
    a = await join(api, host, room, clients)
    b = await join(api, guest, room, clients, allow_waiting=True)
    await a.wait_for("knock")
    attempts = [
        {"type": "offer", "sdp": "v=0\r\n", "tracks": {}},
        {"type": "chat", "text": "let me in"},
        {"type": "media-state", "microphone": True, "camera": True, "screen": False},
        {"type": "receive", "last_n": 9},
        {"type": "admit-all"},
        {"type": "admit", "participant_id": b.events[0].get("participant_id", "p-x")},
        {"type": "waiting-room", "enabled": False},
        {"type": "set-role", "participant_id": "p-x", "role": "host"},
        {"type": "mute-all"},
        {"type": "end-meeting"},
        {"type": "start-recording"},
        {"type": "hello", "version": 1, "token": api.token_for(host)},  # a forged identity
    ]
    for attempt in attempts:
        with pytest.raises(SignalingError) as refused:
            await b.request(attempt, "never")
        assert refused.value.code == "not-admitted", attempt
    assert (await b.request({"type": "ping"}, "pong"))["type"] == "pong"
    # REST: no seat, no queue, no moderation
    status, body = await api.call("POST", f"/api/meetings/{room}/join", user=guest)
    assert status == 200 and body["status"] == "waiting" and body["participation_id"] is None
    for method, path, body in [
        ("GET", "/waiting", None),
        ("POST", "/waiting/admit-all", None),
        ("PUT", "/waiting-room", {"enabled": False}),
        ("PUT", "/lock", {"locked": True}),
        ("GET", "/participants", None),
        ("POST", "/mute-all", None),
        ("PUT", f"/members/{guest.id}/role", {"role": "moderator"}),
        ("POST", "/end", None),
    ]:
        status, reply = await api.call(method, f"/api/meetings/{room}{path}", user=guest, json=body)
        assert status == 403, (method, path, reply)
    # a second socket of the waiting person replaces the first in the queue, still waiting
    b2 = await join(api, guest, room, clients, allow_waiting=True)
    assert b2.events[0]["type"] == "waiting"
    assert await b.wait_closed() == CloseCode.REPLACED
    assert [k["user_id"] for k in await knocks(api, room, host)] == [guest.id]
    # what the host saw of all this: knocks and one knock withdrawn, nothing else
    await asyncio.sleep(0.2)
    assert {e["type"] for e in a.events} == {"knock", "knock-resolved"}
    async with database.session() as db:
        rows = [e for e in await audit.trail(db) if e.room_id == room and e.outcome == "refused"]
    assert {e.action for e in rows} >= {"waiting-room-bypass", "admit-all", "lock", "set-role"}
    assert all(e.user_id == guest.id and e.address == "127.0.0.1" for e in rows)


async def test_admins_and_moderators_skip_the_waiting_room(api, make_user, clients):
    host, admin, mod = await make_user(), await make_user(role="admin"), await make_user()
    room = await new_meeting(api, host, require_approval=True)
    status, _ = await api.call(
        "PUT", f"/api/meetings/{room}/members/{mod.id}/role", user=host, json={"role": "moderator"}
    )
    assert status == 200
    a = await join(api, admin, room, clients)
    assert a.welcome["you"]["role"] == "participant"
    m = await join(api, mod, room, clients)
    assert m.welcome["you"]["role"] == "moderator"
    guest = await make_user()
    g = await join(api, guest, room, clients, allow_waiting=True)
    assert g.events[0]["host_present"] is True  # a moderator (and an admin) can let them in
    knock = await m.wait_for("knock")
    assert (await a.wait_for("knock"))["participant_id"] == knock["participant_id"]
    await a.request({"type": "admit-all"}, "ack")
    assert (await g.admitted())["you"]["user_id"] == guest.id


async def test_lock_refuses_the_link_but_not_those_admitted(api, make_user, database, clients):
    host, guest, late = await make_user(), await make_user(), await make_user()
    room = await new_meeting(api, host)
    a = await join(api, host, room, clients)
    b = await join(api, guest, room, clients)
    await a.request({"type": "lock", "locked": True}, "ack")
    assert (await a.wait_for("meeting-updated"))["settings"]["locked"] is True
    assert (await b.wait_for("meeting-updated"))["settings"]["locked"] is True
    with pytest.raises(SignalingError) as locked:
        await join(api, late, room, clients)
    assert (locked.value.code, locked.value.close_code) == ("meeting-locked", 4423)
    status, body = await api.call("POST", f"/api/meetings/{room}/join", user=late)
    assert (status, body["error"]["code"]) == (423, "meeting-locked")
    await b.send({"type": "leave"})
    await b.wait_closed()
    again = await join(api, guest, room, clients)  # admitted before the lock: a reconnect
    assert again.welcome["you"]["user_id"] == guest.id
    with pytest.raises(SignalingError) as not_mod:
        await again.request({"type": "lock", "locked": False}, "ack")
    assert not_mod.value.code == "not-moderator"
    status, body = await api.call(
        "PUT", f"/api/meetings/{room}/lock", user=host, json={"locked": False}
    )
    assert (status, body) == (200, {"locked": False})
    assert (await join(api, late, room, clients)).welcome["you"]["user_id"] == late.id
    rows = await trail(database, room)
    assert ("lock", "ok", host.id) in rows and ("unlock", "ok", host.id) in rows
    assert ("meeting-join", "refused", late.id) in rows and ("unlock", "refused", guest.id) in rows


async def test_a_forged_role_in_hello_is_refused(api, make_user):
    """There is no way to claim a role: hello has no such field, and strict models refuse it."""
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host, require_approval=True)
    url = api.base_url.replace("http", "ws", 1) + f"/api/meetings/{room}/ws"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_json(
            {"type": "hello", "version": 1, "token": api.token_for(guest), "role": "host"}
        )
        event = await ws.receive_json(timeout=5)
        assert (event["type"], event["code"]) == ("error", "invalid-message")
        await ws.receive(timeout=5)
        assert ws.close_code == CloseCode.PROTOCOL
    assert api.app[LIVE].rooms.get(room) is None  # not even a knock
