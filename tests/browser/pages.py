"""Driving the Tertulia pages: sign in, join, read media statistics from the page."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, TIMEOUT_MS, Server

expect.set_options(timeout=TIMEOUT_MS)

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}


def open_person(
    browser: Any,
    contexts: list[Any],
    server: Server,
    viewport: dict[str, int] = LAPTOP,
    init_script: str | None = None,
) -> Page:
    context = browser.new_context(
        viewport=viewport, base_url=server.base_url, permissions=["camera", "microphone"]
    )
    context.set_default_timeout(TIMEOUT_MS)
    if init_script:
        context.add_init_script(init_script)
    contexts.append(context)
    page = context.new_page()
    page.on("pageerror", lambda error: print(f"[page error] {error}"))
    return page


def sign_in(page: Page, server: Server, who: str, path: str = "/") -> None:
    """Open `path`; sign in on the sign-in page it leads to."""
    page.goto(path)
    expect(page.get_by_test_id("signin-page")).to_be_visible()
    page.get_by_label("E-mail").fill(server.emails[who])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signin-submit").click()


def join(page: Page, room_id: str | None = None) -> None:
    """From the pre-join page (opening it first when room_id is given), join the meeting."""
    if room_id is not None:
        page.goto(f"/m/{room_id}")
    expect(page.get_by_test_id("prejoin")).to_be_visible()
    expect(page.get_by_test_id("join-button")).to_be_enabled()
    page.get_by_test_id("join-button").click()
    expect(page.get_by_test_id("room")).to_be_visible()
    expect(page.get_by_test_id("connection-state")).to_have_attribute(
        "data-state", "connected", timeout=TIMEOUT_MS
    )


def remote_tile(page: Page, name: str, source: str = "camera") -> Any:
    return page.locator(f'[data-testid="tile"][data-self="false"][data-source="{source}"]').filter(
        has=page.get_by_test_id("tile-name").get_by_text(name, exact=False)
    )


INBOUND_VIDEO = """async () => {
  const pc = window.__tertulia && window.__tertulia.pc;
  if (!pc) return [];
  const stats = await pc.getStats();
  const out = [];
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      out.push({mid: r.mid, framesDecoded: r.framesDecoded || 0, frameWidth: r.frameWidth || 0,
                frameHeight: r.frameHeight || 0, bytesReceived: r.bytesReceived || 0,
                packetsLost: r.packetsLost || 0});
    }
  });
  return out;
}"""

TILE_VIDEO = """(el) => { const v = el.querySelector('video');
  return {currentTime: v.currentTime, videoWidth: v.videoWidth, videoHeight: v.videoHeight,
          paused: v.paused, mid: null}; }"""


def video_mids_of(page: Page, participant_id: str, source: str = "camera") -> list[str]:
    return list(
        page.evaluate(
            """([pid, source]) => window.__tertulia.session.slots
                 .filter((s) => s.participant_id === pid && s.source === source)
                 .map((s) => s.mid)""",
            [participant_id, source],
        )
    )


def assert_receiving_video(
    page: Page, participant_id: str, source: str = "camera", seconds: float = 2.5
) -> dict[str, Any]:
    """The page decodes video from this person: framesDecoded grows, frameWidth > 0."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        mids = video_mids_of(page, participant_id, source)
        first = {s["mid"]: s for s in page.evaluate(INBOUND_VIDEO) if s["mid"] in mids}
        if first and any(s["framesDecoded"] > 0 for s in first.values()):
            break
        assert time.monotonic() < deadline, f"no decoded {source} video from {participant_id}"
        time.sleep(0.5)
    time.sleep(seconds)
    second = {s["mid"]: s for s in page.evaluate(INBOUND_VIDEO) if s["mid"] in mids}
    mid = next(iter(first))
    a, b = first[mid], second[mid]
    rate = (b["framesDecoded"] - a["framesDecoded"]) / seconds
    assert b["framesDecoded"] > a["framesDecoded"], (a, b)
    assert rate >= 3, f"only {rate:.1f} frames/s decoded"
    assert b["frameWidth"] > 0 and b["frameHeight"] > 0, b
    assert b["bytesReceived"] > a["bytesReceived"], (a, b)
    return {"fps": rate, **b}


def assert_tile_playing(tile: Any, seconds: float = 1.5) -> dict[str, Any]:
    """The tile's <video> plays: it has a size and currentTime advances."""
    expect(tile.locator("video")).to_be_visible()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        first = tile.evaluate(TILE_VIDEO)
        if first["videoWidth"] > 0 and first["currentTime"] > 0:
            break
        assert time.monotonic() < deadline, f"the tile's video never started: {first}"
        time.sleep(0.3)
    time.sleep(seconds)
    second = tile.evaluate(TILE_VIDEO)
    assert second["currentTime"] > first["currentTime"], (first, second)
    assert not second["paused"], second
    return dict(second)


def participant_id(page: Page) -> str:
    return str(page.evaluate("() => window.__tertulia.session.participantId"))


def start_joining(page: Page, room_id: str | None = None) -> None:
    """From the pre-join page, press Join (the room, the waiting room or a refusal follows)."""
    if room_id is not None:
        page.goto(f"/m/{room_id}")
    expect(page.get_by_test_id("prejoin")).to_be_visible()
    expect(page.get_by_test_id("join-button")).to_be_enabled()
    page.get_by_test_id("join-button").click()


def audio_mids_of(page: Page, participant_id: str) -> list[str]:
    """The receive slots that carry this person's microphone now."""
    return video_mids_of(page, participant_id, "microphone")


# Every 50 ms, the packets received on one audio slot (inbound-rtp `packetsReceived`), with
# the page's clock: [[performance.now(), packets], ...] in window.__audioSamples.
START_AUDIO_SAMPLER = """(mid) => {
  clearInterval(window.__audioSampler);
  window.__audioSamples = [];
  window.__audioSampler = setInterval(async () => {
    const pc = window.__tertulia && window.__tertulia.pc;
    if (!pc) return;
    const stats = await pc.getStats();
    let packets = null;
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.mid === mid) {
        packets = r.packetsReceived;
      }
    });
    window.__audioSamples.push([performance.now(), packets]);
  }, 50);
}"""
