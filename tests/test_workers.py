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
from tests.cluster_fixtures import REDIS_URL
from tests.server_process import ServerProcess
from tests.turn_process import free_port_range

POSTGRES_URL = os.environ.get("TERTULIA_TEST_DATABASE_URL")
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


async def recording_rows(database_url: str) -> dict[int, tuple[str, str | None]]:
    """recording id → (state, worker id), read from the deployment's database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT id, state, worker_id FROM recordings"))
            return {row.id: (row.state, row.worker_id) for row in found}
    finally:
        await engine.dispose()


async def test_sigterm_drains_a_worker_and_its_recording_goes_on(server, prefix, database_url):
    """SIGTERM to the worker holding the host (who records): the host is told to reconnect,
    lands on the other worker and is back in the meeting; the recording is stopped cleanly
    and continued by the other worker; nothing is marked interrupted."""
    await asyncio.to_thread(server.start)
    await until(lambda: len(live_workers(prefix)) == 2, 30, "two workers in Redis")
    tokens = []
    for n in range(8):
        body = {"email": f"d{n}@example.org", "display_name": f"D{n}", "password": PASSWORD}
        status, _ = await asyncio.to_thread(
            server.request, "POST", "/api/auth/register", None, body
        )
        assert status == 201
        tokens.append(await asyncio.to_thread(server.login, f"d{n}@example.org", PASSWORD))
    body = {"title": "Drained", "settings": {"enable_recording": True}}
    status, meeting = await asyncio.to_thread(
        server.request, "POST", "/api/meetings", tokens[0], body
    )
    assert status == 201
    room = meeting["room_id"]
    clients: list[SignalingClient] = []
    try:
        host = SignalingClient(server.base_url, room, tokens[0])
        await host.connect()
        clients.append(host)
        for token in tokens[1:]:  # until someone is on the other worker
            client = SignalingClient(server.base_url, room, token)
            await client.connect()
            clients.append(client)
            if len(set(holders(prefix, room).values())) == 2:
                break
        where = holders(prefix, room)
        victim = where[host.participant_id]
        stays = next(c for c in clients if where[c.participant_id] != victim)
        survivor = where[stays.participant_id]
        moving = [c for c in clients if where[c.participant_id] == victim]
        await host.send({"type": "start-recording"})
        first = (await stays.wait_for("recording-started"))["recording_id"]
        assert (await recording_rows(database_url))[first] == ("recording", victim)

        os.kill(int(victim.split(":")[1]), signal.SIGTERM)
        for client in moving:  # told to go, then closed with "going away"
            assert (await client.wait_for("reconnect", timeout=15))["type"] == "reconnect"
            assert await client.wait_closed(timeout=15) == 1001
        stopped = await stays.wait_for("recording-stopped", timeout=15)
        assert (stopped["recording_id"], stopped["reason"]) == (first, "server shutting down")
        continued = await stays.wait_for("recording-started", timeout=15)
        second = continued["recording_id"]
        assert continued["by"] is None
        # they connect again at once: the drained worker listens no more, so they land on
        # the other one, back in the same meeting, still being recorded
        back = []
        for client in moving:
            again = SignalingClient(server.base_url, room, client.token)
            await again.connect()
            clients.append(again)
            back.append(again)
            assert holders(prefix, room)[again.participant_id] == survivor
            assert again.welcome["recording"] == {"active": True, "recording_id": second}
            assert stays.participant_id in {
                p["participant_id"] for p in again.welcome["participants"]
            }
        rows = await recording_rows(database_url)
        assert rows[second] == ("recording", survivor)
        assert rows[first][0] in ("processing", "ready", "failed"), rows
        await until(lambda: victim not in live_workers(prefix), 30, "the drained worker to go")
        await back[0].send({"type": "stop-recording"})
        await stays.wait_for("recording-stopped", lambda e: e["recording_id"] == second)
        rows = await recording_rows(database_url)
        assert all(state not in ("interrupted", "recording") for state, _ in rows.values()), rows
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    server.stop()
    assert server.process is not None and server.process.returncode == 0
    await until(lambda: live_workers(prefix) == [], 10, "the workers' leases to go")


async def test_workers_go_with_a_supervisor_killed_outright(server, prefix):
    """SIGKILL to the supervisor: its workers drain and exit (none is left unsupervised,
    holding the port), and their leases go with them."""
    await asyncio.to_thread(server.start)
    await until(lambda: len(live_workers(prefix)) == 2, 30, "two workers in Redis")
    pids = [int(worker.split(":")[1]) for worker in live_workers(prefix)]
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await until(lambda: all(gone(pid) for pid in pids), 30, "the workers to exit")
    await until(lambda: live_workers(prefix) == [], 10, "the workers' leases to go")
