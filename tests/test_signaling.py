"""The signaling WebSocket over a real server on 127.0.0.1: handshake, events, bad input."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest

from client.signaling import SignalingClient, SignalingError
from signaling.keys import LIVE
from signaling.realtime.protocol import CHAT_MAX_CHARS, CloseCode
from storage import meetings
from tests.conftest import TEST_SECRET


async def new_meeting(api, host, **settings):
    body = {"title": "Signaling", "settings": settings}
    status, meeting = await api.call("POST", "/api/meetings", user=host, json=body)
    assert status == 201
    return meeting["room_id"]


async def connect(api, user, room):
    client = SignalingClient(api.base_url, room, api.token_for(user))
    await client.connect()
    return client


@pytest.fixture
async def clients():
    opened: list[SignalingClient] = []
    yield opened
    await asyncio.gather(*(c.close() for c in opened))


async def test_welcome_presence_and_leave(api, make_user, database, clients):
    host, guest = await make_user(name="Hosta"), await make_user(name="Guest")
    room = await new_meeting(api, host)
    a = await connect(api, host, room)
    clients.append(a)
    assert a.welcome["protocol_version"] == 1 and a.welcome["participants"] == []
    assert a.welcome["you"]["role"] == "host" and a.welcome["ice_servers"] == []
    assert a.welcome["meeting"]["room_id"] == room
    b = await connect(api, guest, room)
    clients.append(b)
    assert [p["display_name"] for p in b.welcome["participants"]] == ["Hosta"]
    joined = await a.wait_for("participant-joined")
    assert joined["participant"]["participant_id"] == b.participant_id
    assert joined["participant"]["media"] == {"microphone": False, "camera": False, "screen": False}
    await b.send({"type": "leave"})
    assert await b.wait_closed() == CloseCode.NORMAL
    left = await a.wait_for("participant-left")
    assert left["participant_id"] == b.participant_id
    async with database.session() as session:
        meeting = await meetings.get_meeting(session, room)
        visits = await meetings.visits(session, meeting.id)
        assert [(v.user_id, v.left_at is not None) for v in visits] == [
            (host.id, False),
            (guest.id, True),
        ]


async def test_closed_socket_removes_participant(api, make_user, database, clients):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a = await connect(api, host, room)
    clients.append(a)
    b = await connect(api, guest, room)
    await b.close()  # no leave message: just gone
    left = await a.wait_for("participant-left", timeout=5)
    assert left["participant_id"] == b.participant_id
    for _ in range(50):
        async with database.session() as session:
            visits = await meetings.visits(session, (await meetings.get_meeting(session, room)).id)
        if visits[-1].left_at is not None:
            break
        await asyncio.sleep(0.05)
    assert visits[-1].left_at is not None


async def expect_refused(api, room, token, close_code, error_code, first=None):
    client = SignalingClient(api.base_url, room, token)
    if first is None:
        with pytest.raises(SignalingError) as refused:
            await client.connect()
        assert (refused.value.close_code, refused.value.code) == (close_code, error_code)
        return
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(client.url) as ws:
        await ws.send_str(first)
        event = await ws.receive_json(timeout=5)
        assert event == {"type": "error", "code": error_code, "message": event["message"]}
        await ws.receive(timeout=5)
        assert ws.close_code == close_code


async def test_handshake_refusals(api, make_user, database):
    host, disabled = await make_user(), await make_user()
    room = await new_meeting(api, host, max_participants=2)
    now = int(time.time())
    expired = jwt.encode(
        {"sub": str(host.id), "role": "member", "iat": now - 90, "exp": now - 30},
        TEST_SECRET,
        algorithm="HS256",
    )
    async with database.session() as session:
        (await session.get(type(disabled), disabled.id)).is_active = False
    token = api.token_for(host)
    await expect_refused(api, room, "nonsense", CloseCode.UNAUTHORIZED, "invalid-token")
    await expect_refused(api, room, expired, CloseCode.UNAUTHORIZED, "token-expired")
    await expect_refused(
        api, room, api.token_for(disabled), CloseCode.FORBIDDEN, "account-disabled"
    )
    await expect_refused(api, "no-such-room", token, CloseCode.NOT_FOUND, "meeting-not-found")
    await expect_refused(
        api,
        room,
        token,
        CloseCode.PROTOCOL,
        "not-authenticated",
        first=json.dumps({"type": "chat", "text": "hi"}),
    )
    await expect_refused(api, room, token, CloseCode.PROTOCOL, "malformed-json", first="{oops")
    await expect_refused(
        api,
        room,
        token,
        CloseCode.PROTOCOL,
        "unsupported-version",
        first=json.dumps({"type": "hello", "version": 99, "token": token}),
    )
    await expect_refused(
        api,
        room,
        token,
        CloseCode.PROTOCOL,
        "invalid-message",
        first=json.dumps({"type": "hello", "version": 1, "token": token, "x": 1}),
    )
    assert (await api.call("POST", f"/api/meetings/{room}/end", user=host))[0] == 200
    await expect_refused(api, room, token, CloseCode.CONFLICT, "meeting-ended")


async def test_max_participants_under_concurrent_joins(api, make_user, clients):
    host = await make_user()
    room = await new_meeting(api, host, max_participants=3)
    people = [await make_user() for _ in range(7)]
    tries = [SignalingClient(api.base_url, room, api.token_for(p)) for p in people]
    results = await asyncio.gather(*(c.connect() for c in tries), return_exceptions=True)
    clients.extend(c for c, r in zip(tries, results, strict=True) if isinstance(r, dict))
    refused = [r for r in results if isinstance(r, SignalingError)]
    assert len(clients) == 3 and len(refused) == 4
    assert {(r.close_code, r.code) for r in refused} == {(CloseCode.CONFLICT, "meeting-full")}


async def test_rejoin_replaces_the_old_connection(api, make_user, clients):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a = await connect(api, host, room)
    first = await connect(api, guest, room)
    second = await connect(api, guest, room)
    clients.extend([a, second])
    assert await first.wait_closed() == CloseCode.REPLACED
    left = await a.wait_for(
        "participant-left", lambda e: e["participant_id"] == first.participant_id
    )
    assert left["reason"] == "replaced"
    assert [p["participant_id"] for p in second.welcome["participants"]] == [a.participant_id]


async def test_chat_broadcast_history_and_limits(api, make_user, clients):
    host, guest = await make_user(name="H"), await make_user()
    room = await new_meeting(api, host)
    a = await connect(api, host, room)
    clients.append(a)
    for i in range(3):
        reply = await a.request({"type": "chat", "text": f"  hello {i} "}, "chat")
        assert reply["message"]["text"] == f"hello {i}"
        assert reply["message"]["author"] == {"user_id": host.id, "display_name": "H"}
    b = await connect(api, guest, room)
    clients.append(b)
    assert [m["text"] for m in b.welcome["chat"]] == ["hello 0", "hello 1", "hello 2"]
    await b.send({"type": "chat", "text": "from b"})
    assert (await a.wait_for("chat"))["message"]["text"] == "from b"
    with pytest.raises(SignalingError) as too_long:
        await a.request({"type": "chat", "text": "x" * (CHAT_MAX_CHARS + 1)}, "chat")
    assert too_long.value.code == "chat-too-long"
    with pytest.raises(SignalingError) as empty:
        await a.request({"type": "chat", "text": "   "}, "chat")
    assert empty.value.code == "invalid-message"
    status, _ = await api.call(
        "PATCH", f"/api/meetings/{room}", user=host, json={"settings": {"enable_chat": False}}
    )
    assert status == 200
    with pytest.raises(SignalingError) as disabled:
        await a.request({"type": "chat", "text": "still there?"}, "chat")
    assert disabled.value.code == "chat-disabled"


async def test_media_state_broadcast_and_stored(api, make_user, database, clients):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a, b = await connect(api, host, room), await connect(api, guest, room)
    clients.extend([a, b])
    await b.send({"type": "media-state", "microphone": False, "camera": True, "screen": True})
    event = await a.wait_for("media-state")
    assert event == {
        "type": "media-state",
        "participant_id": b.participant_id,
        "microphone": False,
        "camera": True,
        "screen": True,
    }
    with pytest.raises(SignalingError) as other:
        await b.request(
            {
                "type": "media-state",
                "participant_id": a.participant_id,
                "microphone": True,
                "camera": True,
                "screen": False,
            },
            "media-state",
        )
    assert other.value.code == "not-your-participant"
    c = await connect(api, await make_user(), room)
    clients.append(c)
    seen = {p["participant_id"]: p["media"] for p in c.welcome["participants"]}
    assert seen[b.participant_id] == {"microphone": False, "camera": True, "screen": True}
    async with database.session() as session:
        visits = await meetings.visits(session, (await meetings.get_meeting(session, room)).id)
        stored = next(v for v in visits if v.user_id == guest.id)
        assert (stored.microphone_on, stored.camera_on, stored.screen_on) == (False, True, True)


async def test_bad_messages_get_errors_and_harm_nobody(api, make_user, clients):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a, b = await connect(api, host, room), await connect(api, guest, room)
    clients.extend([a, b])
    cases = [
        ("{not json", "malformed-json"),
        ("[1, 2]", "invalid-message"),
        ('{"type": 7}', "invalid-message"),
        ('{"type": "teleport"}', "unknown-type"),
        ('{"type": "chat"}', "invalid-message"),
        ('{"type": "chat", "text": "hi", "extra": true}', "invalid-message"),
        (
            '{"type": "media-state", "microphone": "loud", "camera": true, "screen": false}',
            "invalid-message",
        ),
        ('{"type": "offer", "sdp": "", "tracks": {}}', "invalid-message"),
        ('{"type": "offer", "sdp": "v=0", "tracks": {"0": "hologram"}}', "invalid-message"),
        ('{"type": "hello", "version": 1, "token": "x"}', "already-authenticated"),
    ]
    for raw, code in cases:
        await b.send_raw(raw)
        event = await b.wait_for("error")
        assert event["code"] == code, raw
    await b.send_raw(b"\x00\x01")
    assert (await b.wait_for("error"))["code"] == "invalid-message"
    with pytest.raises(SignalingError) as not_host:
        await b.request({"type": "end-meeting"}, "meeting-ended")
    assert not_host.value.code == "not-moderator"
    reply = await b.request({"type": "chat", "text": "still fine"}, "chat")
    assert reply["message"]["text"] == "still fine"
    assert (await a.wait_for("chat"))["message"]["text"] == "still fine"
    assert not a.closed.is_set() and not b.closed.is_set()


async def test_flood_is_rate_limited_then_closed(api, make_user, clients):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a, b = await connect(api, host, room), await connect(api, guest, room)
    clients.extend([a, b])
    for _ in range(400):
        await b.send_raw('{"type": "ping"}')
    assert await b.wait_closed() == CloseCode.FLOOD
    assert any(e["type"] == "error" and e["code"] == "rate-limited" for e in b.events)
    assert (await a.request({"type": "ping"}, "pong"))["type"] == "pong"
    left = await a.wait_for("participant-left")
    assert left["participant_id"] == b.participant_id


async def test_oversized_message_closes_with_1009(api, make_user, clients):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a, b = await connect(api, host, room), await connect(api, guest, room)
    clients.extend([a, b])
    await b.send_raw(json.dumps({"type": "chat", "text": "x" * (600 * 1024)}))
    assert await b.wait_closed() == CloseCode.MESSAGE_TOO_BIG
    await a.wait_for("participant-left")
    assert (await a.request({"type": "ping"}, "pong"))["type"] == "pong"


@pytest.mark.parametrize("how", ["rest", "signaling"])
async def test_host_ends_meeting_for_everyone(api, make_user, database, clients, how):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a, b = await connect(api, host, room), await connect(api, guest, room)
    clients.extend([a, b])
    if how == "rest":
        assert (await api.call("POST", f"/api/meetings/{room}/end", user=host))[0] == 200
    else:
        await a.send({"type": "end-meeting"})
    for client in (a, b):
        assert (await client.wait_for("meeting-ended"))["reason"]
        assert await client.wait_closed() == CloseCode.MEETING_ENDED
    async with database.session() as session:
        meeting = await meetings.get_meeting(session, room)
        assert meeting.status == "ended"
        assert all(v.left_at for v in await meetings.visits(session, meeting.id))


async def test_missed_keepalives_disconnect_within_seconds(api, make_user, clients):
    import aiohttp

    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a = await connect(api, host, room)
    clients.append(a)
    silent = SignalingClient(api.base_url, room, api.token_for(guest))
    async with aiohttp.ClientSession() as session:
        # autoping off and never reading: the server's pings go unanswered
        ws = await session.ws_connect(silent.url, autoping=False)
        await ws.send_json({"type": "hello", "version": 1, "token": silent.token})
        started = asyncio.get_running_loop().time()
        left = await a.wait_for("participant-left", timeout=20)
        elapsed = asyncio.get_running_loop().time() - started
        await ws.close()
    assert elapsed < 12, f"took {elapsed:.1f}s"
    assert left["participant_id"] != a.participant_id


async def test_no_session_tasks_left_behind(api, make_user):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    a, b = await connect(api, host, room), await connect(api, guest, room)
    await b.send({"type": "leave"})
    await b.wait_closed()
    await a.close()
    for _ in range(100):
        names = [t.get_name() for t in asyncio.all_tasks()]
        if not any(n.startswith("ws-") for n in names):
            break
        await asyncio.sleep(0.05)
    assert not [n for n in names if n.startswith("ws-")]
    assert api.app[LIVE].rooms == {}


async def test_hello_deadline_is_absolute_even_for_sockets_that_answer_pings(
    api, make_user, monkeypatch
):
    import aiohttp

    from signaling.realtime import session as session_module

    monkeypatch.setattr(session_module, "HELLO_TIMEOUT_SECONDS", 1.5)
    monkeypatch.setattr(session_module, "HEARTBEAT_SECONDS", 0.3)  # pings well before it
    host = await make_user()
    room = await new_meeting(api, host)
    url = SignalingClient(api.base_url, room, "").url

    async def idle(session: aiohttp.ClientSession) -> tuple[list[str], int | None]:
        """Never say hello, but answer every ping (reading is what answers them)."""
        ws = await session.ws_connect(url, autoping=True)
        codes = []
        async for msg in ws:
            codes.append(msg.json()["code"])
        return codes, ws.close_code

    async with aiohttp.ClientSession() as session:
        results = await asyncio.wait_for(
            asyncio.gather(*(idle(session) for _ in range(10))), timeout=15
        )
    assert results == [(["not-authenticated"], CloseCode.HANDSHAKE_TIMEOUT)] * 10


async def test_sockets_waiting_for_hello_are_capped_per_address(api, make_user):
    import aiohttp

    host = await make_user()
    room = await new_meeting(api, host)
    url = SignalingClient(api.base_url, room, "").url
    async with aiohttp.ClientSession() as session:
        waiting = [await session.ws_connect(url) for _ in range(20)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url)
        assert refused.value.status == 429
        # saying hello frees the place
        await waiting[0].send_json({"type": "hello", "version": 1, "token": api.token_for(host)})
        assert (await waiting[0].receive_json(timeout=5))["type"] == "welcome"
        extra = await session.ws_connect(url)
        for ws in [*waiting, extra]:
            await ws.close()


async def test_origin_must_be_ours(api, make_user, clients):
    import aiohttp

    host = await make_user()
    room = await new_meeting(api, host)
    url = SignalingClient(api.base_url, room, "").url
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, origin="https://evil.example.com")
        assert refused.value.status == 403
        ws = await session.ws_connect(url, origin="https://meet.example.org")  # the public URL
        await ws.send_json({"type": "hello", "version": 1, "token": api.token_for(host)})
        assert (await ws.receive_json(timeout=5))["type"] == "welcome"
        await ws.close()
    response = await api.client.get(f"/api/meetings/{room}/ws", headers={"Origin": "null"})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "origin-not-allowed"


async def test_plain_get_on_the_socket_route_is_a_400(api, make_user):
    host = await make_user()
    room = await new_meeting(api, host)
    status, body = await api.call("GET", f"/api/meetings/{room}/ws")
    assert status == 400 and body["error"]["code"] == "bad-request"


async def test_hello_without_a_token_is_missing_token(api, make_user):
    host = await make_user()
    room = await new_meeting(api, host)
    for hello in ({"type": "hello", "version": 1}, {"type": "hello", "version": 1, "token": ""}):
        await expect_refused(
            api, room, "", CloseCode.UNAUTHORIZED, "missing-token", first=json.dumps(hello)
        )


async def test_deep_json_on_the_socket(api, make_user, clients):
    host, guest = await make_user(), await make_user()
    room = await new_meeting(api, host)
    deep = "[" * 50_000 + "]" * 50_000
    await expect_refused(
        api, room, api.token_for(host), CloseCode.PROTOCOL, "malformed-json", first=deep
    )
    a, b = await connect(api, host, room), await connect(api, guest, room)
    clients.extend([a, b])
    await b.send_raw(deep)
    assert (await b.wait_for("error"))["code"] == "malformed-json"
    assert (await b.request({"type": "ping"}, "pong"))["type"] == "pong"
    assert not a.closed.is_set()


async def test_protocol_types_are_strict(api, make_user, clients):
    host = await make_user()
    room = await new_meeting(api, host)
    a = await connect(api, host, room)
    clients.append(a)
    for value in ("yes", 1, 0, "true", None):
        with pytest.raises(SignalingError) as refused:
            await a.request(
                {"type": "media-state", "microphone": value, "camera": True, "screen": False},
                "media-state",
            )
        assert refused.value.code == "invalid-message", value
    await expect_refused(
        api,
        room,
        "",
        CloseCode.PROTOCOL,
        "invalid-message",
        first=json.dumps({"type": "hello", "version": 1, "token": 12345}),
    )


async def test_participant_left_says_why(api, make_user, clients, monkeypatch):
    import aiohttp

    from signaling.realtime import session as session_module

    monkeypatch.setattr(session_module, "HEARTBEAT_SECONDS", 1.0)
    host, leaver, dropper, silent_user = [await make_user() for _ in range(4)]
    room = await new_meeting(api, host)
    a = await connect(api, host, room)
    clients.append(a)
    b = await connect(api, leaver, room)
    await b.send({"type": "leave"})
    assert (await a.wait_for("participant-left"))["reason"] == "left"
    c = await connect(api, dropper, room)
    await c.close()
    assert (await a.wait_for("participant-left"))["reason"] == "disconnected"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(SignalingClient(api.base_url, room, "").url, autoping=False)
        await ws.send_json({"type": "hello", "version": 1, "token": api.token_for(silent_user)})
        left = await a.wait_for("participant-left", timeout=15)
        assert left["reason"] == "timed-out"
        await ws.close()


async def test_nul_bytes_on_the_socket_never_reach_the_database(api, make_user, clients):
    host = await make_user()
    room = await new_meeting(api, host)
    token = api.token_for(host)
    for odd_room in ("a\x00b", "%00", "x" * 65):
        await expect_refused(api, odd_room, token, CloseCode.NOT_FOUND, "meeting-not-found")
    a = await connect(api, host, room)
    clients.append(a)
    with pytest.raises(SignalingError) as refused:
        await a.request({"type": "chat", "text": "hi\x00there"}, "chat")
    assert refused.value.code == "invalid-message"
    assert (await a.request({"type": "chat", "text": "still fine"}, "chat"))["type"] == "chat"
