"""`GET /metrics`: a meeting with real media scraped and parsed by prometheus-client's own
parser, HTTP requests by route template, the event loop's lag, and who may read it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from client.signaling import SignalingClient
from signaling.app import create_app
from signaling.config import ConfigError, Settings, load_settings
from signaling.keys import LIVE
from signaling.metrics import METRICS, LoopLag, may_scrape
from tests.helpers import eventually
from tests.test_meeting_media import People, receives_all
from tests.test_signaling import new_meeting

REPO = Path(__file__).resolve().parents[1]
STATES = ("queued", "running")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Every sample by (name, labels), and every family's type by name."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def labelled(samples: Samples, name: str) -> Iterable[dict[str, str]]:
    return (dict(labels) for (n, labels) in samples if n == name)


async def scrape(api) -> Samples:
    response = await api.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples, _ = parse(await response.text())
    return samples


@pytest.fixture
async def people(api, cast):
    people = People(api, cast)
    yield people
    await asyncio.gather(*(p.close() for p in people.joined), return_exceptions=True)


@pytest.fixture
async def clients():
    opened: list[SignalingClient] = []
    yield opened
    await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_meeting_scraped(api, make_user, people, clients):
    host, guest = await make_user(name="Host"), await make_user(name="Guest")
    room = await new_meeting(api, host, enable_recording=True)
    a = await people(host, room)
    b = await people(guest, room)
    await eventually(lambda: receives_all(a, [b]) and receives_all(b, [a]), 20, "media both ways")
    # a second meeting where one person waits to be let in
    other_host, knocker = await make_user(), await make_user()
    other = await new_meeting(api, other_host, require_approval=True)
    watcher = SignalingClient(api.base_url, other, api.token_for(other_host))
    waiter = SignalingClient(api.base_url, other, api.token_for(knocker))
    clients += [watcher, waiter]
    await watcher.connect()
    await waiter.connect(allow_waiting=True)
    assert (await api.call("POST", f"/api/meetings/{room}/recording", user=host))[0] == 201

    started = time.perf_counter()
    response = await api.client.get("/metrics")
    scrape_ms = (time.perf_counter() - started) * 1000
    text = await response.text()
    samples, types = parse(text)
    started = time.perf_counter()
    live = list(api.app[METRICS].live.collect())
    loop_ms = (time.perf_counter() - started) * 1000
    print(f"scrape: {scrape_ms:.1f} ms over HTTP ({loop_ms:.2f} ms of it on the event loop),")
    print(f"  {len(text)} bytes, {len(samples)} samples ({len(live)} live families)")

    assert value(samples, "tertulia_rooms") == 2
    assert value(samples, "tertulia_participants") == 3  # a, b, and the other meeting's host
    assert value(samples, "tertulia_waiting") == 1
    assert value(samples, "tertulia_peer_connections") == 2
    assert value(samples, "tertulia_publications") == 4
    assert value(samples, "tertulia_forwarded_streams") == 4
    assert value(samples, "tertulia_recordings_active") == 1
    assert value(samples, "tertulia_pipe_streams", direction="out") == 0  # one worker
    assert value(samples, "tertulia_pipe_streams", direction="in") == 0
    assert value(samples, "tertulia_composition_jobs", state="queued") == 0
    assert value(samples, "tertulia_composition_jobs", state="running") == 0
    received = value(samples, "tertulia_media_received_packets_total")
    forwarded = value(samples, "tertulia_media_forwarded_packets_total")
    assert received > 0 and forwarded > 0
    assert value(samples, "tertulia_media_received_bytes_total") > received
    assert value(samples, "tertulia_media_forwarded_bytes_total") > forwarded
    assert value(samples, "tertulia_media_forwarded_frames_total") > 0
    assert value(samples, "tertulia_keyframe_requests_total") > 0
    assert value(samples, "tertulia_retransmissions_total") >= 0
    assert value(samples, "tertulia_retransmissions_refused_total") >= 0
    assert types["tertulia_media_received_packets"] == "counter"
    assert types["tertulia_rooms"] == "gauge"
    assert types["tertulia_event_loop_lag_seconds"] == "histogram"
    # the loop has been sampled all along (every 0.5 s), and is not stuck
    assert value(samples, "tertulia_event_loop_lag_seconds_count") >= 2
    assert 0 <= value(samples, "tertulia_event_loop_lag_last_seconds") < 1
    assert value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "tertulia_build_info", version="0.1.0") == 1

    # HTTP requests by route template: never the raw URL, whatever the room
    assert (
        value(
            samples,
            "tertulia_http_requests_total",
            method="POST",
            route="/api/meetings",
            status="201",
        )
        == 2
    )
    routes = {labels["route"] for labels in labelled(samples, "tertulia_http_requests_total")}
    assert not [r for r in routes if room in r or other in r]
    assert (
        value(
            samples,
            "tertulia_http_request_duration_seconds_count",
            method="POST",
            route="/api/meetings",
        )
        == 2
    )

    # media keeps flowing: the counters grow between scrapes
    await asyncio.sleep(1)
    later = await scrape(api)
    assert value(later, "tertulia_media_received_packets_total") > received + 50
    assert value(later, "tertulia_media_forwarded_packets_total") > forwarded + 50
    assert (
        value(later, "tertulia_http_requests_total", method="GET", route="/metrics", status="200")
        >= 1
    )

    # a signaling socket counts at its upgrade (101), its latency the handshake's
    socket = {"method": "GET", "route": "/api/meetings/{room_id}/ws"}
    assert value(later, "tertulia_http_requests_total", **socket, status="101") == 4
    assert value(later, "tertulia_http_request_duration_seconds_count", **socket) == 4
    assert value(later, "tertulia_http_request_duration_seconds_sum", **socket) < 4 * 5
    await b.leave()
    await eventually(lambda: len(api.app[LIVE].rooms[room].peers) == 1, 10, "b to leave")
    assert value(await scrape(api), "tertulia_participants") == 2

    # the recording stops: composed into one file by a job, queued then running, then done
    assert (await api.call("DELETE", f"/api/meetings/{room}/recording", user=host))[0] == 200
    seen: set[tuple[float, float]] = set()

    async def composed() -> bool:
        samples = await scrape(api)
        jobs = tuple(value(samples, "tertulia_composition_jobs", state=s) for s in STATES)
        seen.add(jobs)
        return (
            value(samples, "tertulia_recordings_active") == 0 and jobs == (0, 0) and len(seen) > 1
        )

    await eventually(composed, 60, "the composition to run and end", lambda: seen)
    assert seen <= {(0, 0), (1, 0), (0, 1)} and (0, 1) in seen


async def test_unmatched_paths_and_errors_are_counted_without_their_urls(api, make_user):
    assert (await api.client.get("/no/such/page/12345")).status == 404
    user = await make_user()
    status, _ = await api.call("GET", "/api/meetings/nonexistent-room", user=user)
    assert status == 404
    samples = await scrape(api)
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(samples, "tertulia_http_requests_total", **unmatched) == 1
    meeting = {"method": "GET", "route": "/api/meetings/{room_id}", "status": "404"}
    assert value(samples, "tertulia_http_requests_total", **meeting) == 1
    routes = {labels["route"] for labels in labelled(samples, "tertulia_http_requests_total")}
    assert not [r for r in routes if "12345" in r or "nonexistent" in r]


def mocked(remote: str, **headers: str):
    return make_mocked_request("GET", "/metrics", headers=headers).clone(remote=remote)


@pytest.mark.parametrize(
    ("remote", "headers", "allow", "proxies", "expected"),
    [
        ("127.0.0.1", {}, "", "", True),
        ("::1", {}, "", "", True),
        ("::ffff:127.0.0.1", {}, "", "", True),
        ("10.1.2.3", {}, "", "", False),
        ("10.1.2.3", {}, "10.1.0.0/16", "", True),
        ("10.2.0.1", {}, "10.1.0.0/16, 192.0.2.7", "", False),
        ("192.0.2.7", {}, "10.1.0.0/16, 192.0.2.7", "", True),
        ("2001:db8::5", {}, "2001:db8::/32", "", True),
        # a reverse proxy on this host that nobody said to trust: the client is unknown
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, "", "", False),
        ("127.0.0.1", {"X-Real-IP": "203.0.113.9"}, "", "", False),
        ("127.0.0.1", {"Forwarded": "for=203.0.113.9"}, "", "", False),
        # a trusted proxy: the client it names decides
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, "", "127.0.0.1", False),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, "203.0.113.0/24", "127.0.0.1", True),
        ("10.0.0.2", {"X-Forwarded-For": "127.0.0.1"}, "", "10.0.0.2", True),
        # someone else's X-Forwarded-For is only a claim
        ("203.0.113.9", {"X-Forwarded-For": "127.0.0.1"}, "", "", False),
        ("203.0.113.9", {"X-Forwarded-For": "10.1.2.3"}, "10.1.0.0/16", "", False),
    ],
)
def test_who_may_scrape(remote, headers, allow, proxies, expected):
    assert may_scrape(mocked(remote, **headers), allow, proxies) is expected


async def test_everyone_else_gets_the_plain_404(settings: Settings, database):
    """Over HTTP, behind a trusted proxy on loopback (as tests/test_http_hardening.py)."""
    trusted = settings.model_copy(
        update={"trusted_proxies": "127.0.0.1", "metrics_allow": "198.51.100.0/24"}
    )
    client = TestClient(TestServer(create_app(trusted, database), host="127.0.0.1"))
    await client.start_server()
    try:
        outsider = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        nothing = await client.get("/no-such-page")
        assert outsider.status == nothing.status == 404
        assert await outsider.text() == await nothing.text()
        allowed = await client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.20"})
        assert allowed.status == 200 and "tertulia_rooms" in await allowed.text()
        assert (await client.get("/metrics")).status == 200  # loopback itself
    finally:
        await client.close()


async def test_a_port_of_its_own(settings: Settings, database):
    """TERTULIA_METRICS_PORT: the same page on the worker's own port (workers share the main
    one), only that page there, with the same rule on who reads it."""
    from tests.test_cli import free_port

    port = free_port()
    own = settings.model_copy(update={"metrics_port": port})
    client = TestClient(TestServer(create_app(own, database), host="127.0.0.1"))
    await client.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as page:
                assert page.status == 200
                samples, _ = parse(await page.text())
            assert ("tertulia_rooms", frozenset()) in samples
            async with http.get(f"http://127.0.0.1:{port}/api/health") as other:
                assert other.status == 404
            outsider = {"X-Forwarded-For": "203.0.113.9"}  # not from a trusted proxy
            async with http.get(f"http://127.0.0.1:{port}/metrics", headers=outsider) as page:
                assert page.status == 404
    finally:
        await client.close()
    with pytest.raises(aiohttp.ClientConnectionError):  # closed with the app
        async with aiohttp.ClientSession() as http:
            await http.get(f"http://127.0.0.1:{port}/metrics")


def test_the_allow_list_setting_is_checked_at_start(monkeypatch):
    assert Settings(metrics_allow="10.0.0.0/8, ::1").metrics_allow
    monkeypatch.setenv("TERTULIA_METRICS_ALLOW", "10.0.0.0/8, intranet")
    with pytest.raises(ConfigError, match="TERTULIA_METRICS_ALLOW"):
        load_settings()


def test_metrics_are_not_in_the_api_description():
    from signaling.handlers import ROUTES

    assert not [op for op in ROUTES.operations if op.path == "/metrics"]


async def test_loop_lag_sees_a_blocked_loop():
    registry = CollectorRegistry()
    lag = LoopLag(registry, interval=0.02)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.05)
    asyncio.get_running_loop().call_soon(time.sleep, 0.2)  # a callback that holds the loop
    await asyncio.sleep(0.3)
    task.cancel()
    assert registry.get_sample_value("tertulia_event_loop_lag_seconds_sum") >= 0.15
    assert registry.get_sample_value("tertulia_event_loop_lag_seconds_count") >= 4
    # the stuck wake-up is in the upper buckets, and the last sample is after it
    over = registry.get_sample_value("tertulia_event_loop_lag_seconds_bucket", {"le": "0.1"})
    total = registry.get_sample_value("tertulia_event_loop_lag_seconds_bucket", {"le": "+Inf"})
    assert total - over >= 1
    assert registry.get_sample_value("tertulia_event_loop_lag_last_seconds") < 0.15


async def test_every_metric_documented_and_the_dashboard_asks_for_real_ones(api):
    await api.client.get("/api/health")  # so that the HTTP metrics have a series
    text = await (await api.client.get("/metrics")).text()
    _, types = parse(text)
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    documented = (REPO / "docs" / "operations.md").read_text()
    for name, kind in types.items():
        if name.startswith(("tertulia_", "process_")):
            shown = f"{name}_total" if kind == "counter" else name
            assert f"`{shown}" in documented, f"{shown} is not in docs/operations.md"
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = {name for e in exprs for name in re.findall(r"\b((?:tertulia|process)_\w+)\{", e)}
    assert len(asked) > 15 and asked <= exposed, asked - exposed
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"job", "instance"} <= variables
    assert all('job=~"$job", instance=~"$instance"' in e for e in exprs)
