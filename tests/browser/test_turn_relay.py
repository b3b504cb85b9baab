"""A browser forced through TURN: real coturn, real Chromium, the real server.

coturn (Debian's `turnserver`, started and stopped here) runs with the TURN REST API's
shared secret, which the server (its own process, ICE host candidates in a fixed UDP port
range) shares. Ana opens the meeting with `?ice=relay`: her RTCPeerConnection uses
`iceTransportPolicy: "relay"`, so every packet goes through coturn with the credentials of
her welcome. She must decode Bo's camera over a candidate pair whose local candidate is a
relay one; coturn's log shows her allocation under her own user id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, USERS, Server
from tests.browser.pages import assert_receiving_video, join, open_person, participant_id, sign_in
from tests.turn_process import TurnServer, free_port_range, turnserver_available

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not turnserver_available(), reason="turnserver is not installed"),
]

SECRET = "browser-turn-secret-" + "t" * 20

# The selected candidate pair of the page's peer connection, and every local candidate.
SELECTED_PAIR = """async () => {
  const pc = window.__tertulia && window.__tertulia.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  const byId = new Map();
  stats.forEach((r) => byId.set(r.id, r));
  let pair = null;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      pair = byId.get(r.selectedCandidatePairId);
    }
  });
  const local = [];
  stats.forEach((r) => { if (r.type === 'local-candidate') local.push(r.candidateType); });
  if (!pair) return {pair: null, local};
  const l = byId.get(pair.localCandidateId), r = byId.get(pair.remoteCandidateId);
  return {pair: {state: pair.state, bytesReceived: pair.bytesReceived,
                 local: {type: l.candidateType, address: l.address, port: l.port,
                         relayProtocol: l.relayProtocol || null},
                 remote: {type: r.candidateType, address: r.address, port: r.port}},
          local};
}"""


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    turn = TurnServer(tmp_path_factory.mktemp("coturn"), SECRET)
    turn.start()
    try:
        yield turn
    finally:
        turn.stop()


@pytest.fixture(scope="module")
def ice_ports() -> tuple[int, int]:
    return free_port_range(8)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, coturn: TurnServer, ice_ports: tuple[int, int]
) -> Iterator[Server]:
    """This module's server: TURN credentials for coturn, ICE ports in a fixed range."""
    srv = Server(tmp_path_factory.mktemp("tertulia-data"))
    srv.env |= {
        "TERTULIA_TURN_URLS": coturn.url,
        "TERTULIA_TURN_SECRET": SECRET,
        "TERTULIA_TURN_TTL_SECONDS": "600",
        "TERTULIA_ICE_PORT_MIN": str(ice_ports[0]),
        "TERTULIA_ICE_PORT_MAX": str(ice_ports[1]),
    }
    for who in ("ana", "bo"):
        email, name = USERS[who]
        srv.create_user(email, name, PASSWORD)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def test_video_through_the_turn_relay(
    browser: Any,
    contexts: list[Any],
    server: Server,
    coturn: TurnServer,
    ice_ports: tuple[int, int],
) -> None:
    room_id = server.create_meeting("ana")["room_id"]
    ana = open_person(browser, contexts, server)
    bo = open_person(browser, contexts, server)
    sign_in(ana, server, "ana")
    sign_in(bo, server, "bo")
    expect(ana.get_by_test_id("dashboard")).to_be_visible()
    expect(bo.get_by_test_id("dashboard")).to_be_visible()

    ana.goto(f"/m/{room_id}?ice=relay")
    join(ana)
    join(bo, room_id)
    bo_id = participant_id(bo)

    # Ana's welcome carried coturn with credentials of her own (<expiry>:<user id>).
    ice_servers = ana.evaluate("() => window.__tertulia.session.welcome.ice_servers")
    (entry,) = ice_servers
    assert entry["urls"] == [coturn.url]
    ana_user = ana.evaluate("() => window.__tertulia.session.welcome.you.user_id")
    assert re.fullmatch(rf"\d+:{ana_user}", entry["username"]), entry

    stats = assert_receiving_video(ana, bo_id)
    print(f"Ana decodes Bo's camera through coturn at {stats['fps']:.1f} fps")
    selected = ana.evaluate(SELECTED_PAIR)
    assert selected["pair"] is not None, selected
    assert selected["pair"]["local"]["type"] == "relay", selected
    assert selected["pair"]["local"]["relayProtocol"] == "udp", selected
    assert set(selected["local"]) == {"relay"}, selected  # the policy gathered nothing else
    # The server's end of the pair is its host candidate, in the configured range.
    remote = selected["pair"]["remote"]
    assert remote["address"] == "127.0.0.1", selected
    assert ice_ports[0] <= remote["port"] <= ice_ports[1], (selected, ice_ports)
    answer = ana.evaluate("() => window.__tertulia.pc.remoteDescription.sdp")
    ports = [
        int(line.split()[5]) for line in answer.splitlines() if line.startswith("a=candidate:")
    ]
    assert ports and all(ice_ports[0] <= p <= ice_ports[1] for p in ports), (ports, ice_ports)

    # coturn authenticated her allocation with those credentials.
    log = coturn.log()
    assert f"user <{entry['username']}>" in log and "ALLOCATE processed, success" in log, (
        coturn.log_tail()
    )
