"""The recordings library in real Chromium, on recordings made by a real meeting.

Ana hosts a meeting and is in it with Chromium's fake camera and microphone; two recordings
are started and stopped over REST and composed by the server. Then, in the browser: the
list, its filters and pages; the detail page following the second recording live
(recording → composed) with a `<video>` that plays and track links that download; retry of
a failed composition; delete with confirmation; and Bo, not the host, refused clearly.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import Server
from tests.browser.pages import PHONE, join, open_person, sign_in

pytestmark = pytest.mark.browser

# Composition runs in a subprocess, one recording at a time, on a shared 2-core machine.
COMPOSE_TIMEOUT_MS = 90_000

VIDEO_STATE = """(v) => ({currentTime: v.currentTime, videoWidth: v.videoWidth,
  videoHeight: v.videoHeight, paused: v.paused, duration: v.duration,
  error: v.error && v.error.message})"""


def wait_for_state(server: Server, token: str, recording_id: int, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + COMPOSE_TIMEOUT_MS / 1000
    while True:
        status, body = server.request("GET", f"/api/recordings/{recording_id}", token)
        assert status == 200, body
        if body["state"] == state:
            return dict(body)
        assert body["state"] in ("recording", "processing"), body
        assert time.monotonic() < deadline, f"recording {recording_id} is still {body['state']}"
        time.sleep(0.5)


def record(server: Server, token: str, room_id: str, seconds: float) -> int:
    status, body = server.request("POST", f"/api/meetings/{room_id}/recording", token)
    assert status == 201, body
    time.sleep(seconds)
    status, stopped = server.request("DELETE", f"/api/meetings/{room_id}/recording", token)
    assert status == 200, stopped
    return int(body["recording_id"])


def items(page: Page) -> Any:
    return page.get_by_test_id("recordings-list").get_by_test_id("recording-item")


def assert_fits(page: Page, width: int) -> None:
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll} px wide at {width} px"


def test_recordings_library(
    browser: Any, contexts: list[Any], server: Server, artifacts: Path
) -> None:
    token = server.token("ana")
    meeting = server.create_meeting(
        "ana", title="Design review", settings={"enable_recording": True}
    )
    room_id = meeting["room_id"]

    # Ana is in the meeting (the recorder records her camera and microphone).
    in_room = open_person(browser, contexts, server)
    sign_in(in_room, server, "ana", path=f"/m/{room_id}")
    join(in_room)
    first = record(server, token, room_id, 2.0)

    # The second recording, followed live on its detail page from a second tab.
    status, body = server.request("POST", f"/api/meetings/{room_id}/recording", token)
    assert status == 201, body
    second = int(body["recording_id"])
    lib = in_room.context.new_page()
    lib.on("pageerror", lambda error: print(f"[page error] {error}"))
    urls: list[str] = []
    lib.on("request", lambda request: urls.append(request.url))
    lib.goto(f"/recordings/{second}")
    expect(lib.get_by_test_id("recording-live")).to_be_visible()
    expect(lib.get_by_test_id("recording-state")).to_have_text("Recording")
    expect(lib.get_by_test_id("delete-recording")).to_be_disabled()
    time.sleep(2.0)
    status, _ = server.request("DELETE", f"/api/meetings/{room_id}/recording", token)
    assert status == 200
    in_room.close()  # leave the meeting: only the library page is open from here on

    # The page follows the state by itself: composed, then the player appears and plays.
    video = lib.get_by_test_id("recording-video")
    expect(video).to_be_visible(timeout=COMPOSE_TIMEOUT_MS)
    expect(lib.get_by_test_id("recording-state")).to_have_text("Ready")
    expect(lib.get_by_test_id("recording-status")).to_contain_text("The video is ready")
    expect(lib.get_by_test_id("recording-details")).to_contain_text("Ana Alves")
    lib.wait_for_function(
        "() => document.querySelector('[data-testid=recording-video]').readyState >= 1"
    )
    video.evaluate("(v) => { v.muted = true; return v.play(); }")
    lib.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=recording-video]');"
        " return v.currentTime > 0.2 && v.videoWidth > 0; }"
    )
    before = video.evaluate(VIDEO_STATE)
    time.sleep(0.8)
    after = video.evaluate(VIDEO_STATE)
    assert after["currentTime"] > before["currentTime"], (before, after)
    assert (after["videoWidth"], after["videoHeight"]) == (1280, 720), after
    assert after["error"] is None, after
    assert 1.0 < after["duration"] < 5.0, after

    # Track files download with the short-lived access link; the sign-in token is in no URL.
    tracks = lib.get_by_test_id("track-item")
    expect(tracks).to_have_count(2)
    expect(lib.get_by_test_id("track-list")).to_contain_text("Camera")
    expect(lib.get_by_test_id("track-list")).to_contain_text("Microphone")
    link = lib.locator('[data-testid=track-item][data-source="camera"]').get_by_test_id(
        "track-download"
    )
    expect(link).to_have_accessible_name(re.compile(r"Download the camera of Ana Alves"))
    href = link.get_attribute("href")
    assert href and "access=" in href and href.endswith("&download=1"), href
    response = lib.request.get(href)  # no Authorization header: the link alone opens it
    assert response.status == 200, response.text()
    assert "attachment" in response.headers["content-disposition"]
    assert response.body()[:4] == b"\x1a\x45\xdf\xa3"  # Matroska/WebM
    composed = lib.get_by_test_id("composed-download").get_attribute("href")
    assert composed
    part = lib.request.get(composed, headers={"Range": "bytes=0-15"})
    assert part.status == 206 and b"ftyp" in part.body()
    jwt = lib.evaluate("() => localStorage.getItem('tertulia.token')")
    assert jwt and not any(jwt in url for url in urls), [u for u in urls if jwt in u]

    lib.set_viewport_size(PHONE)
    assert_fits(lib, PHONE["width"])
    lib.screenshot(path=str(artifacts / "recording-phone-360x740.png"), full_page=True)
    lib.set_viewport_size({"width": 1280, "height": 800})

    # The list: newest first, with the meeting, duration, participants, size and state.
    lib.get_by_test_id("back-to-recordings").click()
    expect(lib.get_by_test_id("recordings-page")).to_be_visible()
    expect(lib).to_have_url(re.compile(r"/recordings$"))
    wait_for_state(server, token, first, "ready")
    expect(items(lib)).to_have_count(2)
    expect(items(lib).first).to_have_attribute("data-recording-id", str(second))
    row = items(lib).first
    expect(row.get_by_test_id("recording-link")).to_have_text("Design review")
    expect(row.get_by_test_id("recording-state")).to_have_text("Ready")
    expect(row).to_contain_text("Participants: Ana Alves")
    expect(row).to_contain_text(re.compile(r"duration 0:0[1-4] · [\d.]+\s(kB|MB)"))
    expect(lib.get_by_test_id("recordings-summary")).to_have_text("2 recordings")
    lib.screenshot(path=str(artifacts / "recordings-laptop-1280x800.png"), full_page=True)

    # Filters (by keyboard: Enter applies), kept in the URL.
    lib.get_by_label("Search").fill("no such meeting")
    lib.get_by_label("Search").press("Enter")
    expect(lib.get_by_test_id("recordings-empty")).to_have_text(
        "No recordings match these filters."
    )
    expect(lib).to_have_url(re.compile(r"\?q=no\+such\+meeting$"))
    lib.get_by_label("Search").fill("ana alv")  # a participant's name
    lib.get_by_label("Search").press("Enter")
    expect(items(lib)).to_have_count(2)
    today = lib.evaluate("() => new Date().toLocaleDateString('sv')")  # YYYY-MM-DD, local
    tomorrow = lib.evaluate(
        "() => { const d = new Date(); d.setDate(d.getDate() + 1);"
        " return d.toLocaleDateString('sv'); }"
    )
    lib.get_by_test_id("filter-clear").click()
    lib.get_by_label("From").fill(tomorrow)
    lib.get_by_test_id("filter-apply").click()
    expect(lib.get_by_test_id("recordings-empty")).to_be_visible()
    lib.get_by_label("From").fill(today)
    lib.get_by_label("To").fill(today)
    lib.get_by_test_id("filter-apply").click()
    expect(items(lib)).to_have_count(2)
    lib.go_back()  # the previous filter (from tomorrow) comes back with the history
    expect(lib.get_by_test_id("recordings-empty")).to_be_visible()
    expect(lib.get_by_label("From")).to_have_value(tomorrow)

    # Pages (one per page here): Next and Previous.
    lib.goto("/recordings?limit=1")
    expect(lib.get_by_test_id("page-info")).to_have_text("1\N{EN DASH}1 of 2")
    expect(lib.get_by_test_id("page-prev")).to_be_disabled()
    expect(items(lib)).to_have_attribute("data-recording-id", str(second))
    lib.get_by_test_id("page-next").click()
    expect(lib.get_by_test_id("page-info")).to_have_text("2\N{EN DASH}2 of 2")
    expect(items(lib)).to_have_attribute("data-recording-id", str(first))
    expect(lib.get_by_test_id("page-next")).to_be_disabled()
    lib.get_by_test_id("page-prev").click()
    expect(lib.get_by_test_id("page-info")).to_have_text("1\N{EN DASH}1 of 2")

    lib.set_viewport_size(PHONE)
    lib.goto("/recordings")
    expect(items(lib)).to_have_count(2)
    assert_fits(lib, PHONE["width"])
    lib.screenshot(path=str(artifacts / "recordings-phone-360x740.png"), full_page=True)
    lib.set_viewport_size({"width": 1280, "height": 800})

    # A failed composition (the first response is made to say so) offers a retry; the retry
    # is the real request, and the page shows the progress until the video is ready again.
    def failed(route: Route) -> None:
        response = route.fetch()
        detail = response.json()
        detail.update(state="failed", failure_reason="compose exited with status 1")
        route.fulfill(response=response, body=json.dumps(detail))

    lib.route(f"**/api/recordings/{first}", failed, times=1)
    lib.locator(f'[data-recording-id="{first}"]').get_by_test_id("recording-link").click()
    expect(lib.get_by_test_id("recording-failure")).to_have_text(
        "Composing the video failed: compose exited with status 1"
    )
    lib.get_by_test_id("recording-retry").click()
    expect(lib.get_by_test_id("recording-progress")).to_be_visible()
    expect(lib.get_by_test_id("recording-percent")).to_have_text(re.compile(r"^\d+%$"))
    expect(lib.get_by_test_id("recording-video")).to_be_visible(timeout=COMPOSE_TIMEOUT_MS)
    expect(lib.get_by_test_id("recording-state")).to_have_text("Ready")

    # Delete: Escape cancels the confirmation; confirming deletes and returns to the list.
    lib.get_by_test_id("delete-recording").click()
    dialog = lib.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete the recording of “Design review”")
    lib.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(lib.get_by_test_id("delete-recording")).to_be_focused()
    lib.get_by_test_id("delete-recording").click()
    lib.get_by_test_id("confirm-yes").click()
    expect(lib).to_have_url(re.compile(r"/recordings$"))
    expect(lib.get_by_test_id("recordings-status")).to_contain_text(
        "Deleted the recording of “Design review”"
    )
    expect(items(lib)).to_have_count(1)
    expect(items(lib)).to_have_attribute("data-recording-id", str(second))
    assert server.request("GET", f"/api/recordings/{first}", token)[0] == 404

    # Ana hosts the meeting: her dashboard links to the library.
    lib.goto("/")
    expect(lib.get_by_test_id("recordings-link")).to_be_visible()
    lib.close()

    # Bo is not the host: signed out, the link leads through sign-in to a clear refusal.
    bo = open_person(browser, contexts, server, viewport=PHONE)
    sign_in(bo, server, "bo", path=f"/recordings/{second}")
    expect(bo.get_by_test_id("recording-forbidden")).to_be_visible()
    expect(bo.get_by_role("heading", level=1)).to_have_text("You cannot see this recording")
    expect(bo.get_by_test_id("recording-message")).to_contain_text(
        "Only administrators and the host of the meeting"
    )
    expect(bo.get_by_test_id("recording-video")).to_have_count(0)
    assert_fits(bo, PHONE["width"])
    bo.get_by_test_id("back-to-recordings").click()
    expect(bo.get_by_test_id("recordings-empty")).to_contain_text("meetings you host")
    bo.goto("/")
    expect(bo.get_by_test_id("dashboard")).to_be_visible()
    expect(bo.get_by_test_id("past-list")).to_contain_text("No past meetings")
    bo.wait_for_load_state("networkidle")  # the dashboard's check of the library is done
    expect(bo.get_by_test_id("recordings-link")).to_be_hidden()
