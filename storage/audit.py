"""The audit trail: who did what, kept apart from what it describes.

Rows have no foreign key to a recording or meeting, so the trail outlives them; `user_id`
is set to NULL when the account is deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEvent, AuditOutcome
from storage.types import utcnow


async def record(
    session: AsyncSession,
    *,
    user_id: int | None,
    action: str,
    recording_id: int | None = None,
    detail: str = "",
    outcome: AuditOutcome = "ok",
    room_id: str | None = None,
    subject_user_id: int | None = None,
    address: str | None = None,
) -> None:
    """Add one row: `user_id` did (or was refused, `outcome`) `action` from `address`, to
    a meeting (`room_id`), a recording or a person (`subject_user_id`)."""
    session.add(
        AuditEvent(
            user_id=user_id,
            action=action,
            outcome=outcome,
            room_id=room_id,
            recording_id=recording_id,
            subject_user_id=subject_user_id,
            address=address,
            detail=detail[:2000],
            created_at=utcnow(),
        )
    )
    await session.flush()


async def trail(
    session: AsyncSession, *, recording_id: int | None = None, action: str | None = None
) -> Sequence[AuditEvent]:
    """Events oldest first, optionally only those about one recording or of one action."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if recording_id is not None:
        query = query.where(AuditEvent.recording_id == recording_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return (await session.scalars(query)).all()
