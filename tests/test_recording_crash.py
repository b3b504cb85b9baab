"""SIGKILL the server mid-recording: after a restart the recording is 'interrupted', with
the duration its files hold, the files decode, and it can still be composed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest

from client.participant import Participant
from tests.server_process import ServerProcess

PASSWORD = "crash-test-password"


@pytest.fixture
def server(tmp_path: Path):
    process = ServerProcess(tmp_path / "data")
    yield process
    process.stop()


async def call(server: ServerProcess, *args, **kwargs):
    return await asyncio.to_thread(server.request, *args, **kwargs)


async def test_sigkill_mid_recording_leaves_playable_interrupted_recording(server, clip):
    server.create_user("host@example.org", "Host", PASSWORD)
    server.create_user("guest@example.org", "Guest", PASSWORD)
    await asyncio.to_thread(server.start)
    host = await asyncio.to_thread(server.login, "host@example.org", PASSWORD)
    guest = await asyncio.to_thread(server.login, "guest@example.org", PASSWORD)
    status, meeting = await call(
        server,
        "POST",
        "/api/meetings",
        host,
        {"title": "Crash", "settings": {"enable_recording": True}},
    )
    assert status == 201
    room = meeting["room_id"]
    people = [
        Participant(server.base_url, room, token, clip, ice_host_addresses=("127.0.0.1",))
        for token in (host, guest)
    ]
    try:
        for person in people:
            await person.join()
        for _ in range(150):
            probe = people[0].peer.probe_for(people[1].participant_id, "camera")
            if probe is not None and probe.frames > 10:
                break
            await asyncio.sleep(0.1)
        status, started = await call(server, "POST", f"/api/meetings/{room}/recording", host)
        assert status == 201, started
        await asyncio.sleep(4.0)
        await asyncio.to_thread(server.kill)
    finally:
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)

    await asyncio.to_thread(server.start)  # recovery runs at start-up
    rid = started["recording_id"]
    status, detail = await call(server, "GET", f"/api/recordings/{rid}", host)
    assert status == 200 and detail["state"] == "interrupted", detail
    assert 2.5 < detail["duration_seconds"] < 5.5, detail["duration_seconds"]
    assert len(detail["tracks"]) == 4
    directory = server.data_dir / "recordings" / str(rid)
    for track in detail["tracks"]:
        assert track["duration_seconds"] > 2.0, track
        path = directory / f"{track['participant_id']}-{track['source']}-1.webm"
        with av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(container.streams[0]))
        rate = 30 if track["kind"] == "video" else 50
        assert frames >= 0.8 * rate * track["duration_seconds"], (track, frames)

    status, body = await call(server, "POST", f"/api/recordings/{rid}/compose", host)
    assert status == 202, body
    for _ in range(600):
        status, detail = await call(server, "GET", f"/api/recordings/{rid}", host)
        if detail["state"] in ("ready", "failed"):
            break
        await asyncio.sleep(0.2)
    assert detail["state"] == "ready", detail
    with av.open(str(directory / "composed.mp4")) as composed:
        assert composed.streams.video and composed.streams.audio
