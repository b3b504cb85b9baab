"""Sign-in, tokens and admin user management over real HTTP."""

from __future__ import annotations

import time

import jwt

from tests.conftest import TEST_PASSWORD, TEST_SECRET


async def test_login_returns_token_and_user(api, make_user):
    user = await make_user(email="Ana@Example.org")
    status, body = await api.call(
        "POST", "/api/auth/login", json={"email": "ana@EXAMPLE.org", "password": TEST_PASSWORD}
    )
    assert status == 200
    assert body["user"]["id"] == user.id and body["user"]["email"] == "ana@example.org"
    claims = jwt.decode(body["token"], TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user.id) and claims["role"] == "member"
    assert claims["exp"] - claims["iat"] == 3600 == body["expires_in"]


async def test_login_wrong_password_and_unknown_email_look_the_same(api, make_user):
    await make_user(email="bo@example.org")
    for email, password in [("bo@example.org", "wrong-password"), ("nobody@example.org", "x")]:
        status, body = await api.call(
            "POST", "/api/auth/login", json={"email": email, "password": password}
        )
        assert status == 401
        assert body["error"]["code"] == "invalid-credentials"


async def test_login_refuses_disabled_user(api, make_user, database):
    user = await make_user(email="off@example.org")
    async with database.session() as session:
        (await session.get(type(user), user.id)).is_active = False
    status, body = await api.call(
        "POST", "/api/auth/login", json={"email": "off@example.org", "password": TEST_PASSWORD}
    )
    assert (status, body["error"]["code"]) == (403, "account-disabled")


async def test_me(api, make_user):
    user = await make_user(name="Carla")
    status, body = await api.call("GET", "/api/me", user=user)
    assert status == 200 and body["display_name"] == "Carla"


async def test_missing_malformed_expired_and_forged_tokens(api, make_user):
    user = await make_user()
    now = int(time.time())
    expired = jwt.encode(
        {"sub": str(user.id), "role": "member", "iat": now - 7200, "exp": now - 3600},
        TEST_SECRET,
        algorithm="HS256",
    )
    forged = jwt.encode(
        {"sub": str(user.id), "role": "admin", "iat": now, "exp": now + 60},
        "some-other-secret-of-sufficient-length-000000",
        algorithm="HS256",
    )
    unsigned = jwt.encode(
        {"sub": str(user.id), "role": "admin", "iat": now, "exp": now + 60}, None, algorithm="none"
    )
    cases = [
        ({}, "missing-token"),
        ({"Authorization": "Basic abc"}, "missing-token"),
        ({"Authorization": "Bearer not.a.jwt"}, "invalid-token"),
        ({"Authorization": f"Bearer {expired}"}, "token-expired"),
        ({"Authorization": f"Bearer {forged}"}, "invalid-token"),
        ({"Authorization": f"Bearer {unsigned}"}, "invalid-token"),
    ]
    for headers, code in cases:
        status, body = await api.call("GET", "/api/me", headers=headers)
        assert (status, body["error"]["code"]) == (401, code), headers


async def test_disabled_user_refused_even_with_unexpired_token(api, make_user):
    admin = await make_user(role="admin")
    user = await make_user()
    assert (await api.call("GET", "/api/me", user=user))[0] == 200
    status, _ = await api.call(
        "PATCH", f"/api/users/{user.id}", user=admin, json={"is_active": False}
    )
    assert status == 200
    status, body = await api.call("GET", "/api/me", user=user)
    assert (status, body["error"]["code"]) == (403, "account-disabled")
    status, _ = await api.call("POST", "/api/meetings", user=user, json={"title": "x"})
    assert status == 403


async def test_admin_creates_lists_and_patches_users(api, make_user):
    admin = await make_user(role="admin")
    status, created = await api.call(
        "POST",
        "/api/users",
        user=admin,
        json={"email": "New@Example.org", "display_name": "New", "password": "longenough"},
    )
    assert status == 201 and created["email"] == "new@example.org" and created["role"] == "member"
    status, again = await api.call(
        "POST",
        "/api/users",
        user=admin,
        json={"email": "NEW@example.org", "display_name": "Dup", "password": "longenough"},
    )
    assert (status, again["error"]["code"]) == (409, "email-taken")
    status, page = await api.call("GET", "/api/users?limit=1&offset=1", user=admin)
    assert (
        status == 200 and page["total"] == 2 and [u["id"] for u in page["items"]] == [created["id"]]
    )
    status, patched = await api.call(
        "PATCH",
        f"/api/users/{created['id']}",
        user=admin,
        json={"display_name": "Renamed", "role": "admin"},
    )
    assert status == 200 and patched["display_name"] == "Renamed" and patched["role"] == "admin"
    status, login = await api.call(
        "POST", "/api/auth/login", json={"email": "new@example.org", "password": "longenough"}
    )
    assert status == 200 and login["user"]["role"] == "admin"


async def test_user_management_errors(api, make_user):
    admin = await make_user(role="admin")
    member = await make_user()
    assert (await api.call("GET", "/api/users", user=member))[1]["error"]["code"] == "admin-only"
    status, _ = await api.call(
        "POST",
        "/api/users",
        user=member,
        json={"email": "a@example.org", "display_name": "A", "password": "longenough"},
    )
    assert status == 403
    for body in [
        {"email": "not-an-email", "display_name": "A", "password": "longenough"},
        {"email": "a@example.org", "display_name": "", "password": "longenough"},
        {"email": "a@example.org", "display_name": "A", "password": "short"},
        {"email": "a@example.org", "display_name": "A", "password": "longenough", "role": "god"},
        {"email": "a@example.org", "display_name": "A", "password": "longenough", "extra": 1},
    ]:
        status, err = await api.call("POST", "/api/users", user=admin, json=body)
        assert (status, err["error"]["code"]) == (422, "validation-failed"), body
    assert (await api.call("PATCH", "/api/users/9999", user=admin, json={}))[0] == 404
    assert (await api.call("PATCH", "/api/users/abc", user=admin, json={}))[0] == 404
    status, err = await api.call(
        "PATCH", f"/api/users/{admin.id}", user=admin, json={"is_active": False}
    )
    assert (status, err["error"]["code"]) == (409, "cannot-demote-self")
    status, err = await api.call(
        "PATCH", f"/api/users/{member.id}", user=admin, json={"display_name": None}
    )
    assert status == 422
    assert (await api.call("GET", "/api/users?limit=0", user=admin))[0] == 422


async def test_self_registration_is_off_by_default(api):
    status, body = await api.call(
        "POST",
        "/api/auth/register",
        json={"email": "me@example.org", "display_name": "Me", "password": "longenough"},
    )
    assert (status, body["error"]["code"]) == (403, "registration-disabled")


async def test_self_registration_when_enabled(settings, database):
    from aiohttp.test_utils import TestClient, TestServer

    from signaling.app import create_app

    app = create_app(settings.model_copy(update={"allow_registration": True}), database)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        body = {"email": "me@example.org", "display_name": "Me", "password": "longenough"}
        response = await client.post("/api/auth/register", json=body)
        assert response.status == 201
        assert (await response.json())["user"]["role"] == "member"
        response = await client.post("/api/auth/register", json=body)
        assert response.status == 409
