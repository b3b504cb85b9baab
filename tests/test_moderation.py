"""Moderation over the real server: roles, mutes, removals, hands — and with real media,
that a muted or removed person's tracks stop reaching the others."""

from __future__ import annotations

import asyncio
import time

import pytest

from client.signaling import SignalingClient, SignalingError
from signaling.keys import LIVE
from signaling.realtime.protocol import CloseCode
from storage import audit
from tests.helpers import eventually
from tests.test_meeting_media import People
from tests.test_signaling import new_meeting
from tests.test_waiting_room import join, trail


@pytest.fixture
async def clients():
    opened: list[SignalingClient] = []
    yield opened
    await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)


async def refused(client, message) -> str:
    with pytest.raises(SignalingError) as error:
        await client.request(message, "ack")
    return error.value.code


async def test_roles_one_set_of_rules(api, make_user, database, clients):
    host, b_user, c_user = await make_user(), await make_user(), await make_user()
    room = await new_meeting(api, host)
    a = await join(api, host, room, clients)
    b = await join(api, b_user, room, clients)
    c = await join(api, c_user, room, clients)
    # participants moderate nobody
    assert (
        await refused(
            c, {"type": "mute", "participant_id": b.participant_id, "sources": ["microphone"]}
        )
        == "not-moderator"
    )
    assert (
        await refused(
            c, {"type": "set-role", "participant_id": c.participant_id, "role": "moderator"}
        )
        == "not-host"
    )
    # the host makes b a moderator: everyone is told, and b may now moderate c
    await a.request(
        {"type": "set-role", "participant_id": b.participant_id, "role": "moderator"}, "ack"
    )
    changed = await c.wait_for("role-changed")
    assert (changed["participant_id"], changed["role"]) == (b.participant_id, "moderator")
    await b.request(
        {"type": "mute", "participant_id": c.participant_id, "sources": ["microphone", "camera"]},
        "ack",
    )
    muted = await c.wait_for("muted")
    assert muted["sources"] == ["camera", "microphone"] and muted["may_unmute"] is True
    assert muted["by"]["user_id"] == b_user.id
    # ...but not the host, and cannot hand out roles
    assert (
        await refused(
            b, {"type": "mute", "participant_id": a.participant_id, "sources": ["microphone"]}
        )
        == "cannot-moderate-host"
    )
    assert (
        await refused(
            b, {"type": "set-role", "participant_id": c.participant_id, "role": "moderator"}
        )
        == "not-host"
    )
    # the host hands the host role to b: two role changes and a new host id
    await a.request({"type": "set-role", "participant_id": b.participant_id, "role": "host"}, "ack")
    roles = {}
    for _ in range(2):
        event = await c.wait_for("role-changed")
        roles[event["participant_id"]] = event["role"]
    assert roles == {a.participant_id: "moderator", b.participant_id: "host"}
    assert await c.wait_for("meeting-updated", lambda e: e["host_id"] == b_user.id)
    status, read = await api.call("GET", f"/api/meetings/{room}", user=b_user)
    assert read["is_host"] is True
    # and the same rules hold over REST
    status, body = await api.call(
        "PUT",
        f"/api/meetings/{room}/members/{c_user.id}/role",
        user=host,
        json={"role": "moderator"},
    )
    assert (status, body["error"]["code"]) == (403, "not-host")
    status, body = await api.call(
        "PUT",
        f"/api/meetings/{room}/members/{b_user.id}/role",
        user=b_user,
        json={"role": "participant"},
    )
    assert (status, body["error"]["code"]) == (409, "cannot-moderate-host")
    status, people = await api.call("GET", f"/api/meetings/{room}/participants", user=c_user)
    assert status == 200
    assert {p["participant_id"]: p["role"] for p in people["items"]} == {
        a.participant_id: "moderator",
        b.participant_id: "host",
        c.participant_id: "participant",
    }
    held = next(p for p in people["items"] if p["participant_id"] == c.participant_id)["held"]
    assert held == ["camera", "microphone"]
    rows = await trail(database, room)
    assert ("set-role", "ok", host.id) in rows and ("mute", "ok", b_user.id) in rows
    assert ("set-role", "refused", c_user.id) in rows and ("mute", "refused", b_user.id) in rows


async def test_unmuting_after_a_moderator_mute(api, make_user, database, clients):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host, allow_self_unmute=False)
    a = await join(api, host, room, clients)
    b = await join(api, guest, room, clients)
    on = {"type": "media-state", "microphone": True, "camera": True, "screen": False}
    await b.send(on)
    await a.wait_for("media-state", lambda e: e["microphone"])
    await a.request(
        {"type": "mute", "participant_id": b.participant_id, "sources": ["microphone"]}, "ack"
    )
    muted = await b.wait_for("muted")
    assert muted["may_unmute"] is False
    state = await a.wait_for("media-state", lambda e: not e["microphone"])
    assert state["camera"] is True  # only what was muted
    assert await refused(b, on) == "muted-by-moderator"
    await a.request({"type": "allow-unmute", "participant_id": b.participant_id}, "ack")
    assert (await b.wait_for("unmute-allowed"))["by"]["user_id"] == host.id
    await b.send(on)
    await a.wait_for("media-state", lambda e: e["microphone"])
    # mute everyone: every microphone but the asker's
    await a.send(on)
    await a.request({"type": "mute-all"}, "ack")
    await b.wait_for("muted")
    assert not any(e["type"] == "muted" for e in a.events)
    status, _ = await api.call("DELETE", f"/api/meetings/{room}", user=guest)
    assert status == 403
    assert (await api.call("DELETE", f"/api/meetings/{room}", user=host))[0] == 204
    assert [(action, outcome) for action, outcome, _ in await trail(database, room)] == [
        ("meeting-join", "ok"),  # the guest, admitted (the host needs no admission)
        ("mute", "ok"),
        ("allow-unmute", "ok"),
        ("mute-all", "ok"),
        ("meeting-delete", "refused"),
        ("meeting-delete", "ok"),
    ]


async def test_remove_and_bar(api, make_user, database, clients):
    host, guest, other = await make_user(), await make_user(), await make_user()
    room = await new_meeting(api, host)
    a = await join(api, host, room, clients)
    b = await join(api, guest, room, clients)
    c = await join(api, other, room, clients)
    assert await refused(b, {"type": "remove", "participant_id": a.participant_id}) == (
        "not-moderator"
    )
    await a.request({"type": "remove", "participant_id": c.participant_id}, "ack")
    removed = await c.wait_for("removed")
    assert removed == {
        "type": "removed",
        "by": {"user_id": host.id, "display_name": host.display_name},
        "barred": False,
    }
    assert await c.wait_closed() == CloseCode.REMOVED
    left = await b.wait_for("participant-left")
    assert (left["participant_id"], left["reason"]) == (c.participant_id, "removed")
    again = await join(api, other, room, clients)  # not barred: may come back (no waiting room)
    status, _ = await api.call(
        "POST",
        f"/api/meetings/{room}/participants/{again.participant_id}/remove",
        user=host,
        json={"bar": True},
    )
    assert status == 204
    assert await again.wait_closed() == CloseCode.REMOVED
    with pytest.raises(SignalingError) as barred:
        await join(api, other, room, clients)
    assert (barred.value.code, barred.value.close_code) == ("barred", 4403)
    status, body = await api.call("POST", f"/api/meetings/{room}/join", user=other)
    assert (status, body["error"]["code"]) == (403, "barred")
    async with database.session() as db:
        rows = [e for e in await audit.trail(db, action="remove") if e.room_id == room]
    assert [(e.user_id, e.subject_user_id, e.detail, e.outcome) for e in rows] == [
        (
            guest.id,
            host.id,
            "not-moderator: only the host, a moderator or an admin may do this",
            "refused",
        ),
        (host.id, other.id, "", "ok"),
        (host.id, other.id, "barred", "ok"),
    ]


async def test_hands_in_order(api, make_user, clients):
    host, b_user, c_user = await make_user(), await make_user(), await make_user()
    room = await new_meeting(api, host)
    a = await join(api, host, room, clients)
    b = await join(api, b_user, room, clients)
    c = await join(api, c_user, room, clients)
    await c.request({"type": "hand", "raised": True}, "ack")
    await b.request({"type": "hand", "raised": True}, "ack")
    hands = [await a.wait_for("hand") for _ in range(2)]
    assert [h["participant_id"] for h in hands] == [c.participant_id, b.participant_id]
    assert hands[0]["at"] <= hands[1]["at"]
    assert (
        await refused(b, {"type": "hand", "raised": False, "participant_id": c.participant_id})
        == "not-moderator"
    )
    assert (
        await refused(b, {"type": "hand", "raised": True, "participant_id": c.participant_id})
        == "not-your-participant"
    )
    await a.request({"type": "hand", "raised": False, "participant_id": c.participant_id}, "ack")
    lowered = await b.wait_for("hand", lambda e: not e["raised"])
    assert lowered == {
        "type": "hand",
        "participant_id": c.participant_id,
        "raised": False,
        "at": None,
    }
    late = await join(api, await make_user(), room, clients)
    raised = {p["participant_id"]: p["hand_raised_at"] for p in late.welcome["participants"]}
    assert raised[b.participant_id] is not None and raised[c.participant_id] is None


# --- with real media ----------------------------------------------------------------------


@pytest.fixture
async def people(api, cast):
    people = People(api, cast)
    yield people
    await asyncio.gather(*(p.close() for p in people.joined), return_exceptions=True)


def _flat(probe, window: float = 0.5) -> bool:
    """Whether the probe received nothing in the last `window` seconds."""
    return probe.last_frame_at is None or time.monotonic() - probe.last_frame_at > window


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_muted_publisher_stops_reaching_the_others(api, make_user, people):
    """b keeps sending (this client ignores `muted`, as a hostile one would): the server
    stops forwarding at once, and resumes when b turns the microphone on again."""
    host = await make_user()
    room = await new_meeting(api, host)
    a = await people(host, room)
    b = await people(await make_user(), room)
    c = await people(await make_user(), room)
    await eventually(
        lambda: all(
            (x.peer.probe_for(b.participant_id, "microphone") or _Never).frames > 20 for x in (a, c)
        ),
        20,
        "a and c to hear b",
    )
    heard = c.peer.probe_for(b.participant_id, "microphone")
    seen = c.peer.probe_for(b.participant_id, "camera")
    media = api.app[LIVE].media
    received_before = media.counters.packets_in
    muted_at = time.monotonic()
    await a.signaling.request(
        {"type": "mute", "participant_id": b.participant_id, "sources": ["microphone"]}, "ack"
    )
    await eventually(lambda: _flat(heard, 0.3), 3, "b's audio at c to stop")
    assert heard.last_frame_at - muted_at < 1.0, "b's audio went on for a second after the mute"
    frames = heard.frames
    await asyncio.sleep(1.0)
    assert heard.frames == frames, "b's audio still reaches c after the mute"
    assert (b.participant_id, "microphone") not in c.peer.receiving_from()
    assert media.counters.packets_in > received_before + 50  # b still sends: the server drops
    assert seen.frames_since(muted_at + 0.5) > 10  # b's camera was not muted
    # b turns the microphone on again (the meeting lets people unmute): forwarding resumes
    await b.signaling.send(
        {"type": "media-state", "microphone": True, "camera": True, "screen": False}
    )
    await eventually(
        lambda: (
            (c.peer.probe_for(b.participant_id, "microphone") or _Never).frames_since(
                time.monotonic() - 0.5
            )
            > 5
        ),
        10,
        "b's audio at c again",
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_removed_publisher_stops_and_cannot_return(api, make_user, people):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a = await people(host, room)
    b = await people(guest, room)
    await eventually(
        lambda: (a.peer.probe_for(b.participant_id, "camera") or _Never).frames > 10,
        20,
        "a to see b",
    )
    seen = a.peer.probe_for(b.participant_id, "camera")
    await a.signaling.request(
        {"type": "remove", "participant_id": b.participant_id, "bar": True}, "ack"
    )
    assert await b.signaling.wait_closed() == CloseCode.REMOVED
    await eventually(lambda: _flat(seen, 0.3), 3, "b's video at a to stop")
    assert all(pid != b.participant_id for pid, _ in a.peer.receiving_from())
    with pytest.raises(SignalingError) as barred:
        await people(guest, room)
    assert barred.value.code == "barred"


class _NeverProbe:
    frames = 0
    last_frame_at = None

    def frames_since(self, _t0: float) -> int:
        return 0


_Never = _NeverProbe()


async def test_a_mute_and_a_hand_survive_a_reconnect(api, make_user, clients):
    """Reconnecting, or a second tab, must not lift a moderator's mute."""
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host, allow_self_unmute=False)
    a = await join(api, host, room, clients)
    b = await join(api, guest, room, clients)
    await b.request({"type": "hand", "raised": True}, "ack")
    await a.request(
        {"type": "mute", "participant_id": b.participant_id, "sources": ["microphone"]}, "ack"
    )
    await b.wait_for("muted")
    again = await join(api, guest, room, clients)
    assert again.welcome["you"]["held"] == ["microphone"]
    assert again.welcome["you"]["hand_raised_at"] is not None
    on = {"type": "media-state", "microphone": True, "camera": False, "screen": False}
    assert await refused(again, on) == "muted-by-moderator"
    assert api.app[LIVE].media._rooms[room].participants[again.participant_id].blocked == {
        "microphone"
    }
