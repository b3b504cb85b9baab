"""Which process of a deployment runs the background jobs (composition, recovery, retention).

Every worker runs the same code; exactly one of them leads at a time. On PostgreSQL the
leader holds a session-level advisory lock on a connection of its own: PostgreSQL releases it
the moment that connection ends, so a worker that dies, or loses its database, stops leading
without anyone having to notice, and another one takes over at its next try. The key is
derived from the schema, so deployments (and test schemas) sharing a server do not contend.
On SQLite one process serves everything (its database is not shared): it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database

log = logging.getLogger(__name__)
# This process among the deployment's workers (host and process id), as leases record it.
WORKER_ID = f"{socket.gethostname()[:48]}:{os.getpid()}"
LOCK = text("SELECT pg_try_advisory_lock(hashtext(current_schema() || '/tertulia-jobs'))")


class Leadership:
    def __init__(self, database: Database, *, retry_seconds: float = 5.0) -> None:
        self.database = database
        self.retry_seconds = retry_seconds
        self._leading = asyncio.Event()
        self._lost = asyncio.Event()
        self._connection: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def start(self) -> None:
        if self.database.is_sqlite:
            self._leading.set()
            return
        self._task = asyncio.create_task(self._run(), name="leadership")

    async def wait_leading(self) -> None:
        await self._leading.wait()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    async def _run(self) -> None:
        while True:
            try:
                if self._connection is None:
                    await self._try_to_lead()
                else:
                    await self._connection.execute(text("SELECT 1"))  # still holding it?
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.is_leader:
                    log.warning("lost the database connection that held the jobs lock")
                await self._step_down()
            await asyncio.sleep(self.retry_seconds)

    async def _try_to_lead(self) -> None:
        connection = await self.database.engine.connect()
        try:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            if await connection.scalar(LOCK):
                self._connection = connection
                self._lost.clear()
                self._leading.set()
                log.info("this process runs the deployment's background jobs")
                return
        except BaseException:
            await connection.close()
            raise
        await connection.close()

    async def _step_down(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
        if self._leading.is_set():
            self._leading.clear()
            self._lost.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._step_down()  # closing the connection releases the lock
