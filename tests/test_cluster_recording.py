"""Recording a meeting that spans two workers (two apps sharing one database and one Redis):
one recording per meeting deployment-wide, started on the starter's worker, stopped from any
worker, every track recorded whatever worker its publisher is on, named from presence. Real
Redis (TERTULIA_TEST_REDIS_URL), real database, real aiortc clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest
from aiohttp.test_utils import TestClient

from client.participant import Participant
from client.signaling import SignalingClient, SignalingError
from signaling.keys import LIVE, RECORDINGS
from storage import meetings, recordings
from tests.cluster_fixtures import join_with_media, token, url_of
from tests.helpers import eventually


async def call(worker: TestClient, method: str, path: str, user) -> tuple[int, dict]:
    response = await worker.request(
        method, path, headers={"Authorization": f"Bearer {token(worker, user)}"}
    )
    return response.status, await response.json()


async def recorded_meeting(worker: TestClient, host) -> str:
    response = await worker.post(
        "/api/meetings",
        json={"title": "Recorded across", "settings": {"enable_recording": True}},
        headers={"Authorization": f"Bearer {token(worker, host)}"},
    )
    assert response.status == 201
    return (await response.json())["room_id"]


async def connect(worker: TestClient, user, room: str, opened: list) -> SignalingClient:
    client = SignalingClient(url_of(worker), room, token(worker, user))
    opened.append(client)
    await client.connect()
    return client


async def rows(database, room: str) -> list:
    async with database.session() as db:
        meeting = await meetings.get_meeting(db, room)
        found = await recordings.list_recordings(
            db, host_id=None, room_id=room, limit=100, offset=0
        )
        assert meeting is not None
    return sorted(found[0], key=lambda r: r.id)


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.demux(container.streams[0]) if _.size)


async def test_recording_spans_the_workers(workers, make_user, database, settings, clip, opened):
    """Ana (host) on worker one starts recording; Bo and Cy are on worker two. Worker one
    records everyone's camera and microphone, keeps receiving Bo's and Cy's once Ana has
    left, and stops when Bo, made a moderator, asks on worker two."""
    one, two = workers
    ana, bo, cy = (
        await make_user(name="Ana"),
        await make_user(name="Bo"),
        await make_user(name="Cy"),
    )
    dee = await make_user(name="Dee")
    room = await recorded_meeting(one, ana)

    async def join(worker: TestClient, user) -> Participant:
        return await join_with_media(worker, user, room, clip, opened)

    a, b, c = await join(one, ana), await join(two, bo), await join(two, cy)
    everyone = [a, b, c]

    def receiving() -> bool:
        return all(
            (p.peer.probe_for(o.participant_id, "camera") or _NoFrames).frames > 5
            for p in everyone
            for o in everyone
            if o is not p
        )

    await eventually(receiving, 30, "media to flow across the workers")
    await a.signaling.send({"type": "start-recording"})
    started = await a.signaling.wait_for("recording-started")
    recording_id = started["recording_id"]
    assert started["by"]["display_name"] == "Ana"
    for person in (b, c):  # told on worker two too, with the system line
        assert (await person.signaling.wait_for("recording-started"))["recording_id"] == (
            recording_id
        )
        note = await person.signaling.wait_for("chat", lambda e: e["message"]["kind"] == "system")
        assert note["message"]["text"] == "Ana started recording"
    assert one.app[RECORDINGS].active[room].recording_id == recording_id
    # a second start, asked on worker two, is refused: the recording is deployment-wide
    status, body = await call(two, "POST", f"/api/meetings/{room}/recording", ana)
    assert (status, body["error"]["code"]) == (409, "already-recording")
    with pytest.raises(SignalingError) as refused:
        await b.signaling.request({"type": "start-recording"}, "error")
    assert refused.value.code == "not-moderator"
    # someone joining on worker two learns it is being recorded
    d = await connect(two, dee, room, opened)
    assert d.welcome["recording"] == {"active": True, "recording_id": recording_id}

    async def tracks() -> set[tuple[str, str]]:
        async with database.session() as db:
            row = await recordings.get_recording(db, recording_id)
            return {(t.participant_id, t.source) for t in row.tracks}

    wanted = {(p.participant_id, s) for p in everyone for s in ("microphone", "camera")}
    await eventually(lambda: _is(tracks(), wanted), 20, "every track to be recorded")
    directory = Path(settings.data_dir) / "recordings" / str(recording_id)

    async def written() -> bool:
        async with database.session() as db:
            row = await recordings.get_recording(db, recording_id)
        return all(_frames(directory / t.file) >= 20 for t in row.tracks)

    await eventually(written, 20, "20 frames of every track in its file")
    # Ana makes Bo a moderator and leaves: worker one holds nobody, and still records Bo
    # and Cy through the pipes
    await a.signaling.request(
        {"type": "set-role", "participant_id": b.participant_id, "role": "moderator"}, "ack"
    )
    await b.signaling.wait_for("role-changed")
    await a.leave()
    await b.signaling.wait_for(
        "participant-left", lambda e: e["participant_id"] == a.participant_id
    )
    assert room not in one.app[LIVE].rooms or not one.app[LIVE].rooms[room].peers
    async with database.session() as db:
        row = await recordings.get_recording(db, recording_id)
        files = {(t.participant_id, t.source): directory / t.file for t in row.tracks}
    bo_camera = files[b.participant_id, "camera"]
    before = _frames(bo_camera)
    await eventually(
        lambda: _frames(bo_camera) > before + 30, 20, "Bo's camera to go on being recorded"
    )
    assert room in one.app[RECORDINGS].active and one.app[LIVE].keeps(room)
    assert one.app[LIVE].media.stats()["pipe_streams_in"] == 4
    # Bo stops it from worker two: worker one carries the stop out
    await b.signaling.send({"type": "stop-recording"})
    stopped = await c.signaling.wait_for("recording-stopped")
    assert stopped["recording_id"] == recording_id and stopped["by"]["display_name"] == "Bo"
    assert stopped["reason"] == "stopped"
    assert room not in one.app[RECORDINGS].active
    await eventually(
        lambda: one.app[LIVE].media.stats()["pipe_streams_in"] == 0,
        10,
        "worker one to stop receiving once it no longer records",
    )
    async with database.session() as db:
        row = await recordings.get_recording(db, recording_id)
        assert row.state in ("processing", "ready", "failed") and row.stopped_by_id == bo.id
        stored = {(t.participant_id, t.source): t for t in row.tracks}
    assert set(stored) == wanted
    names = {a.participant_id: "Ana", b.participant_id: "Bo", c.participant_id: "Cy"}
    users_of = {a.participant_id: ana.id, b.participant_id: bo.id, c.participant_id: cy.id}
    for (participant_id, source), track in stored.items():
        assert track.display_name == names[participant_id]
        assert track.user_id == users_of[participant_id]
        assert track.duration_seconds > 0, (participant_id, source)
        assert frames_in(directory / track.file) >= 20, (participant_id, source)


async def test_one_recording_per_meeting_and_everyone_leaving(workers, make_user, database, opened):
    """Two starts at once on two workers: exactly one records. Once its own person left
    the recording worker goes on; when the last person, on the other worker, leaves, it
    stops there ('everyone left'). Nothing is ever marked interrupted."""
    one, two = workers
    host = await make_user(name="Hana")
    guest = await make_user(name="Gil")
    room = await recorded_meeting(one, host)
    a = await connect(one, host, room, opened)
    b = await connect(two, guest, room, opened)
    await a.wait_for("participant-joined")
    answers = await asyncio.gather(
        call(one, "POST", f"/api/meetings/{room}/recording", host),
        call(two, "POST", f"/api/meetings/{room}/recording", host),
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 409], answers
    refusal = next(body for status, body in answers if status == 409)
    assert refusal["error"]["code"] == "already-recording"
    recording_id = next(body for status, body in answers if status == 201)["recording_id"]
    recorder, client_there, client_elsewhere = (
        (one, a, b) if recording_id in _ids(one, room) else (two, b, a)
    )
    live = await rows(database, room)
    assert [(r.id, r.state) for r in live] == [(recording_id, "recording")]
    assert live[0].worker_id == recorder.app[LIVE].worker_id
    # the recording worker's own person leaves: it keeps recording for the other one
    await client_there.send({"type": "leave"})
    await client_elsewhere.wait_for("participant-left")
    await asyncio.sleep(1.0)
    assert recording_id in _ids(recorder, room)
    # the last person leaves, on the other worker: the recording stops on its worker
    await client_elsewhere.send({"type": "leave"})

    async def stopped() -> bool:
        return [r.state for r in await rows(database, room)] != ["recording"]

    await eventually(stopped, 15, "the recording to stop")
    (row,) = await rows(database, room)
    assert row.state in ("processing", "ready", "failed") and not _ids(recorder, room)


async def test_a_stop_asked_on_the_other_worker_over_rest(workers, make_user, database, opened):
    one, two = workers
    host, guest = await make_user(name="Hana"), await make_user(name="Gil")
    room = await recorded_meeting(one, host)
    a = await connect(one, host, room, opened)
    b = await connect(two, guest, room, opened)
    await a.wait_for("participant-joined")
    status, started = await call(one, "POST", f"/api/meetings/{room}/recording", host)
    assert status == 201
    status, body = await call(two, "DELETE", f"/api/meetings/{room}/recording", guest)
    assert (status, body["error"]["code"]) == (403, "not-moderator")
    status, body = await call(two, "DELETE", f"/api/meetings/{room}/recording", host)
    assert (status, body) == (200, {"recording_id": started["recording_id"]})
    (row,) = await rows(database, room)  # stopped by the time the answer came
    assert row.state != "recording" and row.stopped_by_id == host.id
    stopped = await b.wait_for("recording-stopped")
    assert stopped["by"]["user_id"] == host.id
    status, body = await call(two, "DELETE", f"/api/meetings/{room}/recording", host)
    assert (status, body["error"]["code"]) == (409, "not-recording")
    # a malformed command from another worker is dropped, never half carried out
    await one.app[RECORDINGS].command(room, {"act": "stop-recording", "recording_id": "1"})
    await one.app[RECORDINGS].command(room, {"act": "stop-recording", "extra": True})


async def test_ending_the_meeting_elsewhere_stops_the_recording_first(
    workers, make_user, database, opened
):
    """Recorded on worker two (where the REST request landed), ended on worker one: the
    recording is stored before anyone is told the meeting ended."""
    one, two = workers
    host, guest = await make_user(name="Hana"), await make_user(name="Gil")
    room = await recorded_meeting(one, host)
    a = await connect(one, host, room, opened)
    b = await connect(two, guest, room, opened)
    await a.wait_for("participant-joined")
    status, started = await call(two, "POST", f"/api/meetings/{room}/recording", host)
    assert status == 201 and room in two.app[RECORDINGS].active
    await a.send({"type": "end-meeting"})
    await b.wait_closed()
    kinds = [e["type"] for e in b.events if e["type"] in ("recording-stopped", "meeting-ended")]
    assert kinds == ["recording-stopped", "meeting-ended"]
    stopped = next(e for e in b.events if e["type"] == "recording-stopped")
    assert (stopped["recording_id"], stopped["reason"]) == (
        started["recording_id"],
        "meeting ended",
    )
    (row,) = await rows(database, room)
    assert row.state in ("processing", "ready", "failed")


def _frames(path: Path) -> int:
    """Frames in a track file being written (0 while it has no complete cluster yet)."""
    try:
        return frames_in(path)
    except (OSError, av.error.FFmpegError):
        return 0


def _ids(worker: TestClient, room: str) -> set[int]:
    active = worker.app[RECORDINGS].active.get(room)
    return {active.recording_id} if active else set()


async def _is(value, wanted) -> bool:
    return (await value) == wanted


class _NoFrames:
    frames = 0
