"""Chat message queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ChatMessage


async def add_message(
    session: AsyncSession, *, meeting_id: int, author_id: int | None, text: str, kind: str = "text"
) -> ChatMessage:
    message = ChatMessage(meeting_id=meeting_id, author_id=author_id, text=text, kind=kind)
    session.add(message)
    await session.flush()
    await session.refresh(message, ["author"])
    return message


async def recent_messages(
    session: AsyncSession, meeting_id: int, limit: int
) -> Sequence[ChatMessage]:
    """The last `limit` messages, oldest first."""
    rows = await session.scalars(
        select(ChatMessage)
        .where(ChatMessage.meeting_id == meeting_id)
        .order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc())
        .limit(limit)
    )
    return list(reversed(rows.unique().all()))
