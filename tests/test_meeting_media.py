"""Whole meetings over the real server: signaling over WebSocket, media over loopback.

Each participant is `client.participant.Participant` — the reference client written against
docs/protocol.md — publishing synthetic VP8 + Opus of its own (tests/sfu/media.py: the n-th
person to join plays persona n, with its own frame size, tone and audio level), so every
check names whose media a slot must carry.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from client.participant import Participant
from client.signaling import SignalingError
from signaling.keys import LIVE
from signaling.realtime.protocol import CloseCode
from tests.helpers import eventually
from tests.sfu.media import Cast, Persona

LOOPBACK = ("127.0.0.1",)


@pytest.fixture
async def meeting(api, make_user):
    host = await make_user(name="Host")
    status, body = await api.call("POST", "/api/meetings", user=host, json={"title": "Media"})
    assert status == 201
    return host, body["room_id"]


class People:
    """Joins people to meetings; the n-th person to join plays persona n of the cast."""

    def __init__(self, api, cast: Cast) -> None:
        self.api = api
        self.cast = cast
        self.joined: list[Participant] = []
        self._personas: dict[int, Persona] = {}

    async def __call__(self, user, room, sources=("microphone", "camera")) -> Participant:
        persona = self.cast[len(self.joined)]
        person = Participant(
            self.api.base_url,
            room,
            self.api.token_for(user),
            persona.camera,
            ice_host_addresses=LOOPBACK,
            clips=persona.clips,
            audio_level=persona.level,
        )
        self._personas[id(person)] = persona
        self.joined.append(person)
        await person.join(sources)
        return person

    def persona(self, person: Participant) -> Persona:
        return self._personas[id(person)]

    def check_receives(self, person: Participant, others: list[Participant]) -> None:
        """`person`'s slot for each other participant carries that participant's media."""
        for other in others:
            for source in ("microphone", "camera"):
                probe = person.peer.probe_for(other.participant_id, source)
                where = f"{self.persona(person).name} receiving {self.persona(other).name}"
                self.cast.check(probe, self.persona(other), source, where=where)


@pytest.fixture
async def people(api, cast):
    people = People(api, cast)
    yield people
    await asyncio.gather(*(p.close() for p in people.joined), return_exceptions=True)


def receives_all(person: Participant, others: list[Participant]) -> bool:
    for other in others:
        for source in ("microphone", "camera"):
            probe = person.peer.probe_for(other.participant_id, source)
            if probe is None or probe.frames < 10:
                return False
    return True


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_three_people_see_and_hear_each_other(api, meeting, people, make_user):
    host, room = meeting
    a = await people(host, room)
    b = await people(await make_user(), room)
    c = await people(await make_user(), room)
    everyone = [a, b, c]
    await eventually(
        lambda: all(receives_all(p, [o for o in everyone if o is not p]) for p in everyone),
        20,
        "every participant to receive the other two",
    )
    for person in everyone:
        people.check_receives(person, [o for o in everyone if o is not person])
    stats = api.app[LIVE].media.stats()
    assert stats["decoders_started"] == 0
    assert stats["peer_connections"] == 3 and stats["forwarded_streams"] == 12
    # the same counters over HTTP, for operators and the capacity benchmark: admins only
    status, body = await api.call("GET", "/api/admin/media-stats", user=host)
    assert (status, body["error"]["code"]) == (403, "admin-only")
    admin = await make_user(role="admin")
    status, body = await api.call("GET", "/api/admin/media-stats", user=admin)
    assert status == 200
    assert body["participants"] == 3 and body["forwarded_streams"] == 12
    assert body["packets_forwarded"] >= body["frames_forwarded"] > 0
    assert body["decoders_started"] == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_screen_share_starts_and_stops(api, meeting, people, make_user, cast):
    host, room = meeting
    a = await people(host, room)
    b = await people(await make_user(), room)
    await eventually(lambda: receives_all(a, [b]), 15, "a to receive b")
    people.check_receives(a, [b])
    sharer = people.persona(b)
    started = time.monotonic()
    await b.start_screen()

    def screen_flows() -> bool:
        probe = a.peer.probe_for(b.participant_id, "screen")
        return (
            probe is not None
            and probe.frames_since(started) >= 10
            and cast.carries(probe, sharer, "screen", since=started)
        )

    await eventually(screen_flows, 10, "b's screen (800x600, the screen clip) at a")
    state = await a.signaling.wait_for("media-state", lambda e: e["screen"])
    assert state["participant_id"] == b.participant_id
    # while b shares, b's camera keeps coming on its own slot, and it is still the camera
    camera = a.peer.probe_for(b.participant_id, "camera")
    sharing = time.monotonic()
    await eventually(lambda: camera.frames_since(sharing) >= 15, 5, "b's camera while sharing")
    cast.check(camera, sharer, "camera", since=sharing, where="b's camera while sharing")
    cast.check(
        a.peer.probe_for(b.participant_id, "screen"), sharer, "screen", since=started, where="a"
    )
    await b.stop_screen()
    stopped = time.monotonic()
    await eventually(
        lambda: (b.participant_id, "screen") not in a.peer.receiving_from(),
        10,
        "screen slot to go idle",
    )
    assert (b.participant_id, "camera") in a.peer.receiving_from()
    await eventually(lambda: camera.frames_since(stopped) >= 15, 5, "b's camera after the share")
    cast.check(camera, sharer, "camera", since=stopped, where="b's camera after sharing")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_bad_offers_get_errors_and_spare_the_others(api, meeting, people, make_user):
    host, room = meeting
    a = await people(host, room)
    b = await people(await make_user(), room)
    await eventually(lambda: receives_all(a, [b]), 15, "a to receive b")
    people.check_receives(a, [b])
    with pytest.raises(SignalingError) as garbage:
        await b.signaling.request(
            {"type": "offer", "sdp": "v=0\r\nnot sdp", "tracks": {}}, "answer"
        )
    assert garbage.value.code == "bad-sdp"
    vp9_only = _only_codec(b.peer.pc.localDescription.sdp, "VP9")
    with pytest.raises(SignalingError) as vp9:
        await b.signaling.request(
            {"type": "offer", "sdp": vp9_only, "tracks": b.peer.published}, "answer"
        )
    assert vp9.value.code == "no-common-codec"
    before = a.peer.probe_for(b.participant_id, "camera").frames
    await asyncio.sleep(1.0)
    assert a.peer.probe_for(b.participant_id, "camera").frames > before + 10
    people.check_receives(a, [b])
    assert not b.signaling.closed.is_set()


def _only_codec(sdp: str, codec: str) -> str:
    """The same offer, with every video codec renamed to `codec` (e.g. a VP9-only browser)."""
    return sdp.replace("VP8/90000", f"{codec}/90000").replace("H264/90000", f"{codec}/90000")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_leaving_and_vanishing_stop_their_tracks(api, meeting, people, make_user):
    host, room = meeting
    a = await people(host, room)
    b = await people(await make_user(), room)
    c = await people(await make_user(), room)
    await eventually(lambda: receives_all(a, [b, c]), 20, "a to receive b and c")
    people.check_receives(a, [b, c])
    await b.leave()
    await eventually(
        lambda: all(pid != b.participant_id for pid, _ in a.peer.receiving_from()),
        5,
        "b's slots to go idle",
    )
    # c vanishes: its WebSocket and peer connection just close, no leave message
    await c.peer.pc.close()
    await c.signaling.close()
    await eventually(lambda: not a.peer.receiving_from(), 8, "c's slots to go idle")
    await eventually(lambda: api.app[LIVE].media.stats()["peer_connections"] == 1, 8, "server PCs")
    left = {e["participant_id"] for e in a.signaling.events if e["type"] == "participant-left"}
    assert left == {b.participant_id, c.participant_id}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_meeting_end_closes_every_peer_connection(api, meeting, people, make_user):
    host, room = meeting
    a = await people(host, room)
    b = await people(await make_user(), room)
    await eventually(lambda: receives_all(b, [a]), 15, "b to receive a")
    people.check_receives(b, [a])
    await a.signaling.send({"type": "end-meeting"})
    assert await b.signaling.wait_closed() == CloseCode.MEETING_ENDED
    await eventually(lambda: api.app[LIVE].media.stats()["peer_connections"] == 0, 8, "PCs closed")
    assert api.app[LIVE].rooms == {}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_answer_applied_opens_the_new_slots_over_the_socket(api, meeting, people, make_user):
    """The client's `answer-applied` (sent by `MediaPeer.offer` after each answer) reaches
    the media server: by the time a later ping is answered, no slot of the client is still
    held (they would otherwise wait out their grace period before sending anything)."""
    host, room = meeting
    a = await people(host, room)
    b = await people(await make_user(), room)
    await eventually(lambda: receives_all(a, [b]) and receives_all(b, [a]), 20, "a and b meet")
    for person in (a, b):
        await person.signaling.request({"type": "ping"}, "pong")
        slots = api.app[LIVE].media._rooms[room].participants[person.participant_id].slots
        assert slots and not any(slot.held for slot in slots.values())
    assert not [e for p in (a, b) for e in p.signaling.events if e["type"] == "error"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_receive_and_active_speaker_over_the_socket(api, meeting, people, make_user):
    host, room = meeting
    a = await people(host, room)
    b = await people(await make_user(), room)
    c = await people(await make_user(), room)
    assert a.signaling.welcome["limits"]["audio_streams"] == 3
    assert c.signaling.welcome["speakers"].keys() == {"participant_id", "recent"}
    await eventually(
        lambda: receives_all(a, [b, c]), 20, "a to receive b and c", lambda: a.peer.slots
    )
    # everyone talks (their levels are voiced): someone becomes the dominant speaker
    spoken = await a.signaling.wait_for("active-speaker", timeout=10)
    assert spoken["participant_id"] in {b.participant_id, c.participant_id, a.participant_id}

    # a gallery page that shows only c
    await a.signaling.send(
        {"type": "receive", "last_n": 4, "visible": [c.participant_id], "max_height": {}}
    )
    await eventually(
        lambda: (
            {(s.participant_id, s.source) for s in a.peer.slots if s.kind == "video"}
            & {(b.participant_id, "camera"), (c.participant_id, "camera")}
            == {(c.participant_id, "camera")}
        ),
        10,
        "only c's camera",
        lambda: a.peer.slots,
    )
    # a hidden tab: audio only
    await a.signaling.send({"type": "receive", "last_n": 0})
    await eventually(
        lambda: not any(s.participant_id for s in a.peer.slots if s.kind == "video"),
        10,
        "no video",
        lambda: a.peer.slots,
    )
    assert any(s.participant_id for s in a.peer.slots if s.kind == "audio")
    for bad in (
        {"type": "receive", "last_n": 26},
        {"type": "receive", "last_n": "9"},
        {"type": "receive", "visible": "everyone"},
        {"type": "receive", "max_height": {"p-x": -1}},
        {"type": "receive", "pinned": ["p"] * 26},
        {"type": "receive", "sideways": True},
    ):
        with pytest.raises(SignalingError) as refused:
            await a.signaling.request(bad, "tracks")
        assert refused.value.code == "invalid-message", bad
