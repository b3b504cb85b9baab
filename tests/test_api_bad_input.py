"""Bad input found by trying the API as an attacker: each was a 500 with a traceback once.

Every case must be a precise 4xx in the error shape, on SQLite and on PostgreSQL (where a
NUL byte or an id beyond the column's range used to reach the database and fail there).
The open-ended inputs are also fuzzed: property tests here, schemathesis in
tests/test_api_fuzz.py.
"""

from __future__ import annotations

import time

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_SECRET

DEEP = "[" * 30_000 + "]" * 30_000  # within the 64 KiB body limit, far past json's recursion
# superscript two, circled one, Arabic-Indic one, full-width one, Arabic-Indic three-three
FULLWIDTH_ONE = "\uff11"
UNICODE_DIGITS = ["\u00b2", "\u2460", "\u0661", FULLWIDTH_ONE, "\u0663\u0663"]
ODD_DIGITS = [*UNICODE_DIGITS, "00", "0", "-1", "1e3", " 1", "2147483648", "9" * 30]


def assert_error(status: int, body: object, expected_status: int, code: str | None = None) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    if code is not None:
        assert body["error"]["code"] == code, body


async def raw(api, method: str, path: str, data: str | bytes, user=None, **headers: str):
    headers = {"Content-Type": "application/json", **headers}
    return await api.call(method, path, user=user, data=data, headers=headers)


async def test_deeply_nested_json_is_malformed_not_a_crash(api, make_user):
    user = await make_user()
    for method, path, who in (
        ("POST", "/api/auth/login", None),
        ("POST", "/api/meetings", user),
        ("POST", "/api/auth/register", None),
    ):
        status, body = await raw(api, method, path, DEEP, user=who)
        if path == "/api/auth/register":  # closed here: refused before the body is read
            assert_error(status, body, 403, "registration-disabled")
        else:
            assert_error(status, body, 400, "malformed-json")


async def test_huge_offsets_are_refused(api, make_user):
    admin = await make_user(role="admin")
    for path in ("/api/meetings", "/api/users", "/api/recordings"):
        for offset in (2**63, 2**64 + 5, 2**31):
            status, body = await api.call("GET", f"{path}?offset={offset}", user=admin)
            assert_error(status, body, 422, "validation-failed")
        status, body = await api.call("GET", f"{path}?offset={2**31 - 1}", user=admin)
        assert status == 200 and body["items"] == []


async def test_ids_that_are_not_ascii_digits_name_nothing(api, make_user):
    admin = await make_user(role="admin")
    for odd in ODD_DIGITS:
        for path, code in (
            (f"/api/users/{odd}", "user-not-found"),
            (f"/api/recordings/{odd}", "recording-not-found"),
        ):
            method = "PATCH" if path.startswith("/api/users") else "GET"
            body = {"display_name": "x"} if method == "PATCH" else None
            status, reply = await api.call(method, path, user=admin, json=body)
            assert_error(status, reply, 404, code)
    # a full-width "1" must not alias user 1
    status, reply = await api.call(
        "PATCH", f"/api/users/{FULLWIDTH_ONE}", user=admin, json={"role": "member"}
    )
    assert_error(status, reply, 404, "user-not-found")
    status, me = await api.call("GET", "/api/me", user=admin)
    assert me["role"] == "admin"


async def test_dates_at_the_edge_of_the_calendar(api, make_user):
    host, admin = await make_user(), await make_user(role="admin")
    for when in (
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:30:00+14:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:00:00-14:00",
    ):
        status, body = await api.call(
            "POST", "/api/meetings", user=host, json={"title": "t", "scheduled_start": when}
        )
        assert_error(status, body, 422, "validation-failed")
        status, body = await api.call(
            "GET", "/api/recordings", user=admin, params={"started_from": when}
        )
        assert_error(status, body, 422, "validation-failed")
    # the far future that does fit is fine
    status, body = await api.call(
        "POST",
        "/api/meetings",
        user=host,
        json={"title": "t", "scheduled_start": "9998-12-30T00:00:00Z"},
    )
    assert status == 201, body


async def test_nul_bytes_never_reach_the_database(api, make_user):
    user = await make_user()
    cases = [
        ("POST", "/api/auth/login", None, {"email": "a\x00@example.org", "password": "x" * 10}),
        ("POST", "/api/auth/login", None, {"email": "a@example.org", "password": "p\x00ss"}),
        ("POST", "/api/meetings", user, {"title": "t\x00"}),
        ("POST", "/api/meetings", user, {"title": "t", "description": "d\x00"}),
    ]
    for method, path, who, body in cases:
        status, reply = await api.call(method, path, user=who, json=body)
        assert_error(status, reply, 422, "validation-failed")
    status, meeting = await api.call("POST", "/api/meetings", user=user, json={"title": "ok"})
    room = meeting["room_id"]
    status, reply = await api.call(
        "PATCH", f"/api/meetings/{room}", user=user, json={"title": "\x00"}
    )
    assert_error(status, reply, 422)
    for path in ("/api/meetings/%00", f"/api/meetings/{room}%00", "/api/meetings/a%00b/join"):
        method = "POST" if path.endswith("/join") else "GET"
        status, reply = await api.call(method, path, user=user)
        assert_error(status, reply, 404, "meeting-not-found")
    admin = await make_user(role="admin")
    for query in ("q=%00", "room_id=%00"):
        status, reply = await api.call("GET", f"/api/recordings?{query}", user=admin)
        assert_error(status, reply, 422)
    status, reply = await api.call(
        "PATCH", f"/api/users/{user.id}", user=admin, json={"display_name": "Eve\x00"}
    )
    assert_error(status, reply, 422)


async def test_ids_beyond_the_column_range(api, make_user):
    admin = await make_user(role="admin")
    for big in (2**31, 2**32 + 1, 2**63 - 1, 10**18):
        status, reply = await api.call(
            "PATCH", f"/api/users/{big}", user=admin, json={"role": "member"}
        )
        assert_error(status, reply, 404, "user-not-found")
        status, reply = await api.call("GET", f"/api/recordings/{big}", user=admin)
        assert_error(status, reply, 404, "recording-not-found")
        status, reply = await api.call(
            "GET", f"/api/recordings/{big}/tracks/{big}/file", user=admin
        )
        assert_error(status, reply, 404, "recording-not-found")


async def test_signed_token_with_a_strange_subject(api, make_user):
    await make_user()
    now = int(time.time())
    for sub in (str(2**31), str(2**63), "9" * 40, FULLWIDTH_ONE, "-1", "0", "1.5", " 1"):
        token = jwt.encode(
            {"sub": sub, "role": "admin", "iat": now, "exp": now + 60}, TEST_SECRET, "HS256"
        )
        status, reply = await api.call(
            "GET", "/api/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert_error(status, reply, 401, "invalid-token")


async def test_unknown_api_paths_and_methods_keep_the_shape(api, make_user):
    user = await make_user()
    status, body = await api.call("GET", "/api/nothing-here", user=user)
    assert_error(status, body, 404)
    status, body = await api.call("PUT", "/api/meetings", user=user, json={})
    assert_error(status, body, 405, "method-not-allowed")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_body_that_is_not_json_or_not_utf8(api):
    for data in (b"\xff\xfe\x00", b"{", b"", b'{"email": "a@b", "password": "x", }', b"NaN"):
        status, body = await raw(api, "POST", "/api/auth/login", data)
        assert status in (400, 422), (data, body)
        assert_error(status, body, status)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    segment=st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and s not in (".", ".."))
)
async def test_any_path_segment_is_never_a_server_error(api, make_user, segment):
    """Whatever text stands where an id goes, the answer is never a server error, and a
    refusal is a 4xx in the error shape."""
    from urllib.parse import quote

    user = await make_user(role="admin")
    encoded = quote(segment, safe="")
    for method, path in (
        ("GET", f"/api/meetings/{encoded}"),
        ("GET", f"/api/recordings/{encoded}"),
        ("PATCH", f"/api/users/{encoded}"),
        ("POST", f"/api/meetings/{encoded}/join"),
    ):
        body = {"display_name": "x"} if method == "PATCH" else None
        status, reply = await api.call(method, path, user=user, json=body)
        assert status < 500, (method, path, reply)
        if status >= 400:
            assert_error(status, reply, status)
