"""Writing the audit trail from the use cases: who (`Actor`), what, done or refused.

Every security-relevant use case (admission, moderation, the meeting's end, recordings)
records what it did, and what it refused, here. A refusal is recorded where it is decided,
with the refusal's code, so "refused attempts included" holds for REST and signaling alike.
Writing the trail never stops the act: a failed write is logged, not raised.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from signaling.errors import ApiError
from storage import audit
from storage.database import Database
from storage.models import AuditOutcome, User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who asks: the account, and the address the request came from."""

    user: User
    address: str | None = None


class AuditLog:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def record(
        self,
        actor: Actor | None,
        action: str,
        *,
        outcome: AuditOutcome = "ok",
        room_id: str | None = None,
        recording_id: int | None = None,
        subject_user_id: int | None = None,
        detail: str = "",
    ) -> None:
        try:
            async with self.database.session() as db:
                await audit.record(
                    db,
                    user_id=actor.user.id if actor else None,
                    address=actor.address if actor else None,
                    action=action,
                    outcome=outcome,
                    room_id=room_id,
                    recording_id=recording_id,
                    subject_user_id=subject_user_id,
                    detail=detail,
                )
        except Exception:
            log.exception("could not write the audit row %s (%s)", action, outcome)

    @asynccontextmanager
    async def refusals(
        self,
        actor: Actor,
        action: str,
        *,
        room_id: str | None = None,
        recording_id: int | None = None,
        subject_user_id: int | None = None,
    ) -> AsyncIterator[None]:
        """Record an `ApiError` raised inside as a refused `action` (4xx only), then re-raise."""
        try:
            yield
        except ApiError as refused:
            if 400 <= refused.status < 500 and refused.status != 404:
                await self.record(
                    actor,
                    action,
                    outcome="refused",
                    room_id=room_id,
                    recording_id=recording_id,
                    subject_user_id=subject_user_id,
                    detail=f"{refused.code}: {refused.message}",
                )
            raise
