"""The real server in a subprocess on 127.0.0.1, for tests that need a process boundary
(SIGKILL, restarts, browsers). Every start is matched by a stop in the test's teardown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
JWT_SECRET = "server-process-tests-" + "s" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TERTULIA_")},
            "TERTULIA_DATA_DIR": str(data_dir),
            "TERTULIA_ICE_HOST_ADDRESSES": "127.0.0.1",
            "TERTULIA_JWT_SECRET": JWT_SECRET,
            "TERTULIA_HOST": "127.0.0.1",
            "TERTULIA_PORT": str(self.port),
            "TERTULIA_PUBLIC_URL": self.base_url,
            "TERTULIA_LOG_LEVEL": "INFO",
            **env,
        }
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "signaling.cli", *args],
            env=self.env,
            cwd=REPO,
            input=stdin.encode() if stdin else None,
            capture_output=True,
            timeout=120,
            check=True,
        )
        return result.stdout.decode().strip()

    def create_user(self, email: str, name: str, password: str, admin: bool = False) -> int:
        extra = ["--admin"] if admin else []
        return int(self.cli("create-user", email, "--name", name, "--password", password, *extra))

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "signaling.cli", "serve"],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            try:
                if self.request("GET", "/api/health")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become healthy:\n{self.log_tail()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

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

    def login(self, email: str, password: str) -> str:
        status, body = self.request(
            "POST", "/api/auth/login", body={"email": email, "password": password}
        )
        assert status == 200, body
        return str(body["token"])

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
