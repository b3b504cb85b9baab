"""Apply Alembic migrations from code (used by `tertulia serve`, `tertulia migrate`, tests)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from storage.database import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` on the database's own engine."""
    cfg = alembic_config(database.url)

    def run(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with database.engine.begin() as conn:
        await conn.run_sync(run)
    log.info("database schema is at %s", revision)
