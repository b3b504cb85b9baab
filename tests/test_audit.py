"""The audit trail an admin can read: the rows account acts write (with actor, address and
outcome), refused tokens sampled per address, the filtered and paginated admin API, the CSV
export (parsed back, formula injection guarded), who may read it, and retention.

Runs on SQLite and, when TERTULIA_TEST_DATABASE_URL is set, on PostgreSQL."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta

import pytest

from signaling.handlers import audit as audit_routes
from signaling.keys import TOKEN_REFUSALS, TOKENS
from signaling.recordings.jobs import ComposeQueue
from signaling.throttle import FREE_FAILURES, RefusalSampler
from storage import audit
from storage.models import AuditEvent
from storage.types import utcnow
from tests.conftest import TEST_PASSWORD

AUDIT = "/api/admin/audit"
CSV = "/api/admin/audit.csv"


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    """The suite's settings with registration open, the test client's loopback address a
    trusted proxy (so X-Forwarded-For names other client addresses), and no retention task
    racing the rows these tests write."""
    return settings.model_copy(
        update={
            "allow_registration": True,
            "trusted_proxies": "127.0.0.1",
            "audit_retention_days": 0,
            "recording_retention_days": 0,
        }
    )


async def rows(database, action: str | None = None) -> list[AuditEvent]:
    async with database.session() as session:
        return list(await audit.trail(session, action=action))


async def login(api, email: str, password: str, address: str = "10.0.0.1") -> int:
    response = await api.client.post(
        "/api/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )
    return response.status


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- what account acts write ------------------------------------------------------------


async def test_sign_in_success_failure_and_disabled_are_audited(api, make_user, database):
    ana = await make_user(email="ana@example.org")
    assert await login(api, "ana@example.org", TEST_PASSWORD, "10.0.0.1") == 200
    assert await login(api, "ana@example.org", "wrong password", "10.0.0.2") == 401
    assert await login(api, "nobody@example.org", "wrong password", "10.0.0.3") == 401
    async with database.session() as session:
        row = await session.get(type(ana), ana.id)
        row.is_active = False
    assert await login(api, "ana@example.org", TEST_PASSWORD, "10.0.0.4") == 403

    signed_in = await rows(database, "sign-in")
    assert [(r.user_id, r.outcome, r.address) for r in signed_in] == [(ana.id, "ok", "10.0.0.1")]
    failed = await rows(database, "sign-in-failed")
    assert [(r.user_id, r.outcome, r.address) for r in failed] == [
        (ana.id, "refused", "10.0.0.2"),  # the account exists: it is the actor
        (None, "refused", "10.0.0.3"),  # no account: the attempted e-mail says who
        (ana.id, "refused", "10.0.0.4"),
    ]
    assert "wrong password" in failed[0].detail and "ana@example.org" in failed[0].detail
    assert "nobody@example.org" in failed[1].detail and "no such account" in failed[1].detail
    assert "account disabled" in failed[2].detail


async def test_sign_in_blocks_and_refusals_carry_the_address(api, make_user, database):
    await make_user(email="bo@example.org")
    for _ in range(FREE_FAILURES["account"] + 1):  # the last failure starts a block
        assert await login(api, "bo@example.org", "wrong password", "10.9.9.9") == 401
    assert await login(api, "bo@example.org", "wrong password", "10.9.9.9") == 429
    assert await login(api, "bo@example.org", "wrong password", "10.9.9.9") == 429
    blocked = await rows(database, "sign-in-blocked")
    refused = await rows(database, "sign-in-refused")
    assert [(r.outcome, r.address) for r in blocked] == [("refused", "10.9.9.9")]
    assert [(r.outcome, r.address) for r in refused] == [("refused", "10.9.9.9")]  # one a block
    assert len(await rows(database, "sign-in-failed")) == FREE_FAILURES["account"] + 1


async def test_refused_tokens_are_audited_once_a_minute_per_address(api, make_user, database):
    ana = await make_user()
    sampler = api.app[TOKEN_REFUSALS]
    now = [1000.0]
    sampler.clock = lambda: now[0]

    async def me(token: str, address: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": address}
        return (await api.client.get("/api/me", headers=headers)).status

    for _ in range(5):
        assert await me("not-a-token", "10.1.1.1") == 401
    expired = api.app[TOKENS].issue(ana.id, ana.role, now=time.time() - 7200)
    assert await me(expired, "10.1.1.2") == 401
    assert await me(expired, "10.1.1.2") == 401
    refused = await rows(database, "token-refused")
    assert [(r.address, r.outcome, r.user_id) for r in refused] == [
        ("10.1.1.1", "refused", None),
        ("10.1.1.2", "refused", None),
    ]
    assert refused[0].detail.startswith("invalid-token")
    assert refused[1].detail.startswith("token-expired")

    # a minute later the next one is written, saying how many were not
    now[0] += 61
    assert await me("not-a-token", "10.1.1.1") == 401
    refused = await rows(database, "token-refused")
    assert len(refused) == 3 and refused[2].address == "10.1.1.1"
    assert "4 more from this address" in refused[2].detail

    # a disabled account's valid token is refused too, with the account as the actor
    async with database.session() as session:
        (await session.get(type(ana), ana.id)).is_active = False
    assert await me(api.token_for(ana), "10.1.1.3") == 403
    refused = await rows(database, "token-refused")
    assert (refused[-1].user_id, refused[-1].address) == (ana.id, "10.1.1.3")
    assert refused[-1].detail.startswith("account-disabled")


def test_the_refusal_sampler_is_bounded_per_address_and_in_all():
    now = [0.0]
    sampler = RefusalSampler(window=60, max_per_window=3, max_addresses=2, clock=lambda: now[0])
    assert sampler.admit("a") == 0
    assert sampler.admit("a") is None and sampler.admit("a") is None
    assert sampler.admit("b") == 0
    assert sampler.admit("c") == 0  # the map holds two addresses: "a" is forgotten
    assert len(sampler._written) == 2 and "a" not in sampler._written
    assert sampler.admit("d") is None  # three rows this window, from any addresses
    now[0] = 61
    assert sampler.admit("c") == 0
    assert sampler.admit("c") is None
    now[0] = 122
    assert sampler.admit("c") == 1  # one skipped since its last row


async def test_registration_and_admin_account_changes(api, make_user, database):
    admin = await make_user(role="admin")
    member = await make_user()
    headers = {"X-Forwarded-For": "10.2.2.2"}
    response = await api.client.post(
        "/api/auth/register",
        json={"email": "cy@example.org", "display_name": "Cy", "password": "long password"},
        headers=headers,
    )
    assert response.status == 201
    cy = (await response.json())["user"]["id"]

    status, created = await api.call(
        "POST",
        "/api/users",
        user=admin,
        json={"email": "di@example.org", "display_name": "Di", "password": "long password"},
        headers=headers,
    )
    assert status == 201
    di = created["id"]
    change = {"role": "admin", "is_active": False, "display_name": "Di"}
    status, _ = await api.call("PATCH", f"/api/users/{di}", user=admin, json=change)
    assert status == 200
    status, _ = await api.call(
        "PATCH", f"/api/users/{admin.id}", user=admin, json={"role": "member"}
    )
    assert status == 409

    # members are refused every admin-only users route, and each refusal is written
    body = {"email": "x@example.org", "display_name": "X", "password": "long password"}
    assert (await api.call("POST", "/api/users", user=member, json=body))[0] == 403
    assert (await api.call("GET", "/api/users", user=member))[0] == 403
    assert (await api.call("PATCH", f"/api/users/{di}", user=member, json={}))[0] == 403

    trail = [(r.action, r.outcome, r.user_id, r.subject_user_id) for r in await rows(database)]
    assert trail == [
        ("register", "ok", cy, cy),
        ("account-create", "ok", admin.id, di),
        ("account-update", "ok", admin.id, di),
        ("account-update", "refused", admin.id, admin.id),
        ("account-create", "refused", member.id, None),
        ("account-list", "refused", member.id, None),
        ("account-update", "refused", member.id, di),
    ]
    events = await rows(database)
    assert events[0].address == events[1].address == "10.2.2.2"
    assert all(e.address == "127.0.0.1" for e in events[2:])
    assert "di@example.org" in events[1].detail and "role member" in events[1].detail
    # old → new for what changed, nothing for what did not (the name stayed "Di")
    assert "role member → admin" in events[2].detail
    assert "is_active true → false" in events[2].detail
    assert "display_name" not in events[2].detail
    assert "cannot-demote-self" in events[3].detail
    assert all(e.detail.startswith("admin-only") for e in events[4:])


# --- reading the trail ------------------------------------------------------------------


async def seed(database, admin, member, base: datetime) -> dict[str, int]:
    """Six events a day apart from `base`, newest last; the two newest share one instant."""
    spec = [
        (admin.id, "sign-in", "ok", None, None, None, "first"),
        (member.id, "sign-in-failed", "refused", None, None, None, '=HYPERLINK("x")'),
        (admin.id, "view", "ok", "room-a", 7, None, "detail"),
        (member.id, "view", "refused", "room-a", 7, None, "+1+1"),
        (admin.id, "account-update", "ok", None, None, member.id, "-2; @SUM(A1)"),
        (None, "token-refused", "refused", None, None, None, "invalid-token"),
    ]
    ids = {}
    async with database.session() as session:
        for n, (user_id, action, outcome, room, rec, subject, detail) in enumerate(spec):
            at = base + timedelta(days=min(n, 4))  # the last two: the same instant
            event = AuditEvent(
                user_id=user_id,
                action=action,
                outcome=outcome,
                room_id=room,
                recording_id=rec,
                subject_user_id=subject,
                address=f"10.0.0.{n}",
                detail=detail,
                created_at=at,
            )
            session.add(event)
            await session.flush()
            ids[detail] = event.id
    return ids


async def test_filters_pagination_and_dates(api, make_user, database):
    admin = await make_user(role="admin", name="Ada Admin")
    member = await make_user(name="Mo Member")
    base = utcnow().replace(microsecond=0) - timedelta(days=6)
    ids = await seed(database, admin, member, base)

    async def ask(query: str = "") -> dict:
        status, page = await api.call("GET", f"{AUDIT}?{query}", user=admin)
        assert status == 200, page
        return page

    page = await ask()
    assert page["total"] == 6 and (page["limit"], page["offset"]) == (20, 0)
    details = [item["detail"] for item in page["items"]]
    # newest first; the two of one instant by id, the later written first
    assert details == [
        "invalid-token",
        "-2; @SUM(A1)",
        "+1+1",
        "detail",
        '=HYPERLINK("x")',
        "first",
    ]
    update = page["items"][1]
    assert (update["actor_id"], update["actor_name"], update["actor_email"]) == (
        admin.id,
        "Ada Admin",
        admin.email,
    )
    assert (update["subject_user_id"], update["subject_name"]) == (member.id, "Mo Member")
    assert update["address"] == "10.0.0.4" and update["outcome"] == "ok"
    assert page["items"][0]["actor_id"] is None and page["items"][0]["actor_name"] is None

    assert {i["id"] for i in (await ask(f"actor={member.id}"))["items"]} == {
        ids['=HYPERLINK("x")'],
        ids["+1+1"],
    }
    by_email = await ask(f"actor_email={member.email.upper()}")
    assert by_email["total"] == 2
    assert [i["action"] for i in (await ask("action=view"))["items"]] == ["view", "view"]
    assert (await ask("outcome=refused"))["total"] == 3
    assert (await ask("action=view&outcome=refused"))["items"][0]["detail"] == "+1+1"
    assert (await ask("room_id=room-a"))["total"] == 2
    assert (await ask("room_id=room-b"))["total"] == 0
    assert (await ask("recording_id=7&outcome=ok"))["items"][0]["detail"] == "detail"

    # dates: `from` inclusive, `to` exclusive
    window = await ask(f"from={iso(base + timedelta(days=1))}&to={iso(base + timedelta(days=3))}")
    assert [i["detail"] for i in window["items"]] == ["detail", '=HYPERLINK("x")']
    offset = (base + timedelta(days=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"
    assert (await ask(f"from={offset.replace('+', '%2B')}"))["total"] == 5
    assert (await ask(f"from={iso(base + timedelta(days=9))}"))["total"] == 0
    assert (await ask(f"from={iso(base + timedelta(days=3))}&to={iso(base)}"))["total"] == 0

    # pages
    second = await ask("limit=2&offset=2")
    assert second["total"] == 6 and [i["detail"] for i in second["items"]] == ["+1+1", "detail"]
    assert (await ask("limit=2&offset=6"))["items"] == []


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "offset=-1",
        "actor=0",
        "actor=abc",
        "actor=2147483648",
        "actor_email=nobody",
        "action=",
        "action=Sign-In",
        "action=" + "a" * 33,
        "outcome=maybe",
        "room_id=a/b",
        "recording_id=-3",
        "from=yesterday",
        "from=2030-01-02T09:30:00",  # no zone
        "to=1700000000",
        "created_from=2030-01-02T09:30:00Z",  # the field's name is not the parameter's
        "from=2030-01-02T09:30:00Z&from=2030-01-03T09:30:00Z",
        "colour=red",
    ],
)
async def test_bad_queries_are_precise_422s(api, make_user, query):
    admin = await make_user(role="admin")
    for path in (AUDIT, CSV):
        status, body = await api.call("GET", f"{path}?{query}", user=admin)
        assert status == 422, (path, query, body)
        assert body["error"]["code"] == "validation-failed"


async def test_only_admins_read_the_trail_and_refusals_are_audited(api, make_user, database):
    member = await make_user()
    headers = {"X-Forwarded-For": "10.5.5.5"}
    status, body = await api.call("GET", AUDIT, user=member, headers=headers)
    assert (status, body["error"]["code"]) == (403, "admin-only")
    status, body = await api.call("GET", f"{CSV}?action=view", user=member, headers=headers)
    assert (status, body["error"]["code"]) == (403, "admin-only")
    assert (await api.client.get(AUDIT)).status == 401
    assert (await api.client.get(CSV)).status == 401
    trail = [(r.action, r.outcome, r.user_id, r.address) for r in await rows(database)]
    assert trail == [
        ("audit-read", "refused", member.id, "10.5.5.5"),
        ("audit-export", "refused", member.id, "10.5.5.5"),
    ]


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def test_csv_export_every_column_filters_and_no_formulas(api, make_user, database):
    admin = await make_user(role="admin", name="=Admin")
    member = await make_user(name="Mo")
    ids = await seed(database, admin, member, utcnow() - timedelta(days=6))
    auth = {"Authorization": f"Bearer {api.token_for(admin)}"}

    response = await api.client.get(CSV, headers=auth)
    assert response.status == 200
    assert response.content_type == "text/csv" and response.charset == "utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="tertulia-audit.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Audit-Total"] == "6"
    text = await response.text()
    header = next(csv.reader(io.StringIO(text)))
    assert header == list(audit_routes.COLUMNS)
    assert {"id", "created_at", "actor_id", "actor_email", "actor_name", "action", "outcome",
            "room_id", "recording_id", "subject_user_id", "subject_email", "subject_name",
            "address", "detail"} == set(header)  # fmt: skip
    table = parse_csv(text)
    assert [int(r["id"]) for r in table] == sorted(ids.values(), reverse=True)
    by_id = {int(r["id"]): r for r in table}
    update = by_id[ids["-2; @SUM(A1)"]]
    # cells a spreadsheet would run as formulas start with a quote; the rest are as stored
    assert update["detail"] == "'-2; @SUM(A1)"
    assert update["actor_name"] == "'=Admin" and update["subject_name"] == "Mo"
    assert update["actor_id"] == str(admin.id) and update["subject_user_id"] == str(member.id)
    assert by_id[ids['=HYPERLINK("x")']]["detail"] == '\'=HYPERLINK("x")'
    assert by_id[ids["+1+1"]]["detail"] == "'+1+1"
    view = by_id[ids["detail"]]
    assert (view["room_id"], view["recording_id"], view["outcome"]) == ("room-a", "7", "ok")
    assert datetime.fromisoformat(view["created_at"]).tzinfo is not None
    token = by_id[ids["invalid-token"]]
    assert token["actor_id"] == "" and token["actor_email"] == ""
    for row in table:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@")), row

    # the same filters as the page
    response = await api.client.get(f"{CSV}?action=view&outcome=refused", headers=auth)
    assert [r["detail"] for r in parse_csv(await response.text())] == ["'+1+1"]

    # each export is itself audited, after the rows it exports (it is not in its own file)
    exports = await rows(database, "audit-export")
    assert [(e.user_id, e.outcome) for e in exports] == [(admin.id, "ok"), (admin.id, "ok")]
    assert "6 of 6" in exports[0].detail and "'action': 'view'" in exports[1].detail


async def test_csv_export_streams_in_batches_up_to_the_cap(api, make_user, database, monkeypatch):
    admin = await make_user(role="admin")
    moment = utcnow().replace(microsecond=0) - timedelta(hours=1)
    async with database.session() as session:
        for n in range(7):  # one instant for all: the batches step by id
            session.add(AuditEvent(action="view", outcome="ok", detail=str(n), created_at=moment))
    monkeypatch.setattr(audit_routes, "EXPORT_BATCH", 2)
    auth = {"Authorization": f"Bearer {api.token_for(admin)}"}

    response = await api.client.get(f"{CSV}?action=view", headers=auth)
    assert [r["detail"] for r in parse_csv(await response.text())] == [
        str(n) for n in reversed(range(7))
    ]
    monkeypatch.setattr(audit_routes, "MAX_EXPORT_ROWS", 5)
    response = await api.client.get(f"{CSV}?action=view", headers=auth)
    assert response.headers["X-Audit-Total"] == "7"
    assert [r["detail"] for r in parse_csv(await response.text())] == ["6", "5", "4", "3", "2"]


# --- retention ----------------------------------------------------------------------------


async def test_retention_deletes_old_rows_only(database, settings):
    now = utcnow()
    async with database.session() as session:
        for days in (400, 366, 364, 1):
            session.add(
                AuditEvent(action="sign-in", detail=f"{days}", created_at=now - timedelta(days))
            )
    keep = ComposeQueue(settings.model_copy(update={"audit_retention_days": 0}), database)
    assert await keep.apply_audit_retention() == 0  # 0 keeps everything
    jobs = ComposeQueue(settings.model_copy(update={"audit_retention_days": 365}), database)
    assert await jobs.apply_retention() == 0  # both settings; recordings: none deleted (off)
    assert [e.detail for e in await rows(database)] == ["364", "1"]
    assert await jobs.apply_audit_retention() == 0
