"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
and can be undone."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from storage.migrate import alembic_config, upgrade
from storage.models import Base


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": False}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(database):
    async with database.engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []


async def test_downgrade_to_the_previous_revision_and_up_again(database):
    config = alembic_config(database.url)

    def down(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")

    async with database.engine.begin() as conn:
        await conn.run_sync(down)
        assert await conn.run_sync(_differences) != []
    await upgrade(database, "head")
    async with database.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
