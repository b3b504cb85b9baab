"""Background jobs run once per deployment, and recovery never takes a live worker's
recording for interrupted: the leader lock (PostgreSQL advisory lock) and recording leases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from client.signaling import SignalingClient
from signaling.keys import JOBS
from signaling.leader import Leadership
from signaling.recordings.jobs import ComposeQueue
from storage import meetings, recordings, users
from storage.types import utcnow
from tests.helpers import eventually
from tests.test_recordings import new_meeting


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_one_leader_at_a_time_and_a_successor(database):
    first, second = Leadership(database, retry_seconds=0.1), Leadership(database, retry_seconds=0.1)
    first.start()
    await asyncio.wait_for(first.wait_leading(), 5)
    second.start()
    await asyncio.sleep(0.5)
    assert first.is_leader and not second.is_leader
    await first.close()  # the worker goes (or dies: its connection closes either way)
    await asyncio.wait_for(second.wait_leading(), 5)
    assert second.is_leader
    await second.close()


async def test_sqlite_always_leads(database, backend):
    leadership = Leadership(database)
    leadership.start()
    assert leadership.is_leader == (backend == "sqlite")
    await leadership.close()


async def _recording(db, meeting_id: int, *, state: str, heartbeat_ago: float | None):
    row = await recordings.create_recording(
        db, meeting_id=meeting_id, started_by_id=None, directory="recordings/x"
    )
    row.state = state
    row.worker_id = "elsewhere:1"
    row.heartbeat_at = (
        None if heartbeat_ago is None else utcnow() - timedelta(seconds=heartbeat_ago)
    )
    return row


async def test_recovery_takes_only_expired_leases(database, settings):
    async with database.session() as db:
        host = await users.create_user(
            db, email="h@example.org", display_name="H", password_hash="x"
        )
        # one meeting each: a meeting has at most one recording in progress
        ids_of = [
            (await meetings.create_meeting(db, host_id=host.id, title="m")).id for _ in "abcd"
        ]
        live = await _recording(db, ids_of[0], state="recording", heartbeat_ago=5)
        dead = await _recording(db, ids_of[1], state="recording", heartbeat_ago=60)
        old = await _recording(db, ids_of[2], state="recording", heartbeat_ago=None)
        stopped = await _recording(db, ids_of[3], state="processing", heartbeat_ago=60)
        ids = live.id, dead.id, old.id, stopped.id
    jobs = ComposeQueue(settings.model_copy(update={"recording_lease_seconds": 30}), database)
    jobs.leadership.start()
    await jobs.recover(stale_before=utcnow() - jobs.lease)
    async with database.session() as db:
        states = [(await recordings.get_recording(db, i)).state for i in ids]
    assert states == ["recording", "interrupted", "interrupted", "processing"]
    # the leader queues what others stopped; a worker that does not lead queues nothing
    assert jobs._queued == ({stopped.id} if jobs.leadership.is_leader else set())
    await jobs.leadership.close()


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"recording_lease_seconds": 1.2})


async def test_a_live_recording_keeps_its_lease(api, make_user, database):
    """Longer than a lease: the recording worker renews it, so the leader's recovery (which
    runs every few seconds) leaves the recording alone."""
    host = await make_user()
    room = await new_meeting(api, host)
    client = SignalingClient(api.base_url, room, api.token_for(host))
    await client.connect()
    try:
        status, started = await api.call("POST", f"/api/meetings/{room}/recording", user=host)
        assert status == 201
        jobs = api.app[JOBS]
        for _ in range(3):
            await asyncio.sleep(jobs.lease.total_seconds())
            await jobs.recover(stale_before=utcnow() - jobs.lease)
        async with database.session() as db:
            row = await recordings.get_recording(db, started["recording_id"])
            assert row.state == "recording" and row.heartbeat_at > utcnow() - jobs.lease
        status, _ = await api.call("DELETE", f"/api/meetings/{room}/recording", user=host)
        assert status == 200

        async def processed() -> bool:
            async with database.session() as db:
                row = await recordings.get_recording(db, started["recording_id"])
                return row.state in ("ready", "failed")

        await eventually(processed, 30, "the leader to compose the stopped recording")
    finally:
        await client.close()
