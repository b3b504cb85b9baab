"""The meetings REST API, happy paths and every class of error."""

from __future__ import annotations

import asyncio

import pytest

MEETING = {
    "title": "Weekly sync",
    "description": "Agenda in the doc",
    "scheduled_start": "2030-01-02T09:30:00+01:00",
    "duration_minutes": 45,
    "settings": {"max_participants": 3, "enable_chat": False},
}


async def create(api, user, **overrides):
    status, body = await api.call("POST", "/api/meetings", user=user, json=MEETING | overrides)
    assert status == 201, body
    return body


async def test_create_read_and_join_url(api, make_user):
    host = await make_user(name="Host")
    meeting = await create(api, host)
    assert meeting["join_url"] == f"https://meet.example.org/m/{meeting['room_id']}"
    assert len(meeting["room_id"]) >= 16
    assert meeting["scheduled_start"] == "2030-01-02T08:30:00Z"
    assert meeting["settings"] == {
        "max_participants": 3,
        "require_approval": False,
        "enable_recording": False,
        "enable_chat": False,
        "allow_self_unmute": True,
        "end_on_schedule": False,
        "locked": False,
    }
    assert meeting["status"] == "scheduled" and meeting["host"]["display_name"] == "Host"
    other = await make_user()
    status, read = await api.call("GET", f"/api/meetings/{meeting['room_id']}", user=other)
    assert status == 200 and read["title"] == "Weekly sync" and read["is_host"] is False


async def test_room_ids_are_unique_and_url_safe(api, make_user):
    host = await make_user()
    ids = {(await create(api, host))["room_id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(all(c.isalnum() or c in "-_" for c in room) for room in ids)


async def test_list_hosted_and_joined_upcoming_first_paginated(api, make_user):
    alice, bob = await make_user(), await make_user()
    late = await create(api, alice, title="late", scheduled_start="2031-01-01T00:00:00Z")
    soon = await create(api, alice, title="soon", scheduled_start="2030-01-01T00:00:00Z")
    done = await create(api, alice, title="done")
    unscheduled = await create(api, bob, title="bob's", scheduled_start=None)
    await create(api, bob, title="not alice's")
    assert (await api.call("POST", f"/api/meetings/{done['room_id']}/end", user=alice))[0] == 200
    assert (await api.call("POST", f"/api/meetings/{unscheduled['room_id']}/join", user=alice))[
        0
    ] == 200
    status, page = await api.call("GET", "/api/meetings", user=alice)
    assert status == 200 and page["total"] == 4
    assert [m["title"] for m in page["items"]] == ["soon", "late", "bob's", "done"]
    status, page = await api.call("GET", "/api/meetings?limit=2&offset=1", user=alice)
    assert [m["title"] for m in page["items"]] == ["late", "bob's"]
    _, upcoming = await api.call("GET", "/api/meetings?when=upcoming", user=alice)
    _, past = await api.call("GET", "/api/meetings?when=past", user=alice)
    assert upcoming["total"] == 3 and [m["title"] for m in past["items"]] == ["done"]
    assert late["room_id"] != soon["room_id"]
    for bad in ["limit=101", "offset=-1", "when=tomorrow", "limit=x"]:
        assert (await api.call("GET", f"/api/meetings?{bad}", user=alice))[0] == 422, bad


async def test_patch_by_host_and_admin_only(api, make_user):
    host, other, admin = await make_user(), await make_user(), await make_user(role="admin")
    meeting = await create(api, host)
    path = f"/api/meetings/{meeting['room_id']}"
    status, body = await api.call(
        "PATCH",
        path,
        user=host,
        json={"title": "Renamed", "settings": {"max_participants": 10}, "scheduled_start": None},
    )
    assert status == 200 and body["title"] == "Renamed"
    assert body["settings"]["max_participants"] == 10 and body["settings"]["enable_chat"] is False
    assert body["scheduled_start"] is None
    status, body = await api.call("PATCH", path, user=other, json={"title": "Mine now"})
    assert (status, body["error"]["code"]) == (403, "not-host")
    assert (await api.call("PATCH", path, user=admin, json={"duration_minutes": 90}))[0] == 200
    assert (await api.call("PATCH", path, user=host, json={"title": None}))[0] == 422
    assert (await api.call("PATCH", "/api/meetings/nope", user=host, json={}))[0] == 404


async def test_delete_by_host_or_admin(api, make_user):
    host, other, admin = await make_user(), await make_user(), await make_user(role="admin")
    first, second = await create(api, host), await create(api, host)
    assert (await api.call("DELETE", f"/api/meetings/{first['room_id']}", user=other))[0] == 403
    assert (await api.call("DELETE", f"/api/meetings/{first['room_id']}", user=host))[0] == 204
    assert (await api.call("GET", f"/api/meetings/{first['room_id']}", user=host))[0] == 404
    assert (await api.call("DELETE", f"/api/meetings/{second['room_id']}", user=admin))[0] == 204
    assert (await api.call("DELETE", f"/api/meetings/{second['room_id']}", user=admin))[0] == 404


async def test_join_records_visits_with_roles(api, make_user, database):
    host, guest = await make_user(), await make_user()
    meeting = await create(api, host)
    path = f"/api/meetings/{meeting['room_id']}/join"
    status, joined = await api.call("POST", path, user=host)
    assert status == 200 and joined["role"] == "host" and joined["meeting"]["status"] == "active"
    status, joined = await api.call("POST", path, user=guest)
    assert status == 200 and joined["role"] == "participant" and joined["held_until"]
    status, again = await api.call("POST", path, user=guest)  # the same held seat, extended
    assert status == 200 and again["participation_id"] == joined["participation_id"]
    assert again["held_until"] >= joined["held_until"]
    from storage import meetings

    async with database.session() as session:
        m = await meetings.get_meeting(session, meeting["room_id"])
        visits = await meetings.visits(session, m.id)
        assert [(v.user_id, v.left_at is None) for v in visits] == [
            (host.id, True),
            (guest.id, True),
        ]
        assert m.started_at is not None


async def test_join_refuses_full_meeting_under_concurrent_joins(api, make_user):
    host = await make_user()
    meeting = await create(api, host, settings={"max_participants": 3})
    people = [await make_user() for _ in range(8)]
    path = f"/api/meetings/{meeting['room_id']}/join"
    results = await asyncio.gather(*(api.call("POST", path, user=p) for p in people))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 3 + [409] * 5
    assert {body["error"]["code"] for status, body in results if status == 409} == {"meeting-full"}
    # the host is never refused a seat in their own meeting
    status, body = await api.call("POST", path, user=host)
    assert (status, body["role"]) == (200, "host")


async def test_end_is_for_moderators_and_final(api, make_user, database):
    host, guest, admin = await make_user(), await make_user(), await make_user(role="admin")
    meeting = await create(api, host)
    room = meeting["room_id"]
    assert (await api.call("POST", f"/api/meetings/{room}/join", user=guest))[0] == 200
    status, body = await api.call("POST", f"/api/meetings/{room}/end", user=guest)
    assert (status, body["error"]["code"]) == (403, "not-moderator")
    status, ended = await api.call("POST", f"/api/meetings/{room}/end", user=host)
    assert status == 200 and ended["status"] == "ended" and ended["ended_at"] is not None
    status, body = await api.call("POST", f"/api/meetings/{room}/end", user=admin)
    assert (status, body["error"]["code"]) == (409, "meeting-ended")
    status, body = await api.call("POST", f"/api/meetings/{room}/join", user=guest)
    assert (status, body["error"]["code"]) == (409, "meeting-ended")
    assert (await api.call("POST", f"/api/meetings/{room}/end", user=host))[0] == 409
    assert (await api.call("PATCH", f"/api/meetings/{room}", user=host, json={"title": "x"}))[
        0
    ] == 409
    from storage import meetings

    async with database.session() as session:
        m = await meetings.get_meeting(session, room)
        assert all(v.left_at is not None for v in await meetings.visits(session, m.id))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ""),
        ("title", "x" * 201),
        ("title", 42),
        ("description", "x" * 5001),
        ("duration_minutes", 0),
        ("duration_minutes", 1441),
        ("duration_minutes", "long"),
        ("scheduled_start", "next tuesday"),
        ("scheduled_start", "2030-01-02T09:30:00"),  # no zone: ambiguous
        ("settings", {"max_participants": 1}),
        ("settings", {"max_participants": 501}),
        ("settings", {"enable_chat": "maybe"}),
        ("settings", {"unknown": True}),
        ("colour", "blue"),
    ],
)
async def test_create_validation(api, make_user, field, value):
    host = await make_user()
    status, body = await api.call("POST", "/api/meetings", user=host, json=MEETING | {field: value})
    assert status == 422, body
    assert body["error"]["code"] == "validation-failed"
    assert body["error"]["details"][0]["field"].startswith(field)


async def test_missing_title_and_boundaries(api, make_user):
    host = await make_user()
    assert (await api.call("POST", "/api/meetings", user=host, json={}))[0] == 422
    body = {
        "title": "t" * 200,
        "description": "d" * 5000,
        "duration_minutes": 1440,
        "settings": {"max_participants": 500},
    }
    assert (await api.call("POST", "/api/meetings", user=host, json=body))[0] == 201
    body = {"title": "t", "duration_minutes": 1, "settings": {"max_participants": 2}}
    assert (await api.call("POST", "/api/meetings", user=host, json=body))[0] == 201


async def test_malformed_json_wrong_type_and_oversized_body(api, make_user):
    host = await make_user()
    auth = {"Authorization": f"Bearer {api.token_for(host)}"}
    cases = [
        (
            {"data": b"{not json", "headers": auth | {"Content-Type": "application/json"}},
            400,
            "malformed-json",
        ),
        (
            {"data": b"\xff\xfe", "headers": auth | {"Content-Type": "application/json"}},
            400,
            "malformed-json",
        ),
        (
            {
                "data": b"title=x",
                "headers": auth | {"Content-Type": "application/x-www-form-urlencoded"},
            },
            415,
            "unsupported-media-type",
        ),
        (
            {"data": b"[1, 2]", "headers": auth | {"Content-Type": "application/json"}},
            422,
            "validation-failed",
        ),
        (
            {
                "data": b'{"title": "' + b"x" * 70_000 + b'"}',
                "headers": auth | {"Content-Type": "application/json"},
            },
            413,
            "payload-too-large",
        ),
    ]
    for kwargs, status, code in cases:
        response = await api.client.post("/api/meetings", **kwargs)
        assert response.status == status
        assert (await response.json())["error"]["code"] == code


async def test_unknown_routes_and_methods_are_json_errors(api, make_user):
    user = await make_user()
    status, body = await api.call("GET", "/api/nothing-here", user=user)
    assert (status, body["error"]["code"]) == (404, "not-found")
    status, body = await api.call("PUT", "/api/meetings", user=user)
    assert (status, body["error"]["code"]) == (405, "method-not-allowed")
    assert (await api.call("GET", "/api/meetings/unknown-room", user=user))[0] == 404


async def test_every_meeting_route_requires_a_token(api, make_user):
    host = await make_user()
    room = (await create(api, host))["room_id"]
    for method, path in [
        ("POST", "/api/meetings"),
        ("GET", "/api/meetings"),
        ("GET", f"/api/meetings/{room}"),
        ("PATCH", f"/api/meetings/{room}"),
        ("DELETE", f"/api/meetings/{room}"),
        ("POST", f"/api/meetings/{room}/join"),
        ("POST", f"/api/meetings/{room}/end"),
    ]:
        status, body = await api.call(method, path, json={})
        assert (status, body["error"]["code"]) == (401, "missing-token"), (method, path)


async def test_health(api):
    status, body = await api.call("GET", "/api/health")
    assert status == 200 and body["status"] == "ok" and body["database"] == "ok"
    assert body["version"]


async def test_moderation_settings_are_stored_and_strict(api, make_user):
    host = await make_user()
    settings = {"require_approval": True, "allow_self_unmute": False, "end_on_schedule": True}
    status, made = await api.call(
        "POST", "/api/meetings", user=host, json={"title": "t", "settings": settings}
    )
    assert status == 201 and made["settings"] | settings == made["settings"]
    assert made["settings"]["locked"] is False
    path = f"/api/meetings/{made['room_id']}"
    status, body = await api.call(
        "PATCH", path, user=host, json={"settings": {"require_approval": "yes"}}
    )
    assert status == 422 and body["error"]["details"][0]["field"] == "settings.require_approval"
    status, body = await api.call("PATCH", path, user=host, json={"settings": {"locked": True}})
    assert status == 422  # the lock is a moderation act (PUT .../lock), not a setting
    status, read = await api.call(
        "PATCH", path, user=host, json={"settings": {"require_approval": False}}
    )
    assert status == 200 and read["settings"]["require_approval"] is False
