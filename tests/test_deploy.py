"""docker-compose.yml agrees with the code and with docs/deploy.md, and what it starts works.

No Docker engine runs here, so: the compose file is read with PyYAML and checked against
`signaling.config.Settings` (every TERTULIA_* variable exists, the ICE range is the one
published, the TURN secret is the one coturn checks, the database and Redis are the compose
services); the `.env` example of docs/deploy.md is substituted in and the settings load as
`tertulia serve` loads them; and Debian's coturn runs with the compose file's own flags
(moved to 127.0.0.1): Tertulia's credentials open a relay, a private address is refused.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from aioice import stun, turn

from signaling.config import Settings, load_settings
from signaling.media_config import client_ice_servers, media_settings
from tests.turn_process import TurnServer, turnserver_available

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TERTULIA_ENV: dict[str, str] = SERVICES["tertulia"]["environment"]
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::[?-][^}]*)?\}")


def env_example() -> dict[str, str]:
    """The ```env block of docs/deploy.md ("The .env file")."""
    text = (REPO / "docs/deploy.md").read_text()
    block = re.search(r"```env\n(.*?)```", text, re.S)
    assert block, "docs/deploy.md has no ```env block"
    return dict(line.split("=", 1) for line in block.group(1).splitlines() if "=" in line)


def substitute(value: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:?message} and ${NAME:-default}, for the names we use."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in variables, f"${{{name}}} is not in docs/deploy.md's .env example"
        return variables[name]

    return _VARIABLE.sub(one, value)


def variables_of(value: str) -> set[str]:
    return set(_VARIABLE.findall(value))


def flag(command: list[str], name: str) -> str:
    (value,) = [c.split("=", 1)[1] for c in command if c.startswith(f"--{name}=")]
    return value


def published_udp_range(service: dict[str, Any]) -> tuple[int, int]:
    (mapping,) = [p for p in service["ports"] if str(p).endswith("/udp")]
    host, container = mapping.removesuffix("/udp").split(":")
    assert host == container, "Docker must keep the port numbers (the answer announces them)"
    low, high = container.split("-")
    return int(low), int(high)


def test_the_services_and_their_wiring():
    assert set(SERVICES) == {"tertulia", "postgres", "redis", "coturn"}
    assert SERVICES["tertulia"]["build"] == "."
    assert set(SERVICES["tertulia"]["depends_on"]) == {"postgres", "redis"}
    # every variable is a setting Tertulia reads
    settings = {f"TERTULIA_{name.upper()}" for name in Settings.model_fields}
    assert set(TERTULIA_ENV) <= settings, set(TERTULIA_ENV) - settings
    # the ICE range: the settings, the published ports
    low, high = published_udp_range(SERVICES["tertulia"])
    assert (low, high) == (
        int(TERTULIA_ENV["TERTULIA_ICE_PORT_MIN"]),
        int(TERTULIA_ENV["TERTULIA_ICE_PORT_MAX"]),
    )
    # HTTP only on the host's loopback, for the reverse proxy
    assert "127.0.0.1:8080:8080" in SERVICES["tertulia"]["ports"]
    # the data directory of the Dockerfile is a volume
    dockerfile = (REPO / "Dockerfile").read_text()
    data_dir = re.search(r"TERTULIA_DATA_DIR=(\S+)", dockerfile)
    assert data_dir and f"tertulia-data:{data_dir.group(1)}" in SERVICES["tertulia"]["volumes"]
    # the database is the postgres service, with its user, database and password
    database = urlsplit(substitute(TERTULIA_ENV["TERTULIA_DATABASE_URL"], env_example()))
    postgres = SERVICES["postgres"]["environment"]
    assert database.scheme == "postgresql+asyncpg" and database.hostname == "postgres"
    assert database.username == postgres["POSTGRES_USER"]
    assert database.path == "/" + postgres["POSTGRES_DB"]
    assert variables_of(TERTULIA_ENV["TERTULIA_DATABASE_URL"]) == variables_of(
        postgres["POSTGRES_PASSWORD"]
    )
    assert urlsplit(TERTULIA_ENV["TERTULIA_REDIS_URL"]).hostname == "redis"
    # the fixed addresses: the container's (its one ICE host address) and the proxy's
    network = COMPOSE["networks"]["default"]["ipam"]["config"][0]
    address = SERVICES["tertulia"]["networks"]["default"]["ipv4_address"]
    assert TERTULIA_ENV["TERTULIA_ICE_HOST_ADDRESSES"] == address
    assert TERTULIA_ENV["TERTULIA_TRUSTED_PROXIES"] == network["gateway"]


def test_tertulia_and_coturn_share_the_turn_secret_and_port():
    command = SERVICES["coturn"]["command"]
    assert "--use-auth-secret" in command
    assert variables_of(flag(command, "static-auth-secret")) == {"TURN_SECRET"}
    assert variables_of(TERTULIA_ENV["TERTULIA_TURN_SECRET"]) == {"TURN_SECRET"}
    port = flag(command, "listening-port")
    urls = TERTULIA_ENV["TERTULIA_TURN_URLS"].split(",")
    pattern = r"turn:\$\{TURN_HOST[^}]*\}:(\d+)\?transport=(udp|tcp)"
    parsed = [re.fullmatch(pattern, url) for url in urls]
    assert all(parsed), urls
    assert {m.group(1) for m in parsed if m} == {port}
    assert {m.group(2) for m in parsed if m} == {"udp", "tcp"}
    relay = (int(flag(command, "min-port")), int(flag(command, "max-port")))
    deploy = (REPO / "docs/deploy.md").read_text()
    assert f"{relay[0]}\u2013{relay[1]}" in deploy  # "Ports to open" and the picture
    low, high = published_udp_range(SERVICES["tertulia"])
    assert f"{low}\u2013{high}" in deploy


def test_the_documented_env_loads_as_tertulia_serve_loads_it(monkeypatch):
    variables = env_example()
    for name in [n for n in os.environ if n.startswith("TERTULIA_")]:
        monkeypatch.delenv(name)
    for name, value in TERTULIA_ENV.items():
        monkeypatch.setenv(name, substitute(str(value), variables))
    settings = load_settings()
    media = media_settings(settings)
    assert media.ice_port_range == published_udp_range(SERVICES["tertulia"])
    assert media.announced_address == variables["PUBLIC_IP"]
    assert settings.public_url == variables["PUBLIC_URL"]
    (turn_entry,) = client_ice_servers(settings, 5)
    assert turn_entry["urls"] == [
        f"turn:{variables['TURN_HOST']}:3478?transport=udp",
        f"turn:{variables['TURN_HOST']}:3478?transport=tcp",
    ]


# ---------------------------------------------------------------- coturn with these flags

# Where the test must differ: it listens and relays on 127.0.0.1 (TurnServer adds those and
# its own log), and Tertulia is a loopback peer here, which the compose file denies.
_LOCAL = ("-n", "--listening-port=", "--log-file=", "--external-ip=")


@pytest.fixture
def compose_coturn(tmp_path: Path) -> Iterator[tuple[TurnServer, Settings]]:
    if not turnserver_available():
        pytest.skip("turnserver is not installed")
    variables = env_example()
    flags = [
        substitute(c, variables) for c in SERVICES["coturn"]["command"] if not c.startswith(_LOCAL)
    ]
    flags += ["--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1"]
    server = TurnServer(tmp_path / "coturn", variables["TURN_SECRET"], flags=flags)
    secret = substitute(TERTULIA_ENV["TERTULIA_TURN_SECRET"], variables)
    settings = Settings(turn_urls=server.url, turn_secret=secret)
    server.start()
    try:
        yield server, settings
    finally:
        server.stop()


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


async def test_coturn_with_the_compose_flags_relays_for_tertulias_credentials(compose_coturn):
    server, settings = compose_coturn
    (entry,) = client_ice_servers(settings, 3)
    relay, _ = await asyncio.wait_for(
        turn.create_turn_endpoint(
            _Inbox,
            ("127.0.0.1", server.port),
            username=entry["username"],
            password=entry["credential"],
        ),
        10,
    )
    loop = asyncio.get_running_loop()
    peer_transport, peer = await loop.create_datagram_endpoint(_Inbox, local_addr=("127.0.0.1", 0))
    try:
        relay.sendto(b"media", peer_transport.get_extra_info("sockname"))
        assert await asyncio.wait_for(peer.received.get(), 5) == b"media"
        # a private address (the LAN, Docker's networks, cloud metadata) is refused
        client = relay._TurnTransport__inner_protocol  # aioice's TURN client (its auth)
        for private in ("10.0.0.7", "172.30.0.10", "192.168.1.1", "169.254.169.254"):
            with pytest.raises(stun.TransactionFailed) as refused:
                await asyncio.wait_for(client.channel_bind(0x4001, (private, 5000)), 10)
            assert refused.value.response.attributes["ERROR-CODE"][0] == 403, private
    finally:
        peer_transport.close()
        relay.close()
    assert f"user <{entry['username']}>" in server.log()
