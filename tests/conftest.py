"""Shared fixtures: a migrated database on SQLite and (when configured) PostgreSQL, and an
API client bound to a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from signaling.app import create_app
from signaling.config import Settings
from signaling.passwords import hash_password
from storage import users
from storage.database import Database
from storage.migrate import upgrade

pytest_plugins = ["tests.cluster_fixtures"]

POSTGRES_URL = os.environ.get("TERTULIA_TEST_DATABASE_URL")
TEST_SECRET = "test-secret-" + "x" * 40
# argon2 is slow on purpose; hash the shared test password once.
TEST_PASSWORD = "correct horse battery"
_TEST_HASH = hash_password(TEST_PASSWORD)

BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A freshly migrated database. On PostgreSQL each test gets its own schema."""
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        await upgrade(db)
        yield db
        await db.dispose()
        return
    assert POSTGRES_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    await upgrade(db)
    try:
        yield db
    finally:
        await db.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        jwt_secret=TEST_SECRET,
        public_url="https://meet.example.org",
        token_ttl_seconds=3600,
        ice_host_addresses="127.0.0.1",
    )


MakeUser = Callable[..., Awaitable[Any]]


@pytest.fixture
def make_user(database: Database) -> MakeUser:
    counter = iter(range(1, 10_000))

    async def make(role: str = "member", email: str | None = None, name: str | None = None) -> Any:
        n = next(counter)
        async with database.session() as session:
            return await users.create_user(
                session,
                email=email or f"user{n}@example.org",
                display_name=name or f"User {n}",
                password_hash=_TEST_HASH,
                role=role,
            )

    return make


class Api:
    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    """A thin client over the test server that signs requests as a given user."""

    def __init__(self, client: TestClient, app: Any) -> None:
        self.client = client
        self.app = app

    def token_for(self, user: Any) -> str:
        from signaling.keys import TOKENS

        return self.app[TOKENS].issue(user.id, user.role)

    async def call(
        self, method: str, path: str, user: Any = None, json: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token_for(user)}"
        response = await self.client.request(method, path, json=json, headers=headers, **kwargs)
        body = None
        if response.status != 204:
            body = (
                await response.json()
                if response.content_type == "application/json"
                else (await response.text())
            )
        return response.status, body


@pytest.fixture
async def api(settings: Settings, database: Database) -> AsyncIterator[Api]:
    app = create_app(settings, database)
    server = TestServer(app, host="127.0.0.1")
    client = TestClient(server)
    await client.start_server()
    try:
        yield Api(client, app)
    finally:
        await client.close()


@pytest.fixture(scope="session")
def clip(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    """The synthetic VP8 + Opus clip, encoded once into pytest's cache directory."""
    from rtp.synthetic import load_clip

    return load_clip(pytestconfig.cache.mkdir("sfu-test-media"), "VP8")


@pytest.fixture(scope="session")
def cast(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    """Publishers a receiver tells apart (tests/sfu/media.py), encoded once like `clip`."""
    from tests.sfu.media import Cast

    return Cast(pytestconfig.cache.mkdir("sfu-test-media"))
