"""Real headless Chromium against the real server (a subprocess on 127.0.0.1).

Each test module gets its own server (fresh data directory and accounts) and one browser;
each person in a test gets their own browser context (separate localStorage and devices).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server_process import ServerProcess

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "browser-test-password"
JWT_SECRET = "browser-tests-secret-" + "k" * 40
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream=fps=30",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERS = {
    "ana": ("ana@example.org", "Ana Alves"),
    "bo": ("bo@example.org", "Bo Berg"),
    "cy": ("cy@example.org", "Cy Costa"),
}
# The machine is shared and noisy: generous, but every wait asserts something real.
TIMEOUT_MS = 30_000


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if not os.path.exists(CHROMIUM):
                item.add_marker(skip)


class Server(ServerProcess):
    """The test server with the module's accounts (USERS) signed in by name."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, TERTULIA_JWT_SECRET=JWT_SECRET)
        self.emails = {key: email for key, (email, _) in USERS.items()}
        self.names = {key: name for key, (_, name) in USERS.items()}

    def token(self, who: str) -> str:
        return self.login(self.emails[who], PASSWORD)

    def create_meeting(self, who: str, **fields: Any) -> dict[str, Any]:
        status, body = self.request(
            "POST", "/api/meetings", self.token(who), {"title": "Test meeting", **fields}
        )
        assert status == 201, body
        return dict(body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("tertulia-data"))
    for email, name in USERS.values():
        srv.create_user(email, name, PASSWORD)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def contexts(browser: Any, server: Server) -> Iterator[list[Any]]:
    """Browser contexts opened by a test, closed after it (pages and their media with them)."""
    opened: list[Any] = []
    yield opened
    for context in opened:
        try:
            context.close()
        except Exception:  # the browser may already be gone
            pass
