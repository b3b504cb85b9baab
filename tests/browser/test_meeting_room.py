"""Two people in real Chromium: dashboard → pre-join → room, media both ways, chat, mute,
screen share, screenshots, leave, end for everyone."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import TIMEOUT_MS, Server
from tests.browser.pages import (
    PHONE,
    assert_receiving_video,
    assert_tile_playing,
    join,
    open_person,
    participant_id,
    remote_tile,
    sign_in,
)

pytestmark = pytest.mark.browser


def create_meeting_on_dashboard(page: Page, title: str) -> str:
    expect(page.get_by_test_id("dashboard")).to_be_visible()
    page.get_by_label("Title").fill(title)
    page.get_by_label("Description").fill("Made by the browser test")
    page.get_by_label("Start time").fill("2031-05-06T10:30")
    page.get_by_label("Duration (minutes)").fill("45")
    page.get_by_label("Max participants").fill("5")
    page.get_by_label("Allow chat").check()
    page.get_by_test_id("meeting-submit").click()
    item = (
        page.get_by_test_id("upcoming-list").get_by_test_id("meeting-item").filter(has_text=title)
    )
    expect(item).to_be_visible()
    room_id = item.get_attribute("data-room-id")
    assert room_id
    expect(item.get_by_test_id("join-url")).to_have_text(re.compile(rf"/m/{room_id}$"))
    expect(item).to_contain_text("45 min")
    return room_id


def test_two_people_meet(
    browser: Any, contexts: list[Any], server: Server, artifacts: Path
) -> None:
    ana = open_person(browser, contexts, server)
    bo = open_person(browser, contexts, server, viewport=PHONE)

    sign_in(ana, server, "ana")
    room_id = create_meeting_on_dashboard(ana, "Browser sync")
    # Bo follows the join link while signed out: sign-in first, then back to the meeting.
    sign_in(bo, server, "bo", path=f"/m/{room_id}")
    expect(bo.get_by_test_id("prejoin")).to_be_visible()
    assert bo.url.endswith(f"/m/{room_id}")

    ana.get_by_test_id("upcoming-list").get_by_test_id("join-link").first.click()
    join(ana)
    join(bo)

    ana_id, bo_id = participant_id(ana), participant_id(bo)
    # A laptop starts in the gallery view, a phone in the speaker view: Ana large on Bo's
    # page, with Bo's own camera in the strip under her.
    expect(ana.get_by_test_id("room")).to_have_attribute("data-view", "gallery")
    expect(ana.get_by_test_id("stage")).to_be_hidden()
    expect(bo.get_by_test_id("room")).to_have_attribute("data-view", "speaker")
    expect(bo.get_by_test_id("stage").get_by_test_id("tile")).to_have_attribute(
        "data-participant-id", ana_id
    )
    expect(bo.get_by_test_id("video-grid").get_by_test_id("tile")).to_have_attribute(
        "data-self", "true"
    )
    # Each page shows the other's camera, decoded and playing.
    for page, other, name in ((ana, bo_id, "Bo Berg"), (bo, ana_id, "Ana Alves")):
        tile = remote_tile(page, name)
        expect(tile).to_be_visible()
        stats = assert_receiving_video(page, other)
        assert stats["packetsLost"] == 0 or stats["fps"] > 3
        assert_tile_playing(tile)
        expect(page.get_by_test_id("participant-count")).to_have_text("2 in the meeting")

    # Chat round trip, with the unread count on the closed panel.
    ana.get_by_test_id("toggle-chat").click()
    ana.get_by_label("Message").fill("Hello from Ana")
    ana.get_by_label("Message").press("Enter")
    expect(ana.get_by_test_id("chat-list")).to_contain_text("Hello from Ana")
    expect(bo.get_by_test_id("chat-unread")).to_have_text("1")
    bo.get_by_test_id("toggle-chat").click()
    expect(bo.get_by_test_id("chat-list")).to_contain_text("Hello from Ana")
    expect(bo.get_by_test_id("chat-unread")).to_be_hidden()
    bo.screenshot(path=str(artifacts / "room-phone-chat.png"))
    bo.get_by_label("Message").fill("Hi Ana, Bo here")
    bo.get_by_test_id("chat-send").click()
    expect(ana.get_by_test_id("chat-list")).to_contain_text("Hi Ana, Bo here")
    bo.get_by_role("button", name="Close chat").click()
    ana.get_by_role("button", name="Close chat").click()

    # Muting the microphone shows on the other page (tile and participants panel).
    expect(remote_tile(bo, "Ana Alves")).to_have_attribute("data-mic", "on")
    ana.get_by_role("button", name="Mute microphone").click()
    bo_sees_ana = remote_tile(bo, "Ana Alves")
    expect(bo_sees_ana).to_have_attribute("data-mic", "off")
    expect(bo_sees_ana.get_by_test_id("tile-muted")).to_be_visible()
    bo.get_by_test_id("toggle-participants").click()
    ana_row = bo.get_by_test_id("participant-item").filter(has_text="Ana Alves")
    expect(ana_row.get_by_test_id("state-mic")).to_have_attribute("data-on", "false")
    expect(ana_row.get_by_test_id("state-camera")).to_have_attribute("data-on", "true")
    bo.get_by_role("button", name="Close the participants panel").click()
    ana.get_by_role("button", name="Unmute microphone").click()
    expect(bo_sees_ana).to_have_attribute("data-mic", "on")

    # Someone speaking is highlighted: Ana's tile on Bo's page (the fake microphones beep;
    # Bo mutes his, so Ana is the one speaking). The server's dominant speaker decides
    # (`active-speaker`); a server that sends none leaves it to the received audio level.
    bo.get_by_role("button", name="Mute microphone").click()
    expect(remote_tile(bo, "Ana Alves")).to_have_attribute(
        "data-speaking", "true", timeout=TIMEOUT_MS
    )
    if bo.evaluate("() => window.__tertulia.session.speakers !== null"):
        speaker = "() => window.__tertulia.session.speakers.participant_id"
        assert bo.evaluate(speaker) == ana_id
        expect(remote_tile(ana, "Bo Berg")).to_have_attribute("data-speaking", "false")
    bo.get_by_role("button", name="Unmute microphone").click()

    # Screenshots: Bo's page is phone width, Ana's a laptop.
    ana.screenshot(path=str(artifacts / "room-laptop-1280x800.png"))
    bo.screenshot(path=str(artifacts / "room-phone-360x740.png"))
    for page, width in ((bo, PHONE["width"]), (ana, 1280)):  # nothing sticks out sideways
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width

    # Screen share: the large tile on the other page, gone when stopped.
    ana.get_by_role("button", name="Share your screen").click()
    stage_tile = bo.get_by_test_id("stage").get_by_test_id("tile")
    expect(stage_tile).to_have_attribute("data-source", "screen", timeout=TIMEOUT_MS)
    expect(stage_tile).to_contain_text("Ana Alves")
    stats = assert_receiving_video(bo, ana_id, source="screen", seconds=2)
    assert stats["frameWidth"] >= stats["frameHeight"] > 0
    assert_tile_playing(stage_tile)
    expect(bo.get_by_test_id("video-grid")).to_have_class(re.compile("strip"))
    time.sleep(0.5)
    ana.screenshot(path=str(artifacts / "room-laptop-screenshare.png"))
    bo.screenshot(path=str(artifacts / "room-phone-screenshare.png"))
    ana.get_by_role("button", name="Stop sharing your screen").click()
    # Bo's phone is in the speaker view: Ana's camera comes back to the stage.
    expect(stage_tile).to_have_attribute("data-source", "camera")
    expect(stage_tile).to_have_attribute("data-participant-id", ana_id)
    expect(bo.locator('[data-testid="tile"][data-source="screen"]')).to_have_count(0)

    # Stopping from the browser's own button ends the track: the share stops too.
    ana.get_by_role("button", name="Share your screen").click()
    expect(stage_tile).to_have_attribute("data-source", "screen")
    ana.evaluate(
        "() => window.__tertulia.session.localTracks.screen.dispatchEvent(new Event('ended'))"
    )
    expect(stage_tile).to_have_attribute("data-source", "camera")
    expect(bo.locator('[data-testid="tile"][data-source="screen"]')).to_have_count(0)
    expect(ana.get_by_role("button", name="Share your screen")).to_be_visible()

    # Leaving removes the tile on the other page.
    bo.get_by_test_id("leave").click()
    expect(bo.get_by_test_id("left")).to_be_visible()
    expect(remote_tile(ana, "Bo Berg")).to_have_count(0)
    expect(ana.get_by_test_id("participant-count")).to_have_text("1 in the meeting")

    # Bo rejoins; then the host ends the meeting for everyone.
    bo.get_by_test_id("rejoin").click()
    join(bo)
    expect(remote_tile(ana, "Bo Berg")).to_be_visible()
    # The chat history comes with the welcome.
    bo.get_by_test_id("toggle-chat").click()
    expect(bo.get_by_test_id("chat-message")).to_have_count(2)
    expect(bo.get_by_test_id("chat-list")).to_contain_text("Hello from Ana")
    expect(bo.get_by_test_id("end-meeting")).to_be_hidden()
    ana.get_by_test_id("end-meeting").click()
    ana.get_by_test_id("confirm-yes").click()
    expect(bo.get_by_test_id("meeting-ended")).to_be_visible()
    expect(bo.get_by_test_id("outcome-message")).to_contain_text("has ended")
    expect(ana.get_by_test_id("meeting-ended")).to_be_visible()
    # The pages released their peer connections.
    assert bo.evaluate("() => window.__tertulia.closed") is True


def test_recording_indicator_and_dropped_connection_rejoins(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    meeting = server.create_meeting(
        "ana", title="Flaky network", settings={"enable_recording": True}
    )
    ana = open_person(browser, contexts, server)
    bo = open_person(browser, contexts, server)
    sign_in(ana, server, "ana", path=f"/m/{meeting['room_id']}")
    join(ana)
    sign_in(bo, server, "bo", path=f"/m/{meeting['room_id']}")
    join(bo)
    expect(remote_tile(ana, "Bo Berg")).to_be_visible()
    first_id = participant_id(bo)

    # Recording: only the host has the control; everybody sees the indicator.
    expect(bo.get_by_test_id("toggle-recording")).to_be_hidden()
    ana.get_by_role("button", name="Start recording").click()
    expect(bo.get_by_test_id("recording-indicator")).to_be_visible()
    expect(bo.get_by_test_id("room-status")).to_contain_text("Ana Alves started recording")
    ana.get_by_role("button", name="Stop recording").click()
    expect(bo.get_by_test_id("recording-indicator")).to_be_hidden()
    expect(ana.get_by_test_id("recording-indicator")).to_be_hidden()

    # The socket drops as on a network failure (not a close code that forbids reconnecting).
    bo.evaluate("() => window.__tertulia.session.dropConnection()")
    expect(bo.get_by_test_id("room-status")).to_contain_text("Reconnect")
    expect(bo.get_by_test_id("room-status")).to_contain_text("Reconnected")
    expect(bo.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    second_id = participant_id(bo)
    assert second_id != first_id
    assert bo.evaluate("() => window.__tertulia.session.reconnects") == 1

    # Media flows again both ways on the new peer connection.
    expect(remote_tile(ana, "Bo Berg")).to_have_count(1)
    assert_receiving_video(ana, second_id)
    assert_receiving_video(bo, participant_id(ana))
    assert_tile_playing(remote_tile(bo, "Ana Alves"))


# How much of a tile's video picture is on screen, from the element's computed object-fit,
# its box and the picture's size (and the element inside its tile, which clips).
PICTURE_SHOWN = """(tile) => {
  const v = tile.querySelector('video');
  const fit = getComputedStyle(v).objectFit;
  const box = v.getBoundingClientRect();
  const outer = tile.getBoundingClientRect();
  const vw = v.videoWidth, vh = v.videoHeight;
  const contain = Math.min(box.width / vw, box.height / vh);
  const scale = {cover: Math.max(box.width / vw, box.height / vh), contain,
                 'scale-down': Math.min(1, contain), none: 1}[fit];
  const shown = scale === undefined ? 1  // fill: stretched, nothing cut
    : Math.min(1, box.width / (vw * scale)) * Math.min(1, box.height / (vh * scale));
  const inside = box.left >= outer.left - 1 && box.right <= outer.right + 1
    && box.top >= outer.top - 1 && box.bottom <= outer.bottom + 1;
  return {fit, shown, inside, boxAspect: box.width / box.height, videoAspect: vw / vh};
}"""


def test_tiles_show_whole_cameras_and_announcements_clear(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    meeting = server.create_meeting("ana", title="Whole picture")
    ana = open_person(browser, contexts, server)
    bo = open_person(browser, contexts, server)
    sign_in(ana, server, "ana", path=f"/m/{meeting['room_id']}")
    join(ana)

    # Nothing to say: the live region stays in the page but takes no room.
    status = ana.get_by_test_id("room-status")
    expect(status).to_be_attached()
    expect(status).to_have_attribute("aria-live", "polite")
    expect(status).to_have_text("")
    expect(status).to_be_hidden()
    assert status.evaluate("(el) => el.getBoundingClientRect().height") == 0

    sign_in(bo, server, "bo", path=f"/m/{meeting['room_id']}")
    join(bo)
    expect(status).to_have_text("Bo Berg joined.")
    expect(status).to_be_visible()
    # ... and the message goes away by itself after a few seconds.
    expect(status).to_have_text("", timeout=TIMEOUT_MS)
    expect(status).to_be_hidden()
    expect(status).to_be_attached()

    # A 4:3 camera in a tile of another shape is shown whole (letterboxed, not cropped).
    tile = remote_tile(ana, "Bo Berg")
    assert_tile_playing(tile)
    picture = tile.evaluate(PICTURE_SHOWN)
    assert picture["fit"] != "cover", picture
    assert abs(picture["boxAspect"] - picture["videoAspect"]) > 0.1, picture  # a real test
    assert picture["shown"] > 0.99 and picture["inside"], picture
    mine = ana.locator('[data-testid="tile"][data-self="true"]')
    assert mine.locator("video").evaluate("(v) => getComputedStyle(v).objectFit") != "cover"
    # Screen shares too.
    ana.get_by_role("button", name="Share your screen").click()
    stage_tile = bo.get_by_test_id("stage").get_by_test_id("tile")
    expect(stage_tile).to_have_attribute("data-source", "screen")
    assert_tile_playing(stage_tile)
    assert stage_tile.evaluate(PICTURE_SHOWN)["shown"] > 0.99
    # The strip below the shared screen keeps the cameras whole as well.
    strip_tile = remote_tile(bo, "Ana Alves")
    assert_tile_playing(strip_tile)
    strip = strip_tile.evaluate(PICTURE_SHOWN)
    assert strip["fit"] != "cover" and strip["shown"] > 0.99, strip
