"""Meeting and participation queries, including the concurrency-safe join."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Meeting, MeetingMember, ParticipantRole, Participation
from storage.types import utcnow

ROOM_ID_BYTES = 12  # 96 bits: unguessable, 16 URL-safe characters


class MeetingEnded(Exception):
    """The meeting has ended; nobody can join it any more."""


class MeetingFull(Exception):
    """As many people as the meeting allows are in it right now."""


@dataclass(frozen=True)
class JoinResult:
    participation: Participation
    meeting: Meeting


def new_room_id() -> str:
    return secrets.token_urlsafe(ROOM_ID_BYTES)


async def create_meeting(session: AsyncSession, *, host_id: int, **fields: Any) -> Meeting:
    meeting = Meeting(host_id=host_id, room_id=new_room_id(), status="scheduled", **fields)
    session.add(meeting)
    await session.flush()
    await session.refresh(meeting, ["host"])
    return meeting


async def get_meeting(session: AsyncSession, room_id: str) -> Meeting | None:
    result = await session.execute(select(Meeting).where(Meeting.room_id == room_id))
    return result.scalar_one_or_none()


async def list_meetings_for_user(
    session: AsyncSession, user_id: int, *, when: str, limit: int, offset: int
) -> tuple[Sequence[Meeting], int]:
    """Meetings the user hosts or has joined: upcoming (not ended) first, soonest first."""
    joined = select(Participation.meeting_id).where(Participation.user_id == user_id)
    query = select(Meeting).where(or_(Meeting.host_id == user_id, Meeting.id.in_(joined)))
    if when == "upcoming":
        query = query.where(Meeting.status != "ended")
    elif when == "past":
        query = query.where(Meeting.status == "ended")
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ended_last = case((Meeting.status == "ended", 1), else_=0)
    no_schedule_last = case((Meeting.scheduled_start.is_(None), 1), else_=0)
    ordered = query.order_by(
        ended_last,
        # upcoming: soonest first; past: most recently ended first
        case((Meeting.status == "ended", None), else_=no_schedule_last),
        case((Meeting.status == "ended", None), else_=Meeting.scheduled_start),
        Meeting.ended_at.desc(),
        Meeting.id.desc(),
    )
    rows = await session.scalars(ordered.limit(limit).offset(offset))
    return rows.unique().all(), total


async def update_meeting(session: AsyncSession, meeting: Meeting, **fields: Any) -> Meeting:
    for name, value in fields.items():
        setattr(meeting, name, value)
    await session.flush()
    return meeting


async def delete_meeting(session: AsyncSession, meeting: Meeting) -> None:
    await session.delete(meeting)
    await session.flush()


async def end_meeting(session: AsyncSession, meeting: Meeting) -> list[Participation]:
    """Mark the meeting ended and close every open visit; returns the visits closed."""
    now = utcnow()
    meeting.status = "ended"
    meeting.ended_at = now
    open_visits = (
        await session.scalars(
            select(Participation).where(
                Participation.meeting_id == meeting.id, Participation.left_at.is_(None)
            )
        )
    ).all()
    for visit in open_visits:
        visit.left_at = now
    await session.flush()
    return list(open_visits)


async def join_meeting(
    session: AsyncSession,
    room_id: str,
    user_id: int,
    *,
    hold: timedelta | None = None,
    worker_id: str | None = None,
) -> JoinResult:
    """Open a visit, refusing an ended or full meeting.

    Safe under concurrent joins: the first statement writes the meeting row, which takes
    PostgreSQL's row lock and SQLite's write lock, so the count-then-insert below runs for
    one joiner at a time per meeting.

    Seats: the meeting is full when as many *other* people as it allows have an open visit
    that is live or whose hold has not run out; a person already inside (a second tab, a
    reconnect) does not count against the limit, and the host is never refused. A live
    join (`hold` None: the signaling connection) confirms the person's still-held REST
    visit or opens a new one, and ends their other open visits (that connection is being
    replaced). A REST join (`hold` given) holds a seat that long, unless the person is
    connected already. Holds that ran out are closed here, where they ended.
    """
    now = utcnow()
    locked = await session.execute(
        update(Meeting)
        .where(Meeting.room_id == room_id, Meeting.status != "ended")
        .values(status="active", started_at=func.coalesce(Meeting.started_at, now))
        .returning(Meeting.id)
    )
    meeting_id = locked.scalar_one_or_none()
    if meeting_id is None:
        raise MeetingEnded(room_id)
    meeting = await session.get(Meeting, meeting_id, populate_existing=True)
    assert meeting is not None
    open_visit = (Participation.meeting_id == meeting_id) & Participation.left_at.is_(None)
    await session.execute(
        update(Participation)
        .where(open_visit, Participation.held_until <= now)
        .values(left_at=Participation.held_until)
    )
    if meeting.host_id != user_id:
        others_inside = await session.scalar(
            select(func.count(func.distinct(Participation.user_id))).where(
                open_visit, Participation.user_id != user_id
            )
        )
        if (others_inside or 0) >= meeting.max_participants:
            raise MeetingFull(room_id)
    mine = list(
        await session.scalars(
            select(Participation)
            .where(open_visit, Participation.user_id == user_id)
            .order_by(Participation.joined_at, Participation.id)
        )
    )
    held = next((v for v in mine if v.held_until is not None), None)
    live = next((v for v in mine if v.held_until is None), None)
    if hold is None:
        visit = held or Participation(meeting_id=meeting_id, user_id=user_id, joined_at=now)
        visit.held_until = None
        visit.worker_id = worker_id
    else:
        visit = live or held or Participation(meeting_id=meeting_id, user_id=user_id, joined_at=now)
        if visit is not live:
            visit.held_until = now + hold
    visit.role = "host" if meeting.host_id == user_id else visit.role or "participant"
    for other in mine:
        if other is not visit:
            other.left_at = now
    session.add(visit)
    await session.flush()
    return JoinResult(participation=visit, meeting=meeting)


async def close_open_visits(session: AsyncSession) -> int:
    """At start-up of a single process: an open visit is a connection of a previous run of
    the server, so it has ended. Returns how many were closed."""
    result = await session.execute(
        update(Participation).where(Participation.left_at.is_(None)).values(left_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def visit_workers(session: AsyncSession) -> set[str]:
    """The workers that carry open, live visits (several workers: docs/scaling.md)."""
    rows = await session.scalars(
        select(Participation.worker_id)
        .where(
            Participation.left_at.is_(None),
            Participation.held_until.is_(None),
            Participation.worker_id.is_not(None),
        )
        .distinct()
    )
    return {worker for worker in rows if worker is not None}


async def close_visits_of(session: AsyncSession, worker_ids: Sequence[str]) -> int:
    """The workers are gone: the visits their sockets carried have ended."""
    if not worker_ids:
        return 0
    result = await session.execute(
        update(Participation)
        .where(Participation.left_at.is_(None), Participation.worker_id.in_(worker_ids))
        .values(left_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def leave_meeting(session: AsyncSession, participation_id: int) -> None:
    await session.execute(
        update(Participation)
        .where(Participation.id == participation_id, Participation.left_at.is_(None))
        .values(left_at=utcnow())
    )


async def participants_inside(session: AsyncSession, meeting_id: int) -> int:
    """People with an open visit (live, or held and not run out)."""
    return (
        await session.scalar(
            select(func.count(func.distinct(Participation.user_id))).where(
                Participation.meeting_id == meeting_id,
                Participation.left_at.is_(None),
                (Participation.held_until.is_(None)) | (Participation.held_until > utcnow()),
            )
        )
        or 0
    )


async def visits(session: AsyncSession, meeting_id: int) -> Sequence[Participation]:
    rows = await session.scalars(
        select(Participation)
        .where(Participation.meeting_id == meeting_id)
        .order_by(Participation.joined_at, Participation.id)
    )
    return rows.all()


async def set_media_state(
    session: AsyncSession, participation_id: int, *, microphone: bool, camera: bool, screen: bool
) -> None:
    await session.execute(
        update(Participation)
        .where(Participation.id == participation_id)
        .values(microphone_on=microphone, camera_on=camera, screen_on=screen)
    )


async def role_of(session: AsyncSession, meeting: Meeting, user_id: int) -> ParticipantRole | None:
    """The user's role in the meeting: `host`; `moderator` when the host made them one;
    `participant` while they have an open visit; otherwise None."""
    if meeting.host_id == user_id:
        return "host"
    member = await session.scalar(
        select(MeetingMember).where(
            MeetingMember.meeting_id == meeting.id, MeetingMember.user_id == user_id
        )
    )
    if member is not None and member.role == "moderator" and not member.barred:
        return "moderator"
    return cast(ParticipantRole | None, await open_role(session, meeting.id, user_id))


async def open_role(session: AsyncSession, meeting_id: int, user_id: int) -> str | None:
    """The role of the user's open visit to the meeting, if they are in it."""
    return await session.scalar(
        select(Participation.role).where(
            Participation.meeting_id == meeting_id,
            Participation.user_id == user_id,
            Participation.left_at.is_(None),
        )
    )


async def empty_since_before(session: AsyncSession, cutoff: datetime) -> Sequence[Meeting]:
    """Active meetings nobody is in (no live visit, no seat still held) since before
    `cutoff`: since the last visit ended, or since the meeting started if nobody came."""
    now = utcnow()
    inside = (
        select(Participation.id)
        .where(
            Participation.meeting_id == Meeting.id,
            Participation.left_at.is_(None),
            or_(Participation.held_until.is_(None), Participation.held_until > now),
        )
        .exists()
    )
    last_left = (
        select(func.max(Participation.left_at))
        .where(Participation.meeting_id == Meeting.id)
        .scalar_subquery()
    )
    rows = await session.scalars(
        select(Meeting).where(
            Meeting.status == "active",
            ~inside,
            func.coalesce(last_left, Meeting.started_at, Meeting.created_at) <= cutoff,
        )
    )
    return rows.unique().all()


async def ending_on_schedule(session: AsyncSession, before: datetime) -> Sequence[Meeting]:
    """Meetings that end at their scheduled end and start before `before` (not ended)."""
    rows = await session.scalars(
        select(Meeting).where(
            Meeting.end_on_schedule.is_(True),
            Meeting.status != "ended",
            Meeting.scheduled_start.is_not(None),
            Meeting.scheduled_start <= before,
        )
    )
    return rows.unique().all()
