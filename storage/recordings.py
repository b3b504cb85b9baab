"""Recording manifests, composition state, and the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Meeting, Recording, RecordingSpeaker, RecordingTrack
from storage.types import utcnow


async def create_recording(
    session: AsyncSession, *, meeting_id: int, started_by_id: int | None, directory: str
) -> Recording:
    recording = Recording(
        meeting_id=meeting_id, started_by_id=started_by_id, directory=directory, state="recording"
    )
    session.add(recording)
    await session.flush()
    return recording


async def add_track(session: AsyncSession, recording_id: int, **fields: Any) -> RecordingTrack:
    track = RecordingTrack(recording_id=recording_id, **fields)
    session.add(track)
    await session.flush()
    return track


async def add_speaker(session: AsyncSession, recording_id: int, **fields: Any) -> None:
    session.add(RecordingSpeaker(recording_id=recording_id, **fields))
    await session.flush()


async def get_recording(session: AsyncSession, recording_id: int) -> Recording | None:
    return await session.get(Recording, recording_id)


async def list_recordings(
    session: AsyncSession,
    *,
    host_id: int | None,
    room_id: str | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    text: str | None = None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Recording], int]:
    """Newest first. `host_id` limits to meetings that user hosts (None: all, for admins)."""
    query = select(Recording).join(Meeting, Recording.meeting_id == Meeting.id)
    if host_id is not None:
        query = query.where(Meeting.host_id == host_id)
    if room_id:
        query = query.where(Meeting.room_id == room_id)
    if started_from is not None:
        query = query.where(Recording.started_at >= started_from)
    if started_to is not None:
        query = query.where(Recording.started_at < started_to)
    if text:
        pattern = f"%{text.lower()}%"
        names = select(RecordingTrack.recording_id).where(
            func.lower(RecordingTrack.display_name).like(pattern)
        )
        query = query.where(
            or_(
                func.lower(Meeting.title).like(pattern),
                func.lower(Meeting.description).like(pattern),
                Recording.id.in_(names),
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(Recording.started_at.desc(), Recording.id.desc()).limit(limit).offset(offset)
    )
    return rows.unique().all(), total


async def recordings_in_state(session: AsyncSession, *states: str) -> Sequence[Recording]:
    rows = await session.scalars(select(Recording).where(Recording.state.in_(states)))
    return rows.unique().all()


async def recordings_started_before(session: AsyncSession, cutoff: datetime) -> Sequence[Recording]:
    rows = await session.scalars(
        select(Recording).where(Recording.started_at < cutoff, Recording.state != "recording")
    )
    return rows.unique().all()


async def active_recording(session: AsyncSession, meeting_id: int) -> Recording | None:
    return await session.scalar(
        select(Recording).where(Recording.meeting_id == meeting_id, Recording.state == "recording")
    )


async def renew_leases(session: AsyncSession, recording_ids: Sequence[int], worker_id: str) -> None:
    """The worker still records these: their leases start again from now."""
    if recording_ids:
        await session.execute(
            update(Recording)
            .where(Recording.id.in_(recording_ids), Recording.state == "recording")
            .values(worker_id=worker_id, heartbeat_at=utcnow())
        )


async def orphaned_recordings(session: AsyncSession, stale_before: datetime) -> Sequence[Recording]:
    """Recordings still 'recording' whose worker has not renewed the lease since
    `stale_before` (it died, or the whole server stopped)."""
    rows = await session.scalars(
        select(Recording).where(
            Recording.state == "recording",
            or_(Recording.heartbeat_at.is_(None), Recording.heartbeat_at < stale_before),
        )
    )
    return rows.unique().all()
