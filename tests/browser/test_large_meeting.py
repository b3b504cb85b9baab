"""Two people in real Chromium and ten load bots in one meeting: the gallery's pages, what each
page decodes (only what it shows), a pin, a hidden tab, and the speaker view following the bot
that speaks.

The bots are `tertulia loadtest` (client/loadtest/): separate processes publishing a
pre-encoded clip (320x240 at 15 fps here, the lightest that still is video) without encoding,
asking for no video themselves (`--last-n 0`), all quiet until the test writes `speak N` to
their control file (`--control`): then bot N's microphone packets carry a loud audio level and
the others a quiet one, which is what the server's speaker detection reads.

This module has its own server (with an administrator, who creates the bot accounts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, REPO, TIMEOUT_MS, USERS, Server
from tests.browser.pages import PHONE, assert_receiving_video, join, open_person, sign_in

pytestmark = pytest.mark.browser

ADMIN_EMAIL = "bot-admin@example.org"
BOTS = 10
# 960x600: the videos' box holds a gallery of 9 (3x3) and no more.
SMALL_LAPTOP = {"width": 960, "height": 600}
LONG_WAIT_S = 90  # the server settles what it forwards after each change; the machine is shared


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("tertulia-data"))
    for email, name in USERS.values():
        srv.create_user(email, name, PASSWORD)
    srv.create_user(ADMIN_EMAIL, "Bot Admin", PASSWORD, admin=True)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


class Bots:
    """`tertulia loadtest` joined to a meeting, driven through its control file."""

    def __init__(self, server: Server, room_id: str, directory: Path, clip_dir: Path) -> None:
        self.control = directory / "bots.control"
        self.control.write_text("")
        self.log = directory / "bots.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TERTULIA_")}
        env["TERTULIA_LOADTEST_PASSWORD"] = PASSWORD
        command = [
            sys.executable,
            "-m",
            "signaling.cli",
            "loadtest",
            "--url",
            server.base_url,
            "--room",
            room_id,
            "--admin-email",
            ADMIN_EMAIL,
            "-k",
            str(BOTS),
            "--last-n",
            "0",
            "--clip",
            "320x240@15",
            "--control",
            str(self.control),
            "--warmup",
            "0",
            "--duration",
            "900",
            "--clip-dir",
            str(clip_dir),
        ]
        with self.log.open("wb") as log:
            # Its own process group: the bot worker processes are stopped with it.
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
            )

    def speak(self, bot: int) -> None:
        with self.control.open("a") as f:
            f.write(f"speak {bot}\n")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)  # the bots leave the meeting
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def alive(self) -> str | None:
        """None while running; else how it ended (and its log's tail)."""
        if self.process.poll() is None:
            return None
        return f"exit {self.process.returncode}: {self.log.read_text()[-3000:]}"


@pytest.fixture
def clip_dir(pytestconfig: pytest.Config) -> Path:
    return Path(pytestconfig.cache.mkdir("loadtest-clip"))  # shared with tests/test_loadtest.py


# Video decoded per receive mid, and whose it is now (the session's `tracks` slots).
DECODED = """async () => {
  const t = window.__tertulia;
  const out = {frames: {}, owner: {}};
  if (!t.pc) return out;
  (await t.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') out.frames[r.mid] = r.framesDecoded || 0;
  });
  for (const s of t.session.slots) {
    if (s.kind === 'video' && s.participant_id) out.owner[s.mid] = s.participant_id;
  }
  return out;
}"""

# The remote camera tiles drawn (stage and grid) and those showing video now.
DRAWN = """() => {
  const tiles = [...document.querySelectorAll(
    '[data-testid="stage"] [data-testid="tile"], [data-testid="video-grid"] [data-testid="tile"]')]
    .filter((t) => t.dataset.self === 'false');
  const asked = window.__tertulia.session.receive;
  return {drawn: tiles.map((t) => t.dataset.participantId),
          video: tiles.filter((t) => t.dataset.video === 'on').map((t) => t.dataset.participantId),
          lastN: asked ? asked.last_n : null};
}"""


def decoding(page: Page, seconds: float = 3.0) -> dict[str, str | None]:
    """The video streams whose framesDecoded grew over `seconds`: mid → participant."""
    first = page.evaluate(DECODED)
    time.sleep(seconds)
    second = page.evaluate(DECODED)
    return {
        mid: second["owner"].get(mid)
        for mid, frames in second["frames"].items()
        if frames > first["frames"].get(mid, 0)
    }


def assert_decodes_what_it_shows(page: Page, expected: list[str]) -> None:
    """Eventually: the page draws video for exactly `expected` (the others drawn on it), it
    decodes exactly as many video streams, those are theirs, and no more than its last_n."""
    deadline = time.monotonic() + LONG_WAIT_S
    while True:
        drawn = page.evaluate(DRAWN)
        growing = decoding(page)
        shown = page.evaluate(DRAWN)
        ok = (
            sorted(drawn["drawn"]) == sorted(expected)
            and drawn == shown
            and sorted(shown["video"]) == sorted(expected)
            and len(growing) == len(shown["video"])
            and sorted(p for p in growing.values() if p) == sorted(shown["video"])
            and shown["lastN"] is not None
            and len(growing) <= shown["lastN"]
        )
        if ok:
            return
        assert time.monotonic() < deadline, (
            f"expected video from {sorted(expected)}; drawn {shown}, decoding {growing}"
        )


def bot_ids(page: Page) -> dict[int, str]:
    """Bot number → participant id, from the names the bots joined with ("Load bot 3 (…)")."""
    names = page.evaluate(
        """() => [...window.__tertulia.session.participants.values()]
             .map((p) => [p.display_name, p.participant_id])"""
    )
    found = {}
    for name, pid in names:
        if name.startswith("Load bot "):
            found[int(name.split()[2])] = pid
    return found


def grid_ids(page: Page) -> list[str]:
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll(
                 '[data-testid="video-grid"] [data-testid="tile"]')]
                 .map((t) => t.dataset.participantId)"""
        )
    )


def test_gallery_pages_decode_what_they_show_and_the_stage_follows_the_speaker(
    browser: Any,
    contexts: list[Any],
    server: Server,
    tmp_path: Path,
    clip_dir: Path,
    artifacts: Path,
) -> None:
    meeting = server.create_meeting("ana", title="Large meeting", settings={"max_participants": 20})
    room_id = meeting["room_id"]
    ana = open_person(browser, contexts, server, viewport=SMALL_LAPTOP)
    bo = open_person(browser, contexts, server)
    sign_in(ana, server, "ana", path=f"/m/{room_id}")
    join(ana)
    sign_in(bo, server, "bo", path=f"/m/{room_id}")
    join(bo)
    ana_id = str(ana.evaluate("() => window.__tertulia.session.participantId"))
    bo_id = str(bo.evaluate("() => window.__tertulia.session.participantId"))
    # The browsers' fake microphones beep: muted, the bots are the only voices.
    for page in (ana, bo):
        page.get_by_role("button", name="Mute microphone").click()

    bots = Bots(server, room_id, tmp_path, clip_dir)
    try:
        for page in (ana, bo):
            expect(page.get_by_test_id("participant-count")).to_have_text(
                f"{BOTS + 2} in the meeting", timeout=LONG_WAIT_S * 1000
            )
        assert bots.alive() is None, bots.alive()
        ids = bot_ids(ana)
        assert sorted(ids) == list(range(1, BOTS + 1)), ids
        assert bot_ids(bo) == ids

        # --- the gallery, nine a page: me, then everybody in the order they joined ------
        others = list(ana.evaluate("() => [...window.__tertulia.session.participants.keys()]"))
        assert others[0] == bo_id and sorted(others[1:]) == sorted(ids.values())
        expect(ana.get_by_test_id("room")).to_have_attribute("data-view", "gallery")
        expect(ana.get_by_test_id("page-count")).to_have_text("Page 1 of 2")
        expect(ana.get_by_test_id("not-shown")).to_have_text("3 not shown")
        expect(ana.get_by_test_id("page-previous")).to_be_disabled()
        first_page = others[:8]
        assert grid_ids(ana) == [ana_id, *first_page]
        assert_decodes_what_it_shows(ana, first_page)
        receive = ana.evaluate("() => window.__tertulia.session.receive")
        assert receive["visible"] == first_page and receive["last_n"] == 8, receive
        ana.screenshot(path=str(artifacts / "room-gallery-960x600.png"))

        ana.get_by_test_id("page-next").click()
        expect(ana.get_by_test_id("page-count")).to_have_text("Page 2 of 2")
        expect(ana.get_by_test_id("not-shown")).to_have_text("9 not shown")
        expect(ana.get_by_test_id("page-next")).to_be_disabled()
        second_page = others[8:]
        assert grid_ids(ana) == second_page  # three other people, none from the first page
        assert_decodes_what_it_shows(ana, second_page)

        # --- a pin: someone from page 2 first on every page, and in `pinned` --------------
        pinned = others[9]
        ana.locator(f'[data-testid="tile"][data-participant-id="{pinned}"]').get_by_test_id(
            "tile-pin"
        ).click()
        first_tile = ana.get_by_test_id("video-grid").get_by_test_id("tile").first
        expect(first_tile).to_have_attribute("data-participant-id", pinned)
        ana.get_by_test_id("page-previous").click()
        expect(ana.get_by_test_id("page-count")).to_have_text("Page 1 of 2")
        expect(first_tile).to_have_attribute("data-participant-id", pinned)
        expect(first_tile).to_have_attribute("data-pinned", "true")
        pinned_page = [pinned, *others[:7]]  # the pinned one and 7 more (plus me)
        assert grid_ids(ana) == [pinned, ana_id, *others[:7]]
        assert_decodes_what_it_shows(ana, pinned_page)
        assert ana.evaluate("() => window.__tertulia.session.receive.pinned") == [pinned]
        ana.get_by_test_id("toggle-participants").click()
        row = ana.locator(f'[data-testid="participant-item"][data-participant-id="{pinned}"]')
        expect(row.get_by_test_id("participant-pin")).to_have_attribute("aria-pressed", "true")
        row.get_by_test_id("participant-pin").click()  # unpinned from the people panel
        ana.get_by_role("button", name="Close the participants panel").click()
        expect(ana.locator('[data-testid="tile"][data-pinned="true"]')).to_have_count(0)
        assert_decodes_what_it_shows(ana, first_page)

        # --- a hidden tab asks for audio only; shown again, for its page -------------------
        ana.evaluate(
            """() => {
              Object.defineProperty(document, 'visibilityState',
                {configurable: true, get: () => 'hidden'});
              document.dispatchEvent(new Event('visibilitychange'));
            }"""
        )
        assert ana.evaluate("() => window.__tertulia.session.receive.last_n") == 0
        deadline = time.monotonic() + LONG_WAIT_S
        while decoding(ana):
            assert time.monotonic() < deadline, "a hidden tab still decodes video"
        ana.evaluate(
            """() => {
              delete document.visibilityState;
              document.dispatchEvent(new Event('visibilitychange'));
            }"""
        )
        assert ana.evaluate("() => window.__tertulia.session.receive.last_n") == 8
        assert_decodes_what_it_shows(ana, first_page)

        # --- the speaker view: the stage follows the bot that speaks ----------------------
        bo.get_by_test_id("view-switch").click()
        expect(bo.get_by_test_id("room")).to_have_attribute("data-view", "speaker")
        assert bo.evaluate("() => localStorage.getItem('tertulia.view')") == "speaker"
        stage = bo.get_by_test_id("stage").get_by_test_id("tile")
        for speaker in (4, 9, 2):
            bots.speak(speaker)
            expect(stage).to_have_attribute(
                "data-participant-id", ids[speaker], timeout=LONG_WAIT_S * 1000
            )
            expect(stage).to_have_attribute("data-speaking", "true")
            expect(stage).to_have_attribute("data-video", "on", timeout=LONG_WAIT_S * 1000)
            assert (
                bo.evaluate("() => window.__tertulia.session.speakers.participant_id")
                == (ids[speaker])
            )
            # The request follows once the stage has settled (debounced).
            bo.wait_for_function(
                "(pid) => window.__tertulia.session.receive.on_stage[0] === pid", arg=ids[speaker]
            )
            request = bo.evaluate("() => window.__tertulia.session.receive")
            assert request["visible"] is None and request["on_stage"] == [ids[speaker]]
            assert request["max_height"][ids[speaker]] > request["default_max_height"]
            assert_receiving_video(bo, ids[speaker])
            # The strip: Bo and the others the server forwards; never more than last_n.
            strip = bo.evaluate(DRAWN)
            assert len(decoding(bo)) <= strip["lastN"] == len(strip["drawn"]), strip
            # Ana's gallery highlights the speaker's tile when it is on her page.
            if ids[speaker] in first_page:
                expect(
                    ana.locator(f'[data-testid="tile"][data-participant-id="{ids[speaker]}"]')
                ).to_have_attribute("data-speaking", "true", timeout=TIMEOUT_MS)
        bo.screenshot(path=str(artifacts / "room-speaker-laptop-1280x800.png"))

        # --- a phone: still nine a page, nothing sticks out sideways ----------------------
        ana.set_viewport_size(PHONE)
        expect(ana.get_by_test_id("page-count")).to_have_text("Page 1 of 2")
        expect(ana.get_by_test_id("not-shown")).to_have_text("3 not shown")
        assert ana.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        ana.screenshot(path=str(artifacts / "room-phone-gallery.png"))
        assert bots.alive() is None, bots.alive()
    finally:
        bots.stop()
