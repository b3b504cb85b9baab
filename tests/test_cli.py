"""The `tertulia` command in real subprocesses: settings errors, create-user, migrate, serve."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from signaling.config import ConfigError, Settings, jwt_secret, load_settings

TERTULIA = [sys.executable, "-m", "signaling.cli"]


def run(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        TERTULIA + args, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TERTULIA_")}
    return clean | {"TERTULIA_DATA_DIR": str(tmp_path / "data"), "TERTULIA_LOG_LEVEL": "WARNING"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TERTULIA_PORT", "eighty"),
        ("TERTULIA_PORT", "70000"),
        ("TERTULIA_DATABASE_URL", "mysql://x"),
        ("TERTULIA_JWT_SECRET", "short"),
        ("TERTULIA_PUBLIC_URL", "meet.example.org"),
        ("TERTULIA_TOKEN_TTL_SECONDS", "1"),
    ],
)
def test_invalid_setting_stops_with_one_line(env, name, value):
    result = run(["migrate"], env | {name: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in result.stderr


def test_create_user_migrate_and_duplicate(env):
    result = run(
        ["create-user", "Root@Example.org", "--name", "Root", "--admin"], env, "s3cret-pass\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    again = run(
        ["create-user", "root@example.org", "--name", "R", "--password", "s3cret-pass"], env
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    weak = run(["create-user", "x@example.org", "--name", "X", "--password", "short"], env)
    assert weak.returncode == 2 and "password" in weak.stderr
    assert run(["migrate"], env).returncode == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """`tertulia serve` on a free port, once /api/health answers."""
    port = free_port()
    process = subprocess.Popen(
        [*TERTULIA, "serve", "--port", str(port)],
        env=env | {"TERTULIA_LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                assert json.load(r)["database"] == "ok"
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(process.communicate()[0]) from None
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=15)
    return str(output)


def test_serve_runs_migrations_and_answers(env):
    process, port = serve(env)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            assert b"Tertulia" in r.read()
    finally:
        output = stop(process)
    assert f"open http://localhost:{port}" in output
    assert (Path(env["TERTULIA_DATA_DIR"]) / "tertulia.db").exists()


def test_serve_logs_json_lines(env):
    process, port = serve(env | {"TERTULIA_LOG_FORMAT": "json"})
    try:
        asked = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/health", headers={"X-Request-Id": "cli-check-1"}
        )
        with urllib.request.urlopen(asked, timeout=2) as r:
            assert r.headers["X-Request-Id"] == "cli-check-1"
    finally:
        output = stop(process)
    records = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line
    running = next(r for r in records if r["message"].startswith("Tertulia is running"))
    assert (running["level"], running["logger"]) == ("INFO", "tertulia")
    assert running["worker_id"] == str(process.pid)
    [access] = [r for r in records if r.get("request_id") == "cli-check-1"]
    assert access["logger"] == "aiohttp.access" and "GET /api/health" in access["message"]


def test_jwt_secret_is_generated_once_and_private(tmp_path):
    settings = Settings(data_dir=tmp_path / "d")
    first = jwt_secret(settings)
    assert len(first) >= 32 and jwt_secret(settings) == first
    mode = (tmp_path / "d" / "jwt-secret").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert jwt_secret(Settings(data_dir=tmp_path / "d", jwt_secret="y" * 40)) == "y" * 40


def test_load_settings_reports_the_variable(monkeypatch):
    monkeypatch.setenv("TERTULIA_HOST", "")
    with pytest.raises(ConfigError, match="TERTULIA_HOST"):
        load_settings()
