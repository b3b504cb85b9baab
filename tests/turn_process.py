"""coturn (Debian's `turnserver`) in a subprocess on 127.0.0.1, configured as docs/deploy.md
and docker-compose.yml configure it: TURN REST API credentials (`use-auth-secret` with a
`static-auth-secret`), plain UDP/TCP on one port, relaying to loopback peers (the test
server's ICE candidates are on 127.0.0.1). Every start is matched by a stop. Also: a free
UDP port range for `TERTULIA_ICE_PORT_MIN` / `_MAX`.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "tertulia.test"
STUN_MAGIC = 0x2112A442


def free_tcp_and_udp_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for coturn")


def free_port_range(size: int) -> tuple[int, int]:
    """`size` consecutive UDP ports free on 127.0.0.1, below Linux's ephemeral range (so
    nothing else in the test binds them meanwhile)."""
    rng = random.Random()
    for _ in range(200):
        low = rng.randrange(20000, 30000 - size)
        socks: list[socket.socket] = []
        try:
            for port in range(low, low + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return low, low + size - 1
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free UDP port range")


def stun_binding_answered(port: int, timeout: float = 0.3) -> bool:
    """Whether a STUN Binding request to 127.0.0.1:port gets a success response."""
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", 0x0001, 0, STUN_MAGIC) + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, ("127.0.0.1", port))
            data, _ = sock.recvfrom(2048)
        except OSError:
            return False
    return len(data) >= 20 and data[:2] == b"\x01\x01" and data[8:20] == transaction


def rest_api_flags(secret: str) -> list[str]:
    """The TURN REST API set-up the tests use (docker-compose.yml's, for loopback)."""
    return [
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--no-tls",
        "--no-dtls",
        "--allow-loopback-peers",
        "--no-cli",
    ]


class TurnServer:
    """`turnserver` with `flags` (default: `rest_api_flags(secret)`), listening and relaying
    on 127.0.0.1 on a free port, logging each session to `log_path`."""

    def __init__(self, directory: Path, secret: str, flags: list[str] | None = None) -> None:
        self.directory = directory
        self.secret = secret
        self.flags = rest_api_flags(secret) if flags is None else flags
        self.port = free_tcp_and_udp_port()
        self.log_path = directory / "turnserver.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def command(self) -> list[str]:
        return [
            TURNSERVER,
            "-n",  # no configuration file: everything is on this line
            *self.flags,
            "--listening-ip=127.0.0.1",
            f"--listening-port={self.port}",
            "--relay-ip=127.0.0.1",
            "--verbose",  # a line per session and allocation (who, which relay)
            "--simple-log",
            f"--log-file={self.log_path}",
            f"--pidfile={self.directory / 'turnserver.pid'}",
            f"--db={self.directory / 'turndb'}",
        ]

    def start(self, timeout: float = 15) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "turnserver.out").open("ab") as out:
            self.process = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while not stun_binding_answered(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"turnserver exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"turnserver did not answer STUN:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def turnserver_available() -> bool:
    return os.access(TURNSERVER, os.X_OK)
