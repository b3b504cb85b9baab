"""The real server in a subprocess on 127.0.0.1, for tests that need a process boundary
(SIGKILL, restarts, browsers). Every start is matched by a stop in the test's teardown.

It is the benchmarks' `LocalServer` (start, stop, health wait, CLI, data directory) with
what tests add: SIGKILL, the CLI with standard input, and JSON requests.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from client.loadtest.server import LocalServer

REPO = Path(__file__).resolve().parents[1]


class ServerProcess(LocalServer):
    def __init__(self, data_dir: Path, **env: str) -> None:
        super().__init__(data_dir, env={"TERTULIA_LOG_LEVEL": "INFO", **env}, source=REPO)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            self._command(*args),
            env=self.env,
            cwd=self.source,
            input=stdin.encode() if stdin else None,
            capture_output=True,
            timeout=120,
            check=True,
        )
        return result.stdout.decode().strip()

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=15)

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
