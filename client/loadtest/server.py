"""A Tertulia server in its own process on 127.0.0.1, for benchmarks (`bench/capacity.py`).

Runs `python -m signaling.cli serve` with a private data directory, optionally pinned to
some CPUs, and reads its CPU time and memory from /proc (the whole process tree). `source`
runs the server from another checkout (e.g. an older commit in a `git worktree`) with this
Python environment, so one benchmark can compare revisions.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import procstat

JWT_SECRET = "loadtest-bench-" + "j" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        cpus: tuple[int, ...] = (),
        env: dict[str, str] | None = None,
        log_level: str = "WARNING",
        source: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.source = source
        self.cpus = cpus
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
            "TERTULIA_LOG_LEVEL": log_level,
            **({"PYTHONPATH": str(source)} if source else {}),
            **(env or {}),
        }
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() first"
        return self.process.pid

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "signaling.cli", *args]

    def create_user(self, email: str, name: str, password: str, *, admin: bool = False) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        extra = ["--admin"] if admin else []
        result = subprocess.run(
            self._command("create-user", email, "--name", name, f"--password={password}", *extra),
            env=self.env,
            cwd=self.source,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"create-user failed: {result.stderr.decode().strip()}")
        return int(result.stdout.decode().strip())

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._command("serve"),
                env=self.env,
                cwd=self.source,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._pin()
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not become healthy:\n{self.log_tail()}")
            time.sleep(0.2)
        self._pin()  # every thread started meanwhile too

    def _pin(self) -> None:
        if not self.cpus:
            return
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), set(self.cpus))

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/api/health", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def cpu_seconds(self) -> float:
        return procstat.tree_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return procstat.tree_rss_bytes(self.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
