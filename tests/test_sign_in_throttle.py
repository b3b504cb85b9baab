"""Sign-in throttling: growing back-off per account and per address, device cookies that keep
the real person in, audited refusals, and no password hashing for a refused attempt."""

from __future__ import annotations

import pytest

from signaling import throttle as throttle_module
from signaling.handlers import accounts
from signaling.throttle import FREE_FAILURES, MAX_BLOCK_SECONDS, Attempt, SignInThrottle
from storage import audit
from tests.conftest import TEST_PASSWORD
from tests.helpers import FakeClock


def test_back_off_grows_after_the_free_failures_and_is_capped():
    clock = FakeClock()
    throttle = SignInThrottle(clock)
    guess = Attempt("ana@example.org", "10.0.0.1")
    for _ in range(FREE_FAILURES["account"]):
        assert throttle.check(guess) == (0, None)
        assert throttle.failed(guess) == []
    waits = []
    for _ in range(14):
        blocks = throttle.failed(guess)
        assert [b.kind for b in blocks] == ["account"]
        wait, refusal = throttle.check(guess)
        assert refusal is not None and refusal.kind == "account"
        assert throttle.check(guess)[1] is None  # only the first refusal is reported
        waits.append(wait)
        clock.now += wait  # the block runs out; the guesser tries again
    assert waits[:6] == [1, 2, 4, 8, 16, 32]
    assert max(waits) == MAX_BLOCK_SECONDS and waits == sorted(waits)


def test_a_quiet_hour_forgets_and_a_success_resets_the_account_not_the_address():
    clock = FakeClock()
    throttle = SignInThrottle(clock)
    guess = Attempt("ana@example.org", "10.0.0.1")
    for _ in range(FREE_FAILURES["account"] + 3):
        throttle.failed(guess)
        clock.now += 0.1
    assert throttle.check(guess)[0] > 0
    clock.now += throttle_module.FORGET_AFTER_SECONDS + 1
    assert throttle.check(guess) == (0, None)
    assert throttle.failed(guess) == []  # counting starts again from zero

    # one address guessing many accounts is blocked by its own counter
    throttle = SignInThrottle(clock)
    for n in range(FREE_FAILURES["address"]):
        assert throttle.failed(Attempt(f"user{n}@example.org", "10.0.0.9")) == []
    blocks = throttle.failed(Attempt("last@example.org", "10.0.0.9"))
    assert [b.kind for b in blocks] == ["address"]
    mine = Attempt("mine@example.org", "10.0.0.9")
    throttle.succeeded(mine)  # signing in to an account of its own does not reset it
    assert throttle.check(mine)[0] > 0


def test_a_known_device_is_not_locked_out_by_an_attack_on_the_account():
    clock = FakeClock()
    throttle = SignInThrottle(clock)
    for n in range(50):  # a botnet: many addresses, one account
        throttle.failed(Attempt("ana@example.org", f"203.0.113.{n}"))
        clock.now += 0.1
    assert throttle.check(Attempt("ana@example.org", "192.0.2.7"))[0] > 0
    ana = Attempt("ana@example.org", "192.0.2.7", device="her-laptop")
    assert throttle.check(ana) == (0, None)
    # the device is judged by its own failures
    for _ in range(FREE_FAILURES["device"]):
        throttle.failed(ana)
    assert throttle.check(ana) == (0, None)
    throttle.failed(ana)
    assert throttle.check(ana)[0] == 1


def test_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(throttle_module, "MAX_COUNTERS", 100)
    throttle = SignInThrottle(FakeClock())
    for n in range(1000):
        throttle.failed(Attempt(f"spray{n}@example.org", f"10.1.{n // 250}.{n % 250}"))
    assert len(throttle._counters) <= 100


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_login_is_throttled_audited_and_the_real_person_gets_in(
    api, make_user, database, monkeypatch
):
    ana = await make_user(email="ana@example.org")
    hashed = []
    original = accounts.verify_password
    monkeypatch.setattr(
        accounts, "verify_password", lambda h, p: hashed.append(p) or original(h, p)
    )

    async def login(password: str, device: str | None = None) -> tuple[int, dict, object]:
        # the public URL is https, so the (Secure) cookie is handed over by hand here
        api.client.session.cookie_jar.clear()
        headers = {"Cookie": f"tertulia_device={device}"} if device else {}
        response = await api.client.post(
            "/api/auth/login",
            json={"email": "ANA@example.org", "password": password},
            headers=headers,
        )
        return response.status, await response.json(), response

    # Ana signs in once on her laptop: it keeps a device cookie
    status, _, response = await login(TEST_PASSWORD)
    assert status == 200 and "tertulia_device" in response.cookies
    device_cookie = response.cookies["tertulia_device"]
    assert device_cookie["httponly"] and device_cookie["secure"]
    assert device_cookie["path"] == "/api/auth" and device_cookie["samesite"] == "Strict"
    laptop = device_cookie.value

    # a guesser without the cookie: five free failures, then a block
    for _ in range(FREE_FAILURES["account"]):
        assert (await login("wrong password"))[0] == 401
    assert (await login("wrong password"))[0] == 401  # the sixth starts a 1 s block
    hashed.clear()
    status, body, response = await login("wrong password")
    assert status == 429 and body["error"]["code"] == "too-many-attempts"
    assert int(response.headers["Retry-After"]) >= 1
    status, _, _ = await login(TEST_PASSWORD)  # even the right password waits, from there
    assert status == 429
    assert hashed == [], "a refused attempt must not cost a password hash"

    # a forged or foreign device cookie does not help the guesser
    assert (await login("wrong password", device="forged.cookie.value"))[0] == 429
    # Ana's laptop is not locked out
    status, body, _ = await login(TEST_PASSWORD, device=laptop)
    assert status == 200 and body["user"]["id"] == ana.id

    async with database.session() as session:
        blocked = await audit.trail(session, action="sign-in-blocked")
        refused = await audit.trail(session, action="sign-in-refused")
    assert len(blocked) == 1 and blocked[0].user_id == ana.id
    assert "ana@example.org" in blocked[0].detail and "127.0.0.1" in blocked[0].detail
    assert len(refused) == 1 and refused[0].user_id == ana.id  # one row per block


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_unknown_accounts_are_throttled_alike(api):
    """The throttle must not tell which e-mail addresses have accounts."""
    statuses = []
    for _ in range(FREE_FAILURES["account"] + 2):
        response = await api.client.post(
            "/api/auth/login", json={"email": "nobody@example.org", "password": "guess-guess"}
        )
        statuses.append(response.status)
    assert statuses == [401] * (FREE_FAILURES["account"] + 1) + [429]
