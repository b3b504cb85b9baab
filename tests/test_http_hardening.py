"""The HTTP edge: browser security headers, no version in `Server`, slow and idle clients."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from tests.server_process import ServerProcess


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_every_response_carries_the_security_headers(api, make_user):
    user = await make_user()
    responses = [
        await api.client.get("/"),
        await api.client.get("/m/abc"),
        await api.client.get("/static/js/app.js"),
        await api.client.get("/api/health"),
        await api.client.get("/api/me"),  # an error
        await api.client.get("/api/me", headers={"Authorization": f"Bearer {api.token_for(user)}"}),
    ]
    for response in responses:
        headers = response.headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "connect-src 'self'" in csp and "object-src 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        policy = headers["Permissions-Policy"]
        for feature in ("camera=(self)", "microphone=(self)", "display-capture=(self)"):
            assert feature in policy
        assert "geolocation=()" in policy
        assert headers["Server"] == "Tertulia"  # no library versions
        assert "Strict-Transport-Security" in headers  # the public URL is https here


def _trickle(port: int, sockets: list[socket.socket]) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    sockets.append(sock)


def _closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_slow_headers_and_idle_connections_are_dropped(tmp_path: Path):
    server = ServerProcess(tmp_path / "data", TERTULIA_IDLE_TIMEOUT_SECONDS="2")
    server.start()
    sockets: list[socket.socket] = []
    try:
        for _ in range(50):
            _trickle(server.port, sockets)
        idle = socket.create_connection(("127.0.0.1", server.port))  # connects, says nothing
        sockets.append(idle)
        keep_alive = socket.create_connection(("127.0.0.1", server.port))
        keep_alive.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in keep_alive.recv(4096)
        sockets.append(keep_alive)  # then idles between requests
        for sock in sockets[:50]:  # one more header line: the deadline is not re-armed
            sock.sendall(b"X-Slow: 1\r\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(_closed_by_server(s) for s in sockets):
            time.sleep(0.2)
        still_open = sum(not _closed_by_server(s) for s in sockets)
        assert still_open == 0, f"{still_open} of {len(sockets)} slow or idle connections open"
        # and the server still serves everyone else
        assert server.request("GET", "/api/health")[0] == 200
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_body_that_never_finishes_is_a_408(api, monkeypatch):
    from signaling import errors

    monkeypatch.setattr(errors, "BODY_TIMEOUT_SECONDS", 0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", api.client.port)
    writer.write(
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 408")
    writer.close()
