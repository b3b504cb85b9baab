"""TERTULIA_ICE_PORT_MIN / _MAX through the whole server: real aiortc clients join over the
signaling WebSocket; every candidate of the server's answers is in the range; when the
range is full the next person's offer is refused with `no-media-ports` at once (the socket
stays open), and the people already in go on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from client.participant import Participant
from client.signaling import SignalingError
from signaling.config import ConfigError, Settings, load_settings
from tests.conftest import TEST_SECRET
from tests.helpers import eventually
from tests.test_meeting_media import receives_all
from tests.turn_process import free_port_range

LOOPBACK = ("127.0.0.1",)


@pytest.fixture
def port_range() -> tuple[int, int]:
    return free_port_range(2)


@pytest.fixture
def settings(tmp_path: Path, port_range: tuple[int, int]) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        jwt_secret=TEST_SECRET,
        public_url="https://meet.example.org",
        ice_host_addresses="127.0.0.1",
        ice_port_min=port_range[0],
        ice_port_max=port_range[1],
    )


def answer_ports(person: Participant) -> list[int]:
    sdp = person.peer.pc.remoteDescription.sdp
    return [int(line.split()[5]) for line in sdp.splitlines() if line.startswith("a=candidate:")]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_media_ports_stay_in_the_range_and_a_full_range_refuses_cleanly(
    api, make_user, clip, port_range
):
    low, high = port_range
    host = await make_user(name="Host")
    status, body = await api.call("POST", "/api/meetings", user=host, json={"title": "Ports"})
    assert status == 201
    room = body["room_id"]
    joined: list[Participant] = []

    def person(user) -> Participant:  # type: ignore[no-untyped-def]
        p = Participant(api.base_url, room, api.token_for(user), clip, ice_host_addresses=LOOPBACK)
        joined.append(p)
        return p

    try:
        a, b = person(host), person(await make_user())
        await a.join()
        await b.join()
        await eventually(lambda: receives_all(a, [b]) and receives_all(b, [a]), 15, "a ↔ b")
        ports = answer_ports(a) + answer_ports(b)
        assert ports and all(low <= port <= high for port in ports), (ports, low)
        assert len(set(answer_ports(a))) == len(set(answer_ports(b))) == 1  # one port each

        c = person(await make_user())
        t0 = time.monotonic()
        with pytest.raises(SignalingError) as refused:
            await c.join()
        assert refused.value.code == "no-media-ports"
        assert time.monotonic() - t0 < 5
        assert not c.signaling.closed.is_set()  # still in the meeting, without media
        before = a.peer.probe_for(b.participant_id, "camera").frames
        await asyncio.sleep(1.0)
        assert a.peer.probe_for(b.participant_id, "camera").frames > before + 10
    finally:
        await asyncio.gather(*(p.close() for p in joined), return_exceptions=True)


@pytest.mark.parametrize(
    ("fields", "variable", "words"),
    [
        ({"ice_port_min": 40000}, "TERTULIA_ICE_PORT_MAX", "go together"),
        ({"ice_port_max": 40000}, "TERTULIA_ICE_PORT_MAX", "go together"),
        ({"ice_port_min": 40100, "ice_port_max": 40000}, "TERTULIA_ICE_PORT_MAX", "below"),
        ({"ice_port_min": 80, "ice_port_max": 40000}, "TERTULIA_ICE_PORT_MIN", "1024"),
    ],
)
def test_a_port_range_that_cannot_work_stops_start_up(fields, variable, words):
    with pytest.raises(ConfigError) as refused:
        load_settings(**fields)
    assert variable in str(refused.value) and words in str(refused.value)
    assert load_settings(ice_port_min=40000, ice_port_max=40000).ice_port_max == 40000
