"""Who may be in a meeting: admissions, denials, bars and moderator roles (`MeetingMember`).

These rows are the server's memory of its decisions about a person in a meeting, kept across
their visits and sockets: admitted once, a person stays admitted until removed; a denied
person may not knock again until `denied_until`; a barred one never comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MeetingMember, MemberRole
from storage.types import utcnow


async def get_member(session: AsyncSession, meeting_id: int, user_id: int) -> MeetingMember | None:
    return await session.scalar(
        select(MeetingMember).where(
            MeetingMember.meeting_id == meeting_id, MeetingMember.user_id == user_id
        )
    )


async def _member(session: AsyncSession, meeting_id: int, user_id: int) -> MeetingMember:
    member = await get_member(session, meeting_id, user_id)
    if member is None:
        member = MeetingMember(
            meeting_id=meeting_id, user_id=user_id, role="participant", barred=False
        )
        session.add(member)
    return member


async def admit(session: AsyncSession, meeting_id: int, user_id: int) -> MeetingMember:
    """Let the person in (they stay admitted until removed); clears an earlier denial."""
    member = await _member(session, meeting_id, user_id)
    member.admitted_at = member.admitted_at or utcnow()
    member.denied_until = None
    await session.flush()
    return member


async def deny(
    session: AsyncSession, meeting_id: int, user_id: int, until: datetime
) -> MeetingMember:
    """Refuse the person; they may knock again from `until` on."""
    member = await _member(session, meeting_id, user_id)
    member.admitted_at = None
    member.denied_until = until
    await session.flush()
    return member


async def remove(session: AsyncSession, meeting_id: int, user_id: int, *, bar: bool) -> None:
    """Take back the admission (and their moderator role); `bar`: for good."""
    member = await _member(session, meeting_id, user_id)
    member.admitted_at = None
    member.role = "participant"
    member.barred = member.barred or bar
    await session.flush()


async def set_role(
    session: AsyncSession, meeting_id: int, user_id: int, role: MemberRole
) -> MeetingMember:
    member = await _member(session, meeting_id, user_id)
    member.role = role
    member.admitted_at = member.admitted_at or utcnow()
    await session.flush()
    return member


async def moderators(session: AsyncSession, meeting_id: int) -> Sequence[MeetingMember]:
    rows = await session.scalars(
        select(MeetingMember).where(
            MeetingMember.meeting_id == meeting_id, MeetingMember.role == "moderator"
        )
    )
    return rows.all()
