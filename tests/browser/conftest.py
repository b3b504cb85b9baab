"""Real headless Chromium against the real server (a subprocess on 127.0.0.1).

Each test module gets its own server (fresh data directory and accounts) and one browser;
each person in a test gets their own browser context (separate localStorage and devices).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    emails: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=15) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None

    def token(self, who: str) -> str:
        status, body = self.request(
            "POST", "/api/auth/login", body={"email": self.emails[who], "password": PASSWORD}
        )
        assert status == 200, body
        return str(body["token"])

    def create_meeting(self, who: str, **fields: Any) -> dict[str, Any]:
        status, body = self.request(
            "POST", "/api/meetings", self.token(who), {"title": "Test meeting", **fields}
        )
        assert status == 201, body
        return dict(body)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("tertulia-data")
    port = _free_port()
    env = {
        **os.environ,
        "TERTULIA_DATA_DIR": str(data),
        "TERTULIA_ICE_HOST_ADDRESSES": "127.0.0.1",
        "TERTULIA_JWT_SECRET": JWT_SECRET,
        "TERTULIA_HOST": "127.0.0.1",
        "TERTULIA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TERTULIA_LOG_LEVEL": "INFO",
    }
    for email, name in USERS.values():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "signaling.cli",
                "create-user",
                email,
                "--name",
                name,
                "--password",
                PASSWORD,
            ],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=120,
        )
    log_path = data / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "signaling.cli", "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    srv = Server(f"http://127.0.0.1:{port}", process, log_path)
    srv.emails = {key: email for key, (email, _) in USERS.items()}
    srv.names = {key: name for key, (_, name) in USERS.items()}
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{srv.log_tail()}")
            try:
                if srv.request("GET", "/api/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become healthy:\n{srv.log_tail()}")
            time.sleep(0.2)
        yield srv
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


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
