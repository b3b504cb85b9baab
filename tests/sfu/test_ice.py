"""ICE: answers for a server behind a 1:1 NAT; host candidates in a fixed UDP port range."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from sfu import MediaServer, MediaSettings, NegotiationError
from sfu.ice import announce_address
from tests.helpers import eventually
from tests.turn_process import free_port_range

from .client import LOOPBACK, person
from .test_lifecycle import _mesh, _receives


def test_announced_address_rewrites_host_candidates_only():
    sdp = (
        "c=IN IP4 10.0.0.5\r\n"
        "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"
        "a=candidate:2 1 udp 1694498815 198.51.100.7 40001 typ srflx raddr 10.0.0.5 "
        "rport 40000\r\n"
    )
    out = announce_address(sdp, "203.0.113.9")
    assert "c=IN IP4 203.0.113.9" in out
    assert "203.0.113.9 40000 typ host" in out
    assert "198.51.100.7 40001 typ srflx" in out
    assert announce_address(sdp, None) == sdp


# ---------------------------------------------------------------- a fixed UDP port range


def candidate_ports(sdp: str) -> list[tuple[str, int]]:
    """(type, port) of each a=candidate line."""
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            bits = line.split()
            found.append((bits[7], int(bits[5])))
    return found


def server_ports(server: MediaServer) -> set[int]:
    """The UDP ports the media server's ICE sockets are bound to now."""
    ports = set()
    for room in server._rooms.values():
        for participant in room.participants.values():
            if participant.pc is not None:
                for transceiver in participant.pc.getTransceivers():
                    gatherer = transceiver.receiver.transport.transport.iceGatherer
                    ports |= {c.port for c in gatherer.getLocalCandidates()}
    return ports


@pytest.fixture
async def ranged() -> AsyncIterator[tuple[MediaServer, tuple[int, int]]]:
    port_range = free_port_range(10)
    srv = MediaServer(MediaSettings(ice_host_addresses=LOOPBACK, ice_port_range=port_range))
    yield srv, port_range
    await srv.close()


async def test_host_candidates_bind_in_the_port_range(ranged, cast):
    server, (low, high) = ranged
    clients = await _mesh(server, cast, 2)
    for c in clients:
        answer = c.pc.remoteDescription.sdp
        found = candidate_ports(answer)
        assert found and all(kind == "host" for kind, _ in found), found
        assert all(low <= port <= high for _, port in found), (found, (low, high))
        m_ports = [int(line.split()[1]) for line in answer.splitlines() if line.startswith("m=")]
        assert all(low <= port <= high for port in m_ports), m_ports
    assert len(server_ports(server)) == 2  # one port per participant (max-bundle, 1 address)
    for c in clients:
        await c.close()


async def test_a_full_range_refuses_the_next_offer_cleanly(cast):
    """Two ports, three people: the third offer is refused at once with `no-media-ports`
    (no hang, nothing half-made); the two others keep receiving; once someone leaves, the
    refused person's next offer gets the freed port and their media flows."""
    port_range = free_port_range(2)
    server = MediaServer(MediaSettings(ice_host_addresses=LOOPBACK, ice_port_range=port_range))
    try:
        first, second = await _mesh(server, cast, 2)
        third = person(server, cast[2])
        t0 = time.monotonic()
        with pytest.raises(NegotiationError) as refused:
            await third.join()
        assert refused.value.code == "no-media-ports"
        assert f"{port_range[0]}-{port_range[1]}" in refused.value.message
        assert time.monotonic() - t0 < 2.0
        assert third.pid in server._rooms["room"].participants  # seated, without media
        # the two others go on
        before = first.probe_for(second.pid, "camera").frames
        await asyncio.sleep(1.0)
        assert first.probe_for(second.pid, "camera").frames > before + 10
        assert second.probe_for(first.pid, "camera").frames > 10

        await first.close()
        await eventually(lambda: len(server_ports(server)) == 1, 5, "the port to be freed")
        await third.offer()  # the same peer connection, offered again
        await eventually(
            lambda: _receives(third, [second]) and _receives(second, [third]),
            15,
            "the refused person to see and be seen once a port is free",
            third.describe,
        )
        assert server_ports(server) <= set(range(port_range[0], port_range[1] + 1))
        for c in (second, third):
            await c.close()
    finally:
        await server.close()
