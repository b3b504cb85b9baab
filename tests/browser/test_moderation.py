"""The waiting room and moderation in real Chromium against the real server: knock → the host
admits → both see each other's video; a refusal that stays final; the host mutes a
participant, whose page says so, and the host's received audio from them stops within 1 s."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Server
from tests.browser.pages import (
    START_AUDIO_SAMPLER,
    assert_receiving_video,
    assert_tile_playing,
    audio_mids_of,
    join,
    open_person,
    participant_id,
    remote_tile,
    sign_in,
    start_joining,
)

pytestmark = pytest.mark.browser

HOST_KNOWS = "The host has been told you are here."
NO_HOST = "Waiting for the host to let you in."


def person_row(page: Page, name: str) -> Any:
    return page.get_by_test_id("participant-item").filter(has_text=name)


def audio_packets_after(page: Page, mid: str, seconds: float) -> tuple[float, list[list[float]]]:
    """Sample the slot's received audio packets while the caller acts; returns the page's
    clock at the start and the samples [[t, packets], ...] taken over `seconds`."""
    start = float(page.evaluate("() => performance.now()"))
    time.sleep(seconds)
    samples = page.evaluate("() => window.__audioSamples")
    return start, [s for s in samples if s[1] is not None and s[0] >= start]


def test_knock_admit_then_the_host_mutes(
    browser: Any, contexts: list[Any], server: Server, artifacts: Path
) -> None:
    meeting = server.create_meeting(
        "ana",
        title="Front door",
        settings={"require_approval": True, "allow_self_unmute": False, "enable_recording": True},
    )
    room_id = meeting["room_id"]
    ana = open_person(browser, contexts, server)
    bo = open_person(browser, contexts, server)
    sign_in(ana, server, "ana", path=f"/m/{room_id}")
    join(ana)  # the host walks in

    # Bo knocks: the waiting screen, the host is inside and has been told.
    sign_in(bo, server, "bo", path=f"/m/{room_id}")
    start_joining(bo)
    expect(bo.get_by_test_id("waiting-room")).to_be_visible()
    expect(bo.get_by_test_id("waiting-title")).to_have_text("Front door")
    expect(bo.get_by_test_id("waiting-status")).to_have_text(HOST_KNOWS)
    expect(bo.get_by_test_id("may-be-recorded")).to_be_visible()
    assert bo.evaluate("() => window.__tertulia.session.state") == "waiting"
    assert bo.evaluate("() => window.__tertulia.pc") is None  # no media before admission
    bo.screenshot(path=str(artifacts / "waiting-laptop-1280x800.png"))

    # The host: a badge with the number waiting and a notice; nothing of Bo inside yet.
    expect(ana.get_by_test_id("waiting-count")).to_have_text("1")
    expect(ana.get_by_test_id("knock-notice")).to_contain_text("Bo Berg is waiting to join")
    expect(ana.get_by_test_id("participant-count")).to_have_text("1 in the meeting")
    expect(remote_tile(ana, "Bo Berg")).to_have_count(0)
    ana.get_by_test_id("toggle-waiting").click()
    knock = ana.get_by_test_id("waiting-item").filter(has_text="Bo Berg")
    expect(knock).to_have_count(1)
    ana.screenshot(path=str(artifacts / "room-host-waiting-list.png"))
    knock.get_by_role("button", name="Admit Bo Berg").click()

    # Admitted: the same socket goes on into the room; both see each other.
    expect(bo.get_by_test_id("room")).to_be_visible()
    expect(bo.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    expect(ana.get_by_test_id("waiting-count")).to_be_hidden()
    expect(ana.get_by_test_id("knock-notice")).to_be_hidden()
    expect(ana.get_by_test_id("waiting-empty")).to_be_visible()
    ana.get_by_role("button", name="Close the waiting list").click()
    ana_id, bo_id = participant_id(ana), participant_id(bo)
    expect(remote_tile(ana, "Bo Berg")).to_be_visible()
    expect(remote_tile(bo, "Ana Alves")).to_be_visible()
    assert_receiving_video(ana, bo_id, seconds=1.5)
    assert_receiving_video(bo, ana_id, seconds=1.5)
    assert_tile_playing(remote_tile(ana, "Bo Berg"), seconds=1)
    assert_tile_playing(remote_tile(bo, "Ana Alves"), seconds=1)
    # Bo is no moderator: no moderation buttons, no waiting list, no end for everyone.
    expect(bo.get_by_test_id("toggle-waiting")).to_be_hidden()
    expect(bo.get_by_test_id("end-meeting")).to_be_hidden()
    bo.get_by_test_id("toggle-participants").click()
    expect(bo.get_by_test_id("meeting-tools")).to_be_hidden()
    expect(bo.get_by_test_id("moderation-actions")).to_have_count(0)
    bo.get_by_role("button", name="Close the participants panel").click()

    # A raised hand shows on the host's tile and list; the host lowers it.
    bo.get_by_role("button", name="Raise your hand").click()
    expect(remote_tile(ana, "Bo Berg")).to_have_attribute("data-hand", "true")
    ana.get_by_test_id("toggle-participants").click()
    bo_row = person_row(ana, "Bo Berg")
    expect(bo_row).to_have_attribute("data-hand", "raised")
    bo_row.get_by_test_id("lower-hand").click()
    expect(bo.get_by_role("button", name="Raise your hand")).to_be_visible()
    expect(remote_tile(ana, "Bo Berg")).to_have_attribute("data-hand", "false")

    # Bo's microphone reaches Ana: packets on the slot that carries it grow.
    deadline = time.monotonic() + 20
    while not (mids := audio_mids_of(ana, bo_id)):
        assert time.monotonic() < deadline, "Bo's microphone never reached Ana"
        time.sleep(0.2)
    mid = mids[0]
    ana.evaluate(START_AUDIO_SAMPLER, mid)
    _, before = audio_packets_after(ana, mid, 1.0)
    assert len(before) >= 5, before
    rate = (before[-1][1] - before[0][1]) / ((before[-1][0] - before[0][0]) / 1000)
    assert rate > 20, f"Bo's audio arrives at only {rate:.0f} packets/s before the mute"

    # The host mutes Bo's microphone: Bo's page says so and cannot unmute.
    clicked = float(ana.evaluate("() => performance.now()"))
    bo_row.get_by_test_id("mute-mic").click()
    expect(bo.get_by_test_id("moderator-muted")).to_contain_text("Muted by the moderator")
    expect(bo.get_by_test_id("moderator-muted")).to_contain_text("Ana Alves")
    expect(bo.get_by_test_id("toggle-mic")).to_be_disabled()
    expect(bo.get_by_test_id("toggle-mic")).to_have_attribute("aria-label", "Unmute microphone")
    assert bo.evaluate("() => window.__tertulia.session.localTracks.microphone.enabled") is False
    expect(remote_tile(ana, "Bo Berg")).to_have_attribute("data-mic", "off")
    expect(bo_row.get_by_test_id("state-mic")).to_have_attribute("data-on", "false")
    bo.screenshot(path=str(artifacts / "room-muted-by-moderator.png"))
    ana.screenshot(path=str(artifacts / "room-host-people-panel.png"))

    # At the host, the slot that carried Bo's audio stops growing within 1 s, and stays flat.
    audio_packets_after(ana, mid, 2.6)
    ana.evaluate("() => clearInterval(window.__audioSampler)")
    samples = [s for s in ana.evaluate("() => window.__audioSamples") if s[1] is not None]
    growth = [t for (_, n0), (t, n) in itertools.pairwise(samples) if n > n0]
    last_growth = max(growth, default=clicked)
    stopped_after = (last_growth - clicked) / 1000
    flat = [s for s in samples if s[0] >= last_growth]
    flat_for = (flat[-1][0] - last_growth) / 1000
    print(
        f"audio from Bo: {rate:.0f} packets/s before the mute, the last growth "
        f"{stopped_after * 1000:.0f} ms after the click, then flat for {flat_for:.1f} s "
        f"({len(flat)} samples, {flat[-1][1]} packets)"
    )
    assert stopped_after <= 1.0, f"audio still arrived {stopped_after:.2f} s after the mute"
    assert flat_for >= 1.5 and len(flat) >= 10, f"flat for only {flat_for:.2f} s: {flat}"

    # The host lets Bo unmute: the button works again and the audio flows again.
    bo_row.get_by_test_id("allow-unmute").click()
    expect(bo.get_by_test_id("toggle-mic")).to_be_enabled()
    bo.get_by_role("button", name="Unmute microphone").click()
    expect(bo.get_by_test_id("moderator-muted")).to_be_hidden()
    expect(remote_tile(ana, "Bo Berg")).to_have_attribute("data-mic", "on")
    ana.evaluate(START_AUDIO_SAMPLER, mid)
    deadline = time.monotonic() + 10
    while True:
        samples = [s for s in ana.evaluate("() => window.__audioSamples") if s[1] is not None]
        if len(samples) >= 2 and samples[-1][1] > samples[0][1]:
            break
        assert time.monotonic() < deadline, "Bo's audio did not come back after unmuting"
        time.sleep(0.2)
    ana.evaluate("() => clearInterval(window.__audioSampler)")

    # Removed for good: Bo's page says so and does not reconnect; his next join is refused.
    bo_row.get_by_test_id("remove-person").click()
    ana.get_by_label("Don't let them back in").check()
    ana.get_by_test_id("confirm-yes").click()
    expect(bo.get_by_test_id("removed")).to_be_visible()
    expect(bo.get_by_role("heading")).to_have_text(
        "You were removed from the meeting and cannot rejoin"
    )
    expect(bo.get_by_test_id("outcome-message")).to_contain_text("Ana Alves")
    expect(ana.get_by_test_id("room-status")).to_have_text("Bo Berg was removed from the meeting.")
    expect(remote_tile(ana, "Bo Berg")).to_have_count(0)
    assert bo.evaluate("() => window.__tertulia.closed") is True
    start_joining(bo, room_id)
    expect(bo.get_by_test_id("barred")).to_be_visible()


def test_refused_at_the_waiting_room_stays_refused(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    meeting = server.create_meeting("ana", title="Closed door", settings={"require_approval": True})
    room_id = meeting["room_id"]
    cy = open_person(browser, contexts, server)
    sockets: list[str] = []
    cy.on("websocket", lambda ws: sockets.append(ws.url))

    # Cy knocks before anyone who can admit is inside; leaves; comes back.
    sign_in(cy, server, "cy", path=f"/m/{room_id}")
    start_joining(cy)
    expect(cy.get_by_test_id("waiting-room")).to_be_visible()
    expect(cy.get_by_test_id("waiting-status")).to_have_text(NO_HOST)
    expect(cy.get_by_test_id("may-be-recorded")).to_be_hidden()
    cy.get_by_test_id("waiting-leave").click()
    expect(cy.get_by_test_id("left")).to_be_visible()
    cy.get_by_test_id("rejoin").click()
    start_joining(cy)
    expect(cy.get_by_test_id("waiting-status")).to_have_text(NO_HOST)
    assert len(sockets) == 2, sockets

    # The connection drops while waiting: the page knocks again and waits again.
    cy.evaluate("() => window.__tertulia.session.dropConnection()")
    expect(cy.get_by_test_id("waiting-status")).to_have_text(NO_HOST)
    deadline = time.monotonic() + 10
    while len(sockets) < 3:
        assert time.monotonic() < deadline, sockets
        time.sleep(0.1)
    expect(cy.get_by_test_id("waiting-room")).to_be_visible()
    assert cy.evaluate("() => window.__tertulia.session.state") == "waiting"

    # The host comes in: Cy's status changes by itself; the host sees one knock (not two).
    ana = open_person(browser, contexts, server)
    sign_in(ana, server, "ana", path=f"/m/{room_id}")
    join(ana)
    expect(cy.get_by_test_id("waiting-status")).to_have_text(HOST_KNOWS)
    expect(ana.get_by_test_id("waiting-count")).to_have_text("1")
    ana.get_by_test_id("toggle-waiting").click()
    expect(ana.get_by_test_id("waiting-item")).to_have_count(1)
    ana.get_by_role("button", name="Deny Cy Costa").click()

    # Cy is told, and the page does not try again.
    expect(cy.get_by_test_id("denied")).to_be_visible()
    expect(cy.get_by_test_id("outcome-message")).to_contain_text("ask again in 10 minutes")
    expect(ana.get_by_test_id("waiting-empty")).to_be_visible()
    expect(ana.get_by_test_id("toggle-waiting")).to_have_attribute("aria-label", "Waiting to join")
    time.sleep(2)  # long enough for the first two reconnection attempts (0.5 s, then 1 s)
    assert len(sockets) == 3, sockets
    expect(cy.get_by_test_id("denied")).to_be_visible()
    assert cy.evaluate("() => window.__tertulia.session.state") == "closed"

    # Knocking again at once is refused by the server (not left to the page).
    start_joining(cy, room_id)
    expect(cy.get_by_test_id("denied")).to_be_visible()
    expect(cy.get_by_test_id("outcome-message")).to_contain_text("a short while ago")
    expect(ana.get_by_test_id("waiting-count")).to_be_hidden()

    # The host locks the meeting: the room says so, and the link no longer lets anyone in.
    ana.get_by_test_id("toggle-participants").click()
    ana.get_by_role("button", name="Lock meeting").click()
    expect(ana.get_by_test_id("lock-indicator")).to_be_visible()
    expect(ana.get_by_role("button", name="Unlock meeting")).to_have_attribute(
        "aria-pressed", "true"
    )
    start_joining(cy, room_id)
    expect(cy.get_by_test_id("meeting-locked")).to_be_visible()
