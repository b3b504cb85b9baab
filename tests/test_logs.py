"""Structured logs: JSON lines with the ids of what a record is about; request ids that
round-trip through X-Request-Id. (`tertulia serve` with TERTULIA_LOG_FORMAT=json: test_cli.)"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
from collections.abc import Iterator

import pytest

from client.signaling import SignalingClient
from signaling import logs
from tests.helpers import eventually
from tests.test_signaling import new_meeting

GENERATED = re.compile(r"[0-9a-f]{16}")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above, as the JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def read(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_per_record_with_the_ids(json_lines):
    log = logging.getLogger("tertulia.test")
    with logs.scope(request_id="req-1"):
        logs.bind(room_id="abc-defg-hij", participant_id="p-1")
        log.info("hello %s\nsecond line", "wörld")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("it failed")
        log.warning("about another meeting", extra={"room_id": "zzz-zzzz-zzz"})
    log.warning("outside any request")
    hello, failed, other, outside = read(json_lines)
    assert hello == {
        "time": hello["time"],
        "level": "INFO",
        "logger": "tertulia.test",
        "message": "hello wörld\nsecond line",
        "request_id": "req-1",
        "room_id": "abc-defg-hij",
        "participant_id": "p-1",
        "worker_id": str(os.getpid()),
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", hello["time"])
    assert failed["level"] == "ERROR" and "ZeroDivisionError" in failed["exception"]
    assert other["room_id"] == "zzz-zzzz-zzz" and other["participant_id"] == "p-1"
    # the scope ended: no id of the request outlives it
    assert outside["level"] == "WARNING" and not {"request_id", "room_id"} & outside.keys()


async def test_tasks_inherit_the_ids_they_were_started_with(json_lines):
    log = logging.getLogger("tertulia.test")

    async def work() -> None:
        await asyncio.sleep(0)
        log.info("in a task")

    with logs.scope(request_id="req-2"):
        logs.bind(participant_id="p-2")
        task = asyncio.create_task(work())
    await task
    [record] = read(json_lines)
    assert (record["request_id"], record["participant_id"]) == ("req-2", "p-2")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("edge.proxy:42_x", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("has space", False),
        ('"><script>', False),
        ("", False),
    ],
)
async def test_request_id_round_trips_when_safe(api, sent, kept):
    response = await api.client.get("/api/health", headers={"X-Request-Id": sent})
    echoed = response.headers["X-Request-Id"]
    assert echoed == sent if kept else GENERATED.fullmatch(echoed)


async def test_every_answer_has_a_request_id(api, json_lines):
    ids = set()
    for path in ("/api/health", "/api/meetings", "/no-such-page", "/"):
        response = await api.client.get(path)
        ids.add(response.headers["X-Request-Id"])
        assert GENERATED.fullmatch(response.headers["X-Request-Id"]), path
    assert len(ids) == 4  # each its own


async def test_a_sessions_logs_name_its_room_participant_and_request(api, make_user, json_lines):
    host = await make_user()
    room = await new_meeting(api, host)
    client = SignalingClient(api.base_url, room, api.token_for(host))
    await client.connect()
    await client.send({"type": "leave"})
    await client.wait_closed()

    def left() -> list[dict]:
        return [r for r in read(json_lines) if r["logger"] == "signaling.realtime.session"]

    await eventually(
        lambda: len(left()) == 2, 5, "joined and left to be logged", lambda: read(json_lines)
    )
    joined, gone = left()
    assert "joined" in joined["message"] and "left" in gone["message"]
    assert gone["room_id"] == room and gone["participant_id"] == client.participant_id
    assert GENERATED.fullmatch(gone["request_id"]) and joined["request_id"] == gone["request_id"]
    await client.close()
