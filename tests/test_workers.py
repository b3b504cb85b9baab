"""`tertulia serve --workers 2` for real: two processes behind one port, one PostgreSQL
database and one Redis; a meeting with people on both; a worker killed outright."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from client.signaling import SignalingClient
from tests.server_process import ServerProcess
from tests.turn_process import free_port_range

POSTGRES_URL = os.environ.get("TERTULIA_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TERTULIA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs TERTULIA_TEST_DATABASE_URL")
PASSWORD = "workers-test-password"


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A database of its own (the server process migrates it)."""
    assert POSTGRES_URL is not None
    name = f"t_workers_{secrets.token_hex(4)}"
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
def prefix() -> str:
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture
def metrics_port() -> int:
    return free_port_range(2)[0]


@pytest.fixture
def server(
    tmp_path: Path, database_url: str, prefix: str, metrics_port: int
) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "data",
        TERTULIA_DATABASE_URL=database_url,
        TERTULIA_REDIS_URL=REDIS_URL,
        TERTULIA_REDIS_PREFIX=prefix,
        TERTULIA_WORKERS="2",
        TERTULIA_WORKER_LEASE_SECONDS="2",
        TERTULIA_ALLOW_REGISTRATION="true",
        TERTULIA_METRICS_PORT=str(metrics_port),
    )
    yield process
    process.stop()


def live_workers(prefix: str) -> list[str]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return sorted(k.split(":worker:", 1)[1] for k in client.scan_iter(f"{prefix}:worker:*"))
    finally:
        client.close()


def holders(prefix: str, room: str) -> dict[str, str]:
    """participant id → the worker holding them (Redis presence)."""
    import json

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        entries = client.hgetall(f"{prefix}:room:{room}:people")
    finally:
        client.close()
    return {pid: json.loads(raw)["worker"] for pid, raw in entries.items()}


async def until(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def participants_on(port: int) -> int:
    """`tertulia_participants` as the worker on this metrics port counts them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
        families = text_string_to_metric_families(page.read().decode())
        return int(next(f for f in families if f.name == "tertulia_participants").samples[0].value)


async def test_two_workers_one_meeting_and_a_worker_killed(server, prefix, metrics_port):
    await asyncio.to_thread(server.start)
    await until(lambda: len(live_workers(prefix)) == 2, 30, "two workers in Redis")
    tokens = []
    for n in range(8):  # registration is open in this test: quicker than the CLI
        body = {"email": f"p{n}@example.org", "display_name": f"P{n}", "password": PASSWORD}
        status, _ = await asyncio.to_thread(
            server.request, "POST", "/api/auth/register", None, body
        )
        assert status == 201
        tokens.append(await asyncio.to_thread(server.login, f"p{n}@example.org", PASSWORD))
    status, meeting = await asyncio.to_thread(
        server.request, "POST", "/api/meetings", tokens[0], {"title": "Two workers"}
    )
    assert status == 201
    room = meeting["room_id"]
    clients: list[SignalingClient] = []
    try:
        # connect people until both workers hold someone (the kernel picks the worker)
        for token in tokens:
            client = SignalingClient(server.base_url, room, token)
            await client.connect()
            clients.append(client)
            if len(set(holders(prefix, room).values())) == 2 and len(clients) >= 2:
                break
        where = holders(prefix, room)
        assert len(set(where.values())) == 2, where
        first = clients[0]
        other = next(c for c in clients if where[c.participant_id] != where[first.participant_id])
        # everyone sees everyone, whatever worker holds them
        for client in clients:
            await until(
                lambda c=client: (
                    len(
                        {p["participant_id"] for p in c.welcome["participants"]}
                        | {
                            e["participant"]["participant_id"]
                            for e in c.events
                            if e["type"] == "participant-joined"
                        }
                    )
                    == len(clients) - 1
                ),
                10,
                "everyone to know everyone",
            )
        # each worker's metrics on a port of its own count its own people
        counted = [await asyncio.to_thread(participants_on, metrics_port + i) for i in (0, 1)]
        assert sorted(counted) == sorted(Counter(where.values()).values())
        await other.request({"type": "chat", "text": "across workers"}, "chat")
        assert (await first.wait_for("chat"))["message"]["text"] == "across workers"
        # kill the other worker outright: its people drop, the others are told, and the
        # supervisor starts a new worker
        victim = where[other.participant_id]
        os.kill(int(victim.split(":")[1]), signal.SIGKILL)
        await other.wait_closed(timeout=10)
        left = await first.wait_for(
            "participant-left", lambda e: e["participant_id"] == other.participant_id, timeout=15
        )
        assert left["reason"] == "disconnected"
        await until(
            lambda: len(live_workers(prefix)) == 2 and victim not in live_workers(prefix),
            30,
            "a new worker in place of the killed one",
        )
        back = SignalingClient(server.base_url, room, tokens[len(clients)])
        await back.connect()
        clients.append(back)
        assert first.participant_id in {p["participant_id"] for p in back.welcome["participants"]}
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    server.stop()
    assert server.process is not None and server.process.returncode == 0
    await until(lambda: live_workers(prefix) == [], 10, "the workers' leases to go")
