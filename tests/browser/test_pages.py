"""One page at a time: sign-in and sign-out, an expired session, the dashboard's meeting
management, and every way a join link can refuse (full, ended, not found, signed out,
camera and microphone refused)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.browser.pages import PHONE, join, open_person, sign_in

pytestmark = pytest.mark.browser


def test_sign_in_out_and_expired_session(browser: Any, contexts: list[Any], server: Server) -> None:
    page = open_person(browser, contexts, server)
    page.goto("/")
    page.get_by_label("E-mail").fill(server.emails["ana"])
    page.get_by_label("Password").fill("wrong password")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("signin-error")).to_contain_text("not right")

    sign_in(page, server, "ana")
    expect(page.get_by_test_id("signed-in-as")).to_have_text("Ana Alves")
    page.get_by_test_id("signout").click()
    expect(page.get_by_test_id("signin-page")).to_be_visible()
    expect(page.get_by_test_id("signin-message")).to_contain_text("signed out")

    # A token the server no longer accepts (401) returns to sign-in with a message.
    page.evaluate("() => localStorage.setItem('tertulia.token', 'expired.or.forged')")
    page.goto("/")
    expect(page.get_by_test_id("signin-page")).to_be_visible()
    expect(page.get_by_test_id("signin-message")).to_contain_text("session has expired")


def test_dashboard_create_edit_copy_delete(
    browser: Any, contexts: list[Any], server: Server, artifacts: Path
) -> None:
    context_page = open_person(browser, contexts, server, viewport=PHONE)
    context_page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=server.base_url
    )
    page = context_page
    sign_in(page, server, "bo")
    expect(page.get_by_test_id("dashboard")).to_be_visible()
    expect(page.get_by_test_id("meeting-form")).to_contain_text("Allow recording")
    # The waiting room and moderation settings: off, on (people may unmute), off by default.
    expect(page.get_by_label("Require approval to join (waiting room)")).not_to_be_checked()
    expect(page.get_by_label("Let people unmute themselves")).to_be_checked()
    expect(page.get_by_label("End the meeting at its scheduled end")).not_to_be_checked()
    page.get_by_label("Title").fill("Planning")
    page.get_by_label("Start time").fill("2032-01-02T09:00")
    page.get_by_label("Allow chat").uncheck()
    page.get_by_label("Require approval to join (waiting room)").check()
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/meetings")
    ) as sent:
        page.get_by_test_id("meeting-submit").click()
    assert sent.value.post_data_json["settings"]["require_approval"] is True
    item = (
        page.get_by_test_id("upcoming-list")
        .get_by_test_id("meeting-item")
        .filter(has_text="Planning")
    )
    expect(item).to_be_visible()
    room_id = item.get_attribute("data-room-id")
    page.screenshot(path=str(artifacts / "dashboard-phone-360x740.png"), full_page=True)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]

    status, meeting = server.request("GET", f"/api/meetings/{room_id}", server.token("bo"))
    assert status == 200
    assert meeting["settings"]["require_approval"] is True
    assert meeting["settings"]["allow_self_unmute"] is True
    assert meeting["settings"]["end_on_schedule"] is False
    assert meeting["settings"]["enable_chat"] is False
    assert meeting["scheduled_start"] is not None

    item.get_by_test_id("copy-link").click()
    expect(page.get_by_test_id("dashboard-status")).to_contain_text(f"/m/{room_id}")
    assert page.evaluate("() => navigator.clipboard.readText()").endswith(f"/m/{room_id}")

    item.get_by_test_id("edit-meeting").click()
    expect(page.get_by_label("Title")).to_have_value("Planning")
    expect(page.get_by_label("Require approval to join (waiting room)")).to_be_checked()
    page.get_by_label("Title").fill("Planning (moved)")
    page.get_by_label("Duration (minutes)").fill("90")
    page.get_by_label("Let people unmute themselves").uncheck()
    page.get_by_label("End the meeting at its scheduled end").check()
    page.get_by_test_id("meeting-submit").click()
    edited = page.get_by_test_id("meeting-item").filter(has_text="Planning (moved)")
    expect(edited).to_contain_text("90 min")
    settings = server.request("GET", f"/api/meetings/{room_id}", server.token("bo"))[1]["settings"]
    assert settings["allow_self_unmute"] is False and settings["end_on_schedule"] is True

    edited.get_by_test_id("delete-meeting").click()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("meeting-item").filter(has_text="Planning")).to_have_count(0)
    assert server.request("GET", f"/api/meetings/{room_id}", server.token("bo"))[0] == 404

    # Someone else's meeting can be joined from the dashboard but not edited or deleted.
    other = server.create_meeting("ana", title="Ana's meeting")
    server.request("POST", f"/api/meetings/{other['room_id']}/join", server.token("bo"))
    page.reload()
    theirs = page.get_by_test_id("meeting-item").filter(has_text="Ana's meeting")
    expect(theirs.get_by_test_id("join-link")).to_be_visible()
    expect(theirs.get_by_test_id("edit-meeting")).to_have_count(0)
    expect(theirs.get_by_test_id("delete-meeting")).to_have_count(0)


def test_dashboard_form_explains_mistakes_in_words(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    page = open_person(browser, contexts, server)
    sign_in(page, server, "cy")
    expect(page.get_by_test_id("dashboard")).to_be_visible()
    sent: list[Any] = []
    page.on(
        "request",
        lambda r: (
            sent.append(r) if r.method == "POST" and r.url.endswith("/api/meetings") else None
        ),
    )
    error = page.get_by_test_id("meeting-form-error")
    title = page.get_by_label("Title")
    start = page.get_by_label("Start time")
    submit = page.get_by_test_id("meeting-submit")

    # A blank title is refused at once, without asking the server.
    title.fill("   ")
    submit.click()
    expect(error).to_have_text("Enter a title")
    expect(title).to_have_attribute("aria-invalid", "true")
    expect(title).to_be_focused()
    assert sent == []

    # A start time in the past: the picker starts at now, and the form says so before sending.
    assert page.evaluate(
        """(min) => { const age = Date.now() - new Date(min).getTime();
                      return age >= 0 && age < 10 * 60 * 1000; }""",
        start.get_attribute("min"),
    ), start.get_attribute("min")
    title.fill("  Retrospective  ")
    start.fill("2020-03-04T10:00")
    submit.click()
    expect(error).to_have_text("Start time: choose a time in the future")
    expect(start).to_have_attribute("aria-invalid", "true")
    expect(title).not_to_have_attribute("aria-invalid", "true")
    assert sent == []

    # The server's own refusals (422) in words: the request is spoilt on its way to the real
    # server, which names the fields (one of a nested model: settings.max_participants).
    def spoil(route: Any) -> None:
        body = route.request.post_data_json
        body["title"] = ""
        body["duration_minutes"] = 0
        body["settings"]["max_participants"] = 1000
        route.continue_(post_data=json.dumps(body))

    page.route("**/api/meetings", spoil)
    start.fill("2031-03-04T10:00")
    submit.click()
    expect(error).to_contain_text("Title: enter a title (up to 200 characters)")
    expect(error).to_contain_text("Duration (minutes): enter a whole number from 1 to 1440")
    expect(error).to_contain_text("Max participants: enter a whole number from 2 to 500")
    for raw in ("should", "settings.", "max_participants", "duration_minutes"):
        expect(error).not_to_contain_text(raw)
    page.unroute("**/api/meetings")

    # The server's refusal of a start time in the past (its documented 422 body).
    refusal = {
        "error": {
            "code": "validation-failed",
            "message": "the request is not valid",
            "details": [{"field": "scheduled_start", "message": "must not be in the past"}],
        }
    }
    page.route("**/api/meetings", lambda route: route.fulfill(status=422, json=refusal))
    submit.click()
    expect(error).to_have_text("Start time: choose a time in the future")
    expect(start).to_have_attribute("aria-invalid", "true")
    page.unroute("**/api/meetings")

    # Put right: the trimmed title is sent, the meeting is listed as upcoming.
    sent.clear()
    submit.click()
    item = page.get_by_test_id("upcoming-list").get_by_test_id("meeting-item")
    expect(item.filter(has_text="Retrospective")).to_be_visible()
    expect(error).to_have_text("")
    assert sent[-1].post_data_json["title"] == "Retrospective"
    expect(title).to_have_value("")


REPORT_CSP_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) =>
  console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI} ${e.lineNumber}`));
"""
# Inline resources a stricter policy (plain default-src 'self') would refuse. (Inline style
# attributes are reported as violations when set; styles set through CSSOM are allowed.)
INLINE_RESOURCES = """() => [...document.querySelectorAll(
  '[src^="data:"], [href^="data:"], [href^="javascript:"], script:not([src])'
)].map((el) => el.outerHTML.slice(0, 120))"""


def test_pages_work_under_the_content_security_policy(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    meeting = server.create_meeting("ana", title="Strict policy")
    page = open_person(browser, contexts, server, init_script=REPORT_CSP_VIOLATIONS)
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if "Content Security Policy" in m.text or "CSP violation" in m.text
            else None
        ),
    )
    # The server's policy (docs/api.md): no inline scripts or styles, no eval.
    response = page.goto("/")
    assert response is not None
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "unsafe" not in policy, policy

    inline: list[str] = []
    # Sign-in, the pre-join page, the room (camera, tiles, panels), the dashboard, recordings.
    sign_in(page, server, "ana", path=f"/m/{meeting['room_id']}")
    expect(page.get_by_test_id("prejoin")).to_be_visible()
    inline += page.evaluate(INLINE_RESOURCES)
    join(page)
    expect(page.locator('[data-testid="tile"][data-self="true"] video')).to_be_visible()
    page.get_by_test_id("toggle-chat").click()
    page.get_by_label("Message").fill("under a strict policy")
    page.get_by_label("Message").press("Enter")
    expect(page.get_by_test_id("chat-list")).to_contain_text("under a strict policy")
    inline += page.evaluate(INLINE_RESOURCES)
    page.get_by_test_id("leave").click()
    expect(page.get_by_test_id("left")).to_be_visible()
    page.get_by_test_id("back-to-dashboard").click()
    expect(page.get_by_test_id("dashboard")).to_be_visible()
    page.get_by_label("Title").fill("   ")
    page.get_by_test_id("meeting-submit").click()
    expect(page.get_by_test_id("meeting-form-error")).to_have_text("Enter a title")
    inline += page.evaluate(INLINE_RESOURCES)
    page.goto("/recordings")
    expect(page.get_by_test_id("recordings-page")).to_be_visible()
    inline += page.evaluate(INLINE_RESOURCES)
    assert problems == []
    assert inline == []


def test_join_link_signed_out_comes_back_after_sign_in(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    meeting = server.create_meeting("ana", title="Come back here")
    page = open_person(browser, contexts, server)
    page.goto(f"/m/{meeting['room_id']}")
    expect(page.get_by_test_id("signin-page")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/\?next=%2Fm%2F"))
    expect(page.get_by_test_id("signin-message")).to_contain_text("Sign in to join")
    page.get_by_label("E-mail").fill(server.emails["cy"])
    page.get_by_label("Password").fill("browser-test-password")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("prejoin")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/m/{meeting['room_id']}$"))
    expect(page.get_by_role("heading", name="Come back here")).to_be_visible()


def test_meeting_full(browser: Any, contexts: list[Any], server: Server) -> None:
    meeting = server.create_meeting("ana", title="Tiny", settings={"max_participants": 2})
    room_id = meeting["room_id"]
    for who in ("ana", "bo"):  # two open visits fill it
        assert server.request("POST", f"/api/meetings/{room_id}/join", server.token(who))[0] == 200
    page = open_person(browser, contexts, server)
    sign_in(page, server, "cy", path=f"/m/{room_id}")
    expect(page.get_by_test_id("prejoin")).to_be_visible()
    expect(page.get_by_test_id("preview-video")).to_be_visible()
    page.get_by_test_id("join-button").click()
    expect(page.get_by_test_id("join-error")).to_contain_text("This meeting is full")
    expect(page.get_by_test_id("join-error")).to_contain_text("2 people")
    # Still on the pre-join page with a live preview, and allowed to try again.
    expect(page.get_by_test_id("join-button")).to_have_text("Try again")
    assert (
        page.evaluate(
            "() => document.querySelector('[data-testid=preview-video]').srcObject"
            ".getVideoTracks()[0].readyState"
        )
        == "live"
    )


def test_meeting_ended_and_not_found(browser: Any, contexts: list[Any], server: Server) -> None:
    meeting = server.create_meeting("ana", title="Already over")
    token = server.token("ana")
    assert server.request("POST", f"/api/meetings/{meeting['room_id']}/end", token)[0] == 200
    page = open_person(browser, contexts, server)
    sign_in(page, server, "bo", path=f"/m/{meeting['room_id']}")
    expect(page.get_by_test_id("meeting-ended")).to_be_visible()
    expect(page.get_by_test_id("outcome-message")).to_contain_text("Already over")

    page.goto("/m/NoSuchRoom123")
    expect(page.get_by_test_id("meeting-not-found")).to_be_visible()
    page.get_by_test_id("back-to-dashboard").click()
    expect(page.get_by_test_id("dashboard")).to_be_visible()


REFUSE_DEVICES = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
"""


def test_camera_and_microphone_refused_can_still_join(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    meeting = server.create_meeting("ana", title="No devices")
    page = open_person(browser, contexts, server, init_script=REFUSE_DEVICES)
    sign_in(page, server, "cy", path=f"/m/{meeting['room_id']}")
    expect(page.get_by_test_id("camera-message")).to_contain_text("camera was refused")
    expect(page.get_by_test_id("mic-message")).to_contain_text("microphone was refused")
    expect(page.get_by_test_id("preview-off")).to_have_text("No camera")
    page.get_by_test_id("join-button").click()
    expect(page.get_by_test_id("room")).to_be_visible()
    mine = page.locator('[data-testid="tile"][data-self="true"]')
    expect(mine).to_have_attribute("data-mic", "off")
    expect(mine.locator(".avatar")).to_have_text("CC")
    expect(page.get_by_role("button", name="Unmute microphone")).to_be_visible()
    # Joined without media: nothing published, the socket is up.
    assert page.evaluate("() => window.__tertulia.session.state") == "connected"


def test_start_muted_with_camera_off(
    browser: Any, contexts: list[Any], server: Server, artifacts: Path
) -> None:
    meeting = server.create_meeting("ana", title="Quiet start")
    page = open_person(browser, contexts, server)
    sign_in(page, server, "bo", path=f"/m/{meeting['room_id']}")
    expect(page.get_by_test_id("mic-level")).to_be_visible()
    # The level meter moves with the (beeping) fake microphone.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=mic-level]').value > 0.01", timeout=15_000
    )
    expect(page.get_by_test_id("camera-select")).to_have_count(1)
    page.screenshot(path=str(artifacts / "prejoin-laptop-1280x800.png"))
    page.get_by_label("Start with my microphone muted").check()
    page.get_by_label("Start with my camera off").check()
    expect(page.get_by_test_id("preview-off")).to_be_visible()
    join(page)
    expect(page.get_by_role("button", name="Unmute microphone")).to_be_visible()
    expect(page.get_by_role("button", name="Turn camera on")).to_be_visible()
    path = f"/api/meetings/{meeting['room_id']}"
    status, listed = server.request("GET", path, server.token("bo"))
    assert status == 200 and listed["status"] == "active"
    page.get_by_role("button", name="Turn camera on").click()
    expect(page.locator('[data-testid="tile"][data-self="true"] video')).to_be_visible()


def test_socket_refuses_expired_token_back_to_sign_in(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    meeting = server.create_meeting("ana", title="Token check")
    page = open_person(browser, contexts, server)
    sign_in(page, server, "bo", path=f"/m/{meeting['room_id']}")
    expect(page.get_by_test_id("join-button")).to_be_enabled()
    # The token expires while the person looks at the pre-join page: the socket closes 4401.
    page.evaluate("() => localStorage.setItem('tertulia.token', 'no.longer.valid')")
    page.get_by_test_id("join-button").click()
    expect(page.get_by_test_id("signin-page")).to_be_visible()
    expect(page.get_by_test_id("signin-message")).to_contain_text("session has expired")
    page.get_by_label("E-mail").fill(server.emails["bo"])
    page.get_by_label("Password").fill("browser-test-password")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("prejoin")).to_be_visible()
