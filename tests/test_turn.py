"""TURN with short-lived credentials (the TURN REST API shared-secret scheme).

The format is checked against a vector made with openssl, the welcome carries each person's
own credentials, a bad configuration stops start-up, and a real coturn (Debian's
`turnserver`, started here and stopped at the end) allocates a relay with fresh credentials,
relays to a loopback peer, and refuses expired or forged ones.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice import stun, turn

from client.signaling import SignalingClient
from signaling.config import ConfigError, Settings
from signaling.media_config import client_ice_servers, media_settings, turn_credentials
from tests.conftest import TEST_SECRET
from tests.turn_process import TurnServer, turnserver_available

SECRET = "north-wind-shared-secret"


def test_credentials_follow_the_turn_rest_api_scheme():
    username, credential = turn_credentials(SECRET, 42, 3600, now=1_700_000_000)
    assert username == "1700003600:42"  # <expiry unix time>:<user id>
    # echo -n "1700003600:42" | openssl dgst -binary -sha1 -hmac "$SECRET" | base64
    assert credential == "LJ8Jl7z7VHj9waXxBwUSyT/o5bY="


def test_each_person_gets_their_own_expiring_credentials():
    urls = "turn:turn.example.org:3478?transport=udp, turn:turn.example.org:3478?transport=tcp"
    settings = Settings(
        turn_urls=urls,
        turn_secret=SECRET,
        turn_ttl_seconds=600,
        ice_servers="stun:stun.example.org:3478",
    )
    now = time.time()
    servers = client_ice_servers(settings, 7, now=now)
    assert servers[0] == {"urls": ["stun:stun.example.org:3478"]}
    turn_entry = servers[1]
    assert turn_entry["urls"] == [
        "turn:turn.example.org:3478?transport=udp",
        "turn:turn.example.org:3478?transport=tcp",
    ]
    expiry, user = turn_entry["username"].split(":")
    assert user == "7" and int(expiry) == int(now) + 600
    expected = hmac.new(SECRET.encode(), turn_entry["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(turn_entry["credential"]) == expected
    other = client_ice_servers(settings, 8, now=now)[1]
    assert other["username"] != turn_entry["username"]
    assert other["credential"] != turn_entry["credential"]
    assert client_ice_servers(Settings(), 7) == []  # nothing configured, nothing handed out


@pytest.mark.parametrize(
    ("fields", "variable"),
    [
        ({"turn_urls": "turn:turn.example.org:3478"}, "TERTULIA_TURN_SECRET"),
        ({"turn_urls": "turn.example.org:3478", "turn_secret": SECRET}, "TERTULIA_TURN_URLS"),
    ],
)
def test_a_turn_setting_that_cannot_work_stops_start_up(fields, variable):
    with pytest.raises(ConfigError, match=variable):
        media_settings(Settings(**fields))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The shared test settings, with TURN configured (the welcome's `ice_servers`)."""
    return Settings(
        data_dir=tmp_path / "data",
        jwt_secret=TEST_SECRET,
        public_url="https://meet.example.org",
        ice_host_addresses="127.0.0.1",
        turn_urls="turn:127.0.0.1:3478",
        turn_secret=SECRET,
        turn_ttl_seconds=900,
    )


async def test_the_welcome_hands_out_the_persons_own_credentials(api, make_user):
    host = await make_user(name="Host")
    status, body = await api.call("POST", "/api/meetings", user=host, json={"title": "TURN"})
    assert status == 201
    client = SignalingClient(api.base_url, body["room_id"], api.token_for(host))
    try:
        welcome = await client.connect()
    finally:
        await client.close()
    (entry,) = welcome["ice_servers"]
    assert entry["urls"] == ["turn:127.0.0.1:3478"]
    assert re.fullmatch(rf"\d+:{host.id}", entry["username"])
    assert 0 < int(entry["username"].split(":")[0]) - time.time() <= 900
    expected = hmac.new(SECRET.encode(), entry["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(entry["credential"]) == expected


# ---------------------------------------------------------------- a real coturn

needs_coturn = pytest.mark.skipif(not turnserver_available(), reason="turnserver is not installed")


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[TurnServer]:
    server = TurnServer(tmp_path / "coturn", SECRET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))


async def _allocate(server: TurnServer, username: str, password: str):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(
        turn.create_turn_endpoint(
            _Inbox, ("127.0.0.1", server.port), username=username, password=password
        ),
        10,
    )


@needs_coturn
async def test_coturn_relays_with_fresh_credentials(coturn):
    username, password = turn_credentials(SECRET, 1, 300)
    relay, inbox = await _allocate(coturn, username, password)
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(
        _Inbox, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    try:
        relayed = relay.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1"
        peer_addr = peer_transport.get_extra_info("sockname")
        relay.sendto(b"through coturn", peer_addr)  # CreatePermission, then Send
        data, source = await asyncio.wait_for(peer.received.get(), 5)
        assert data == b"through coturn" and source == tuple(relayed)
        peer_transport.sendto(b"and back", source)
        data, _ = await asyncio.wait_for(inbox.received.get(), 5)
        assert data == b"and back"
    finally:
        peer_transport.close()
        relay.close()


@needs_coturn
@pytest.mark.parametrize(
    "case",
    ["expired", "forged"],
)
async def test_coturn_refuses_expired_or_forged_credentials(coturn, case):
    if case == "expired":
        username, password = turn_credentials(SECRET, 1, 60, now=time.time() - 120)
    else:
        username, password = turn_credentials("not-" + SECRET, 1, 300)
    with pytest.raises(stun.TransactionFailed) as refused:
        await _allocate(coturn, username, password)
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401


@needs_coturn
async def test_an_allocation_outlives_its_credentials(coturn):
    """coturn checks the expiry when an allocation is made, not when it is refreshed: a
    meeting longer than TERTULIA_TURN_TTL_SECONDS keeps its relay; only a new allocation
    (a reconnection, which brings a new welcome) needs fresh credentials."""
    username, password = turn_credentials(SECRET, 1, 2)
    relay, _ = await _allocate(coturn, username, password)
    try:
        await asyncio.sleep(max(0.0, int(username.split(":")[0]) - time.time()) + 1.1)
        refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        client = relay._TurnTransport__inner_protocol  # aioice's TURN client (its auth)
        response, _ = await asyncio.wait_for(client.request_with_retry(refresh), 10)
        assert response.attributes["LIFETIME"] == 600
        with pytest.raises(stun.TransactionFailed):
            await _allocate(coturn, username, password)
    finally:
        relay.close()
