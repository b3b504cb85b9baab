"""The audit trail: who did what, kept apart from what it describes.

Rows have no foreign key to a recording or meeting, so the trail outlives them; `user_id`
is set to NULL when the account is deleted. `record` writes a row; `search` and
`page_after` read them for the admin API (filtered, newest first, with the actor's and the
subject's names); `delete_before` applies the retention setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.models import AuditEvent, AuditOutcome, User
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


@dataclass(frozen=True)
class AuditFilter:
    """What an admin asks for; None everywhere is everything. `created_to` is exclusive."""

    user_id: int | None = None  # the actor
    actor_email: str | None = None  # the actor, by (normalized) e-mail
    action: str | None = None
    outcome: AuditOutcome | None = None
    room_id: str | None = None
    recording_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True)
class AuditRow:
    """An event with who did it and to whom, as the accounts are now (None for an
    account deleted since, or a person who had none)."""

    event: AuditEvent
    actor_email: str | None
    actor_name: str | None
    subject_email: str | None
    subject_name: str | None


Cursor = tuple[datetime, int]  # (created_at, id) of the last row of the previous batch

_actor = aliased(User, name="actor")
_subject = aliased(User, name="subject")


# an outer join's columns are typed as the mapped (non-null) ones: AuditRow says None
Joined = Select[AuditEvent, str, str, str, str]


def _filtered(wanted: AuditFilter) -> Joined:
    """Matching events with the actor's and the subject's e-mail and name, newest first."""
    return (
        select(AuditEvent, _actor.email, _actor.display_name, _subject.email, _subject.display_name)
        .outerjoin(_actor, _actor.id == AuditEvent.user_id)
        .outerjoin(_subject, _subject.id == AuditEvent.subject_user_id)
        .where(*_conditions(wanted))
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    )


def _conditions(wanted: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.user_id is not None:
        conditions.append(AuditEvent.user_id == wanted.user_id)
    if wanted.actor_email is not None:
        actor = select(User.id).where(User.email == wanted.actor_email).scalar_subquery()
        conditions.append(AuditEvent.user_id == actor)
    if wanted.action is not None:
        conditions.append(AuditEvent.action == wanted.action)
    if wanted.outcome is not None:
        conditions.append(AuditEvent.outcome == wanted.outcome)
    if wanted.room_id is not None:
        conditions.append(AuditEvent.room_id == wanted.room_id)
    if wanted.recording_id is not None:
        conditions.append(AuditEvent.recording_id == wanted.recording_id)
    if wanted.created_from is not None:
        conditions.append(AuditEvent.created_at >= wanted.created_from)
    if wanted.created_to is not None:
        conditions.append(AuditEvent.created_at < wanted.created_to)
    return conditions


async def count(session: AsyncSession, wanted: AuditFilter) -> int:
    query = select(func.count()).select_from(AuditEvent).where(*_conditions(wanted))
    return await session.scalar(query) or 0


async def _rows(session: AsyncSession, query: Joined) -> list[AuditRow]:
    return [
        AuditRow(event, actor_email, actor_name, subject_email, subject_name)
        for event, actor_email, actor_name, subject_email, subject_name in (
            await session.execute(query)
        ).all()
    ]


async def search(
    session: AsyncSession, wanted: AuditFilter, *, limit: int, offset: int
) -> tuple[list[AuditRow], int]:
    """One page of matching events, newest first, and how many match in all."""
    rows = await _rows(session, _filtered(wanted).limit(limit).offset(offset))
    return rows, await count(session, wanted)


async def page_after(
    session: AsyncSession, wanted: AuditFilter, after: Cursor | None, limit: int
) -> list[AuditRow]:
    """The next `limit` matching events, newest first, after `after` (keyset pagination:
    rows written meanwhile do not shift the batches, as they would with an offset)."""
    query = _filtered(wanted)
    if after is not None:
        created_at, event_id = after
        query = query.where(
            or_(
                AuditEvent.created_at < created_at,
                and_(AuditEvent.created_at == created_at, AuditEvent.id < event_id),
            )
        )
    return await _rows(session, query.limit(limit))


async def delete_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete the events written before `cutoff` (retention); how many went."""
    result = await session.execute(delete(AuditEvent).where(AuditEvent.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
