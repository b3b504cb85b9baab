"""Server-side recording end to end: control, manifest, files, composition, library rules."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import av
import pytest

from client.participant import Participant
from client.signaling import SignalingClient, SignalingError
from signaling.keys import JOBS, LIVE
from storage import audit, recordings
from storage.types import utcnow
from tests.helpers import eventually

LOOPBACK = ("127.0.0.1",)


async def new_meeting(api, host, **settings) -> str:
    body = {"title": "Recorded sync", "settings": {"enable_recording": True} | settings}
    status, meeting = await api.call("POST", "/api/meetings", user=host, json=body)
    assert status == 201
    return meeting["room_id"]


def decode(path: Path) -> tuple[int, tuple[int, int] | None, float]:
    frames, size, first, last = 0, None, None, 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams[0]):
            frames += 1
            t = float(frame.pts * frame.time_base)
            first = t if first is None else first
            last = t
            if isinstance(frame, av.VideoFrame):
                size = (frame.width, frame.height)
    return frames, size, last - (first or 0.0)


@pytest.fixture
async def people(api, clip):
    joined: list[Participant] = []

    async def join(user, room) -> Participant:
        person = Participant(
            api.base_url, room, api.token_for(user), clip, ice_host_addresses=LOOPBACK
        )
        joined.append(person)
        await person.join()
        return person

    yield join
    await asyncio.gather(*(p.close() for p in joined), return_exceptions=True)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_record_three_people_and_compose(api, make_user, people, database, settings):
    host, b_user, c_user = await make_user(name="Hosta"), await make_user(), await make_user()
    room = await new_meeting(api, host)
    a = await people(host, room)
    b = await people(b_user, room)
    await eventually(
        lambda: (a.peer.probe_for(b.participant_id, "camera") or _Z).frames > 10,
        15,
        "media to flow",
    )
    status, started = await api.call("POST", f"/api/meetings/{room}/recording", user=host)
    assert status == 201
    recording_id = started["recording_id"]
    event = await b.signaling.wait_for("recording-started")
    assert event["recording_id"] == recording_id and event["by"]["display_name"] == "Hosta"
    note = await b.signaling.wait_for("chat", lambda e: e["message"]["kind"] == "system")
    assert "started recording" in note["message"]["text"]
    await asyncio.sleep(3.0)
    c = await people(c_user, room)  # joins mid-recording
    assert c.signaling.welcome["recording"] == {"active": True, "recording_id": recording_id}
    await asyncio.sleep(7.0)
    await a.signaling.send({"type": "stop-recording"})
    stopped = await c.signaling.wait_for("recording-stopped")
    assert stopped["recording_id"] == recording_id and stopped["reason"] == "stopped"

    async def composed() -> bool:
        async with database.session() as db:
            row = await recordings.get_recording(db, recording_id)
            return row is not None and row.state in ("ready", "failed")

    await eventually(composed, 90, "the composition")
    status, detail = await api.call("GET", f"/api/recordings/{recording_id}", user=host)
    assert status == 200 and detail["state"] == "ready", detail
    assert 9.5 < detail["duration_seconds"] < 12
    tracks = {(t["participant_id"], t["source"]): t for t in detail["tracks"]}
    # who spoke when: the dominant speaker's timeline (everyone's microphone is voiced here)
    assert detail["speakers"], "no speaker on the timeline"
    assert {sp["participant_id"] for sp in detail["speakers"]} <= {
        p.participant_id for p in (a, b, c)
    }
    assert all(0 <= sp["at_seconds"] < 12 for sp in detail["speakers"])
    assert set(tracks) == {
        (p.participant_id, s) for p in (a, b, c) for s in ("microphone", "camera")
    }
    directory = Path(settings.data_dir) / "recordings" / str(recording_id)
    for (pid, source), track in tracks.items():
        frames, size, span = decode(_track_path(directory, pid, source))
        assert abs(span - track["duration_seconds"]) <= 0.05 * track["duration_seconds"] + 0.1
        rate = 30 if source == "camera" else 50
        assert abs(frames - rate * span) <= 0.05 * rate * span + 2, (pid, source, frames, span)
        if source == "camera":
            assert size == (640, 480)
    late = tracks[(c.participant_id, "camera")]
    assert 2.5 < late["start_offset"] < 4.5, late["start_offset"]
    assert 5.5 < late["duration_seconds"] < 8.5
    assert tracks[(a.participant_id, "camera")]["start_offset"] < 1.0
    with av.open(str(directory / "composed.mp4")) as composed_file:
        video = composed_file.streams.video[0]
        assert composed_file.streams.audio, "no audio stream"
        assert (video.codec_context.width, video.codec_context.height) == (1280, 720)
        duration = float(composed_file.duration / av.time_base)
    assert abs(duration - detail["duration_seconds"]) <= 0.05 * detail["duration_seconds"] + 0.5
    assert api.app[LIVE].media.stats()["decoders_started"] == 0


def _track_path(directory: Path, participant_id: str, source: str) -> Path:
    return directory / f"{participant_id}-{source}-1.webm"


class _Z:
    frames = 0


async def test_recording_rules(api, make_user, database):
    host, member, admin = await make_user(), await make_user(), await make_user(role="admin")
    room = await new_meeting(api, host)
    no_rec = await new_meeting(api, host, enable_recording=False)
    path = f"/api/meetings/{room}/recording"
    status, body = await api.call("POST", path, user=host)
    assert (status, body["error"]["code"]) == (409, "meeting-not-live")
    clients = [
        SignalingClient(api.base_url, r, api.token_for(u))
        for r, u in ((room, host), (room, member), (no_rec, host))
    ]
    for client in clients:
        await client.connect()
    try:
        status, body = await api.call("POST", f"/api/meetings/{no_rec}/recording", user=host)
        assert (status, body["error"]["code"]) == (409, "recording-disabled")
        status, body = await api.call("POST", path, user=member)
        assert (status, body["error"]["code"]) == (403, "not-moderator")
        with pytest.raises(SignalingError) as refused:
            await clients[1].request({"type": "start-recording"}, "recording-started")
        assert refused.value.code == "not-moderator"
        status, body = await api.call("DELETE", path, user=host)
        assert (status, body["error"]["code"]) == (409, "not-recording")
        assert (await api.call("POST", path, user=host))[0] == 201
        status, body = await api.call("POST", path, user=host)
        assert (status, body["error"]["code"]) == (409, "already-recording")
        assert (await api.call("DELETE", path, user=member))[0] == 403
        status, stopped = await api.call("DELETE", path, user=admin)  # an admin may stop any
        assert status == 200
        event = await clients[1].wait_for("recording-stopped")
        assert event["by"]["user_id"] == admin.id
        assert (await api.call("POST", "/api/meetings/nope/recording", user=host))[0] == 404
    finally:
        for client in clients:
            await client.close()
    async with database.session() as db:
        row = await recordings.get_recording(db, stopped["recording_id"])
        assert row.stopped_by_id == admin.id and row.state in ("processing", "failed")
        rows = [
            (e.action, e.outcome, e.user_id)
            for e in await audit.trail(db)
            if e.action.startswith("recording-") and e.room_id in (room, no_rec)
        ]
    # every start and stop, and every refused attempt (REST and signaling alike)
    assert rows == [
        ("recording-start", "refused", host.id),  # nobody inside
        ("recording-start", "refused", host.id),  # recording disabled
        ("recording-start", "refused", member.id),
        ("recording-start", "refused", member.id),  # over signaling
        ("recording-stop", "refused", host.id),  # not recording
        ("recording-start", "ok", host.id),
        ("recording-start", "refused", host.id),  # already recording
        ("recording-stop", "refused", member.id),
        ("recording-stop", "ok", admin.id),
    ]


async def test_meeting_end_stops_the_recording(api, make_user, database):
    host = await make_user()
    room = await new_meeting(api, host)
    client = SignalingClient(api.base_url, room, api.token_for(host))
    await client.connect()
    status, started = await api.call("POST", f"/api/meetings/{room}/recording", user=host)
    assert status == 201
    assert (await api.call("POST", f"/api/meetings/{room}/end", user=host))[0] == 200
    await client.wait_closed()
    await client.close()
    async with database.session() as db:
        row = await recordings.get_recording(db, started["recording_id"])
        assert row.stopped_at is not None and row.state != "recording"
    assert not api.app[LIVE].media.is_recording(room)
    async with database.session() as db:
        actions = [(e.action, e.user_id) for e in await audit.trail(db) if e.room_id == room]
    assert actions == [("recording-start", host.id), ("meeting-end", host.id)]


# --- the library, on recordings made from real track files --------------------------------


async def make_recording(database, settings, meeting_room: str, clip, *, days_ago: float = 0):
    """A stored recording whose two track files are real WebM muxed from the test clip."""
    from storage import meetings

    async with database.session() as db:
        meeting = await meetings.get_meeting(db, meeting_room)
        row = await recordings.create_recording(
            db, meeting_id=meeting.id, started_by_id=meeting.host_id, directory=""
        )
        row.directory = f"recordings/{row.id}"
        row.started_at = utcnow() - timedelta(days=days_ago)
        row.state = "ready"
        directory = Path(settings.data_dir) / row.directory
        directory.mkdir(parents=True)
        _mux_clip(directory / "p-x-camera-1.webm", clip)
        (directory / "composed.mp4").write_bytes(b"\x00" * 5000)
        row.composed_file = "composed.mp4"
        await recordings.add_track(
            db,
            row.id,
            user_id=meeting.host_id,
            participant_id="p-x",
            display_name="Xena",
            kind="video",
            source="camera",
            file="p-x-camera-1.webm",
            codec="VP8",
            start_offset=0.0,
            duration_seconds=3.0,
            size_bytes=(directory / "p-x-camera-1.webm").stat().st_size,
        )
        return row.id, directory


def _mux_clip(path: Path, clip) -> None:
    from fractions import Fraction

    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        out.start_encoding()
        for data, pts, keyframe in clip.video:
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts = stream, pts // 90, pts // 90
            packet.time_base, packet.is_keyframe = stream.time_base, keyframe
            out.mux(packet)


async def test_library_access_rules(api, make_user, database, settings, clip):
    host, other_host, member = await make_user(), await make_user(), await make_user()
    admin = await make_user(role="admin")
    room = await new_meeting(api, host)
    other_room = await new_meeting(api, other_host)
    mine, _ = await make_recording(database, settings, room, clip)
    theirs, _ = await make_recording(database, settings, other_room, clip)
    _, page = await api.call("GET", "/api/recordings", user=admin)
    assert {r["id"] for r in page["items"]} == {mine, theirs}
    _, page = await api.call("GET", "/api/recordings", user=host)
    assert [r["id"] for r in page["items"]] == [mine]
    assert page["items"][0]["participants"] == ["Xena"]
    _, page = await api.call("GET", "/api/recordings", user=member)
    assert page["items"] == []
    for user, status in ((host, 200), (admin, 200), (other_host, 403), (member, 403)):
        assert (await api.call("GET", f"/api/recordings/{mine}", user=user))[0] == status
        assert (await api.call("GET", f"/api/recordings/{mine}/file", user=user))[0] == status
    assert (await api.call("GET", f"/api/recordings/{mine}"))[0] == 401
    assert (await api.call("GET", f"/api/recordings/{mine}/file"))[0] == 401
    assert (await api.call("GET", "/api/recordings/99999", user=admin))[0] == 404
    assert (await api.call("GET", "/api/recordings/..%2F..%2Fetc", user=admin))[0] == 404
    assert (await api.call("GET", f"/api/recordings/{mine}/tracks/999/file", user=admin))[0] == 404
    _, page = await api.call("GET", f"/api/recordings?room_id={other_room}", user=admin)
    assert [r["id"] for r in page["items"]] == [theirs]
    _, page = await api.call("GET", "/api/recordings?q=xena&limit=1", user=admin)
    assert page["total"] == 2 and len(page["items"]) == 1
    assert (await api.call("GET", "/api/recordings?started_from=yesterday", user=admin))[0] == 422


async def test_range_requests_media_links_and_audit(api, make_user, database, settings, clip):
    host, member = await make_user(), await make_user()
    room = await new_meeting(api, host)
    rid, directory = await make_recording(database, settings, room, clip)
    _, detail = await api.call("GET", f"/api/recordings/{rid}", user=host)
    track_id = detail["tracks"][0]["id"]
    size = (directory / "p-x-camera-1.webm").stat().st_size
    auth = {"Authorization": f"Bearer {api.token_for(host)}"}
    response = await api.client.get(
        f"/api/recordings/{rid}/tracks/{track_id}/file", headers=auth | {"Range": "bytes=100-199"}
    )
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert len(await response.read()) == 100
    status, links = await api.call("POST", f"/api/recordings/{rid}/access", user=host)
    assert status == 200
    response = await api.client.get(links["track_urls"][str(track_id)] + "&download=1")
    assert response.status == 200 and "attachment" in response.headers["Content-Disposition"]
    assert len(await response.read()) == size
    # a media link opens only its recording, and is no sign-in token
    access = links["access"]
    assert (
        await api.client.get("/api/me", headers={"Authorization": f"Bearer {access}"})
    ).status == 401
    other, _ = await make_recording(database, settings, room, clip)
    assert (await api.client.get(f"/api/recordings/{other}/file?access={access}")).status == 401
    # the host's link stops working for content the host may no longer see? (still theirs)
    assert (await api.call("POST", f"/api/recordings/{rid}/access", user=member))[0] == 403
    async with database.session() as db:
        rows = await audit.trail(db, recording_id=rid)
    # a range request from byte 100 is not logged; the member's refusal is
    assert [(e.action, e.outcome, e.user_id) for e in rows] == [
        ("view", "ok", host.id),
        ("download", "ok", host.id),
        ("access", "refused", member.id),
    ]
    assert all(e.room_id == room and e.address == "127.0.0.1" for e in rows)


async def test_malformed_or_unsatisfiable_ranges_are_416_in_the_error_shape(
    api, make_user, database, settings, clip
):
    host = await make_user()
    room = await new_meeting(api, host)
    rid, directory = await make_recording(database, settings, room, clip)
    size = (directory / "composed.mp4").stat().st_size
    auth = {"Authorization": f"Bearer {api.token_for(host)}"}
    for bad in ("bytes=abc", "bytes=199-100", "items=0-10", "bytes=0-1,5-", "bytes=", "bytes=-",
                f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=\uff19-10"):  # fmt: skip
        response = await api.client.get(
            f"/api/recordings/{rid}/file", headers=auth | {"Range": bad}
        )
        assert response.status == 416, bad
        assert response.headers["Content-Range"] == f"bytes */{size}"
        body = await response.json()
        assert body["error"]["code"] == "range-not-satisfiable", bad
    for good, length in (("bytes=0-9", 10), ("bytes=-10", 10), (f"bytes={size - 5}-", 5)):
        response = await api.client.get(
            f"/api/recordings/{rid}/file", headers=auth | {"Range": good}
        )
        assert response.status == 206 and len(await response.read()) == length, good


async def test_delete_and_retention(api, make_user, database, settings, clip):
    host, member = await make_user(), await make_user()
    room = await new_meeting(api, host)
    rid, directory = await make_recording(database, settings, room, clip)
    assert (await api.call("DELETE", f"/api/recordings/{rid}", user=member))[0] == 403
    assert (await api.call("DELETE", f"/api/recordings/{rid}", user=host))[0] == 204
    assert not directory.exists()
    assert (await api.call("GET", f"/api/recordings/{rid}", user=host))[0] == 404
    async with database.session() as db:
        rows = await audit.trail(db, recording_id=rid)
    assert [(e.action, e.outcome, e.user_id) for e in rows] == [
        ("delete", "refused", member.id),
        ("delete", "ok", host.id),
    ]

    old, old_dir = await make_recording(database, settings, room, clip, days_ago=40)
    new, new_dir = await make_recording(database, settings, room, clip, days_ago=1)
    jobs = api.app[JOBS]
    jobs.settings = settings.model_copy(update={"recording_retention_days": 30})
    assert await jobs.apply_retention() == 1
    assert not old_dir.exists() and new_dir.exists()
    _, page = await api.call("GET", "/api/recordings", user=host)
    assert [r["id"] for r in page["items"]] == [new]
    async with database.session() as db:
        assert [e.action for e in await audit.trail(db, recording_id=old)] == ["retention-delete"]
