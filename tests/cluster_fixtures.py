"""Two workers of one deployment in one test process: two apps sharing one database and one
real Redis (127.0.0.1:6379, or TERTULIA_TEST_REDIS_URL), each with its own Redis key prefix
per test. A pytest plugin (tests/conftest.py loads it) for the cluster, recording and drain
tests."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from client.participant import Participant
from signaling.app import create_app
from signaling.keys import TOKENS

REDIS_URL = os.environ.get("TERTULIA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def url_of(worker: TestClient) -> str:
    return str(worker.make_url("")).rstrip("/")


def token(worker: TestClient, user: Any) -> str:
    return str(worker.app[TOKENS].issue(user.id, user.role))


@pytest.fixture
def prefix() -> str:
    return f"test-{secrets.token_hex(4)}"  # keys of this test only


@pytest.fixture
async def workers(settings, database, prefix) -> AsyncIterator[list[TestClient]]:  # type: ignore[no-untyped-def]
    clustered = settings.model_copy(update={"redis_url": REDIS_URL, "redis_prefix": prefix})
    started: list[TestClient] = []
    for _ in range(2):
        client = TestClient(TestServer(create_app(clustered, database), host="127.0.0.1"))
        await client.start_server()
        started.append(client)
    yield started
    for client in started:
        await client.close()  # idempotent: a drained one is closed already


@pytest.fixture
async def opened() -> AsyncIterator[list[Any]]:
    """Clients (signaling or media) a test opens; all closed at its end."""
    clients: list[Any] = []
    yield clients
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def join_with_media(
    worker: TestClient, user: Any, room: str, clip: Any, opened: list[Any]
) -> Participant:
    """A person with camera and microphone (a real aiortc peer on loopback) on `worker`."""
    person = Participant(
        url_of(worker), room, token(worker, user), clip, ice_host_addresses=("127.0.0.1",)
    )
    opened.append(person)
    await person.join()
    return person
