"""Storage functions on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from storage import chat, meetings, users


async def test_email_is_unique_case_insensitively(database):
    async with database.session() as session:
        await users.create_user(
            session, email="Dee@Example.org", display_name="D", password_hash="h"
        )
    with pytest.raises(users.EmailTaken):
        async with database.session() as session:
            await users.create_user(
                session, email="dee@EXAMPLE.ORG", display_name="D2", password_hash="h"
            )
    async with database.session() as session:
        found = await users.get_user_by_email(session, "DEE@example.org")
        assert found is not None and found.email == "dee@example.org"
        assert found.created_at.tzinfo is not None


async def test_concurrent_joins_from_separate_sessions_respect_the_limit(database):
    async with database.session() as session:
        people = [
            await users.create_user(
                session, email=f"p{i}@example.org", display_name=f"P{i}", password_hash="h"
            )
            for i in range(6)
        ]
        host = await users.create_user(
            session, email="host@example.org", display_name="Host", password_hash="h"
        )
        meeting = await meetings.create_meeting(
            session, host_id=host.id, title="m", max_participants=2
        )

    async def join(user_id: int) -> str:
        try:
            async with database.session() as session:
                await meetings.join_meeting(session, meeting.room_id, user_id)
            return "joined"
        except meetings.MeetingFull:
            return "full"

    results = await asyncio.gather(*(join(p.id) for p in people))
    assert sorted(results) == ["full"] * 4 + ["joined"] * 2
    async with database.session() as session:
        assert await meetings.participants_inside(session, meeting.id) == 2


async def test_leave_then_rejoin_frees_the_place(database):
    async with database.session() as session:
        a = await users.create_user(session, email="a@x.org", display_name="A", password_hash="h")
        b = await users.create_user(session, email="b@x.org", display_name="B", password_hash="h")
        c = await users.create_user(session, email="c@x.org", display_name="C", password_hash="h")
        meeting = await meetings.create_meeting(
            session, host_id=a.id, title="m", max_participants=2
        )
        first = await meetings.join_meeting(session, meeting.room_id, a.id)
        await meetings.join_meeting(session, meeting.room_id, b.id)
    with pytest.raises(meetings.MeetingFull):
        async with database.session() as session:
            await meetings.join_meeting(session, meeting.room_id, c.id)
    async with database.session() as session:
        await meetings.leave_meeting(session, first.participation.id)
        joined = await meetings.join_meeting(session, meeting.room_id, c.id)
        assert joined.participation.role == "participant"
        assert await meetings.participants_inside(session, meeting.id) == 2


async def test_recent_chat_messages_oldest_first(database):
    async with database.session() as session:
        a = await users.create_user(session, email="a@x.org", display_name="A", password_hash="h")
        meeting = await meetings.create_meeting(session, host_id=a.id, title="m")
        for i in range(5):
            await chat.add_message(session, meeting_id=meeting.id, author_id=a.id, text=f"m{i}")
        await chat.add_message(
            session, meeting_id=meeting.id, author_id=None, text="joined", kind="system"
        )
    async with database.session() as session:
        recent = await chat.recent_messages(session, meeting.id, 3)
        assert [(m.text, m.kind) for m in recent] == [
            ("m3", "text"),
            ("m4", "text"),
            ("joined", "system"),
        ]
        assert recent[0].author is not None and recent[-1].author is None
