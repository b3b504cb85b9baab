"""Prometheus metrics at `GET /metrics` (text exposition format), per process.

Each app has its own `CollectorRegistry` (tests build many apps in one process). The media
server's and the meetings' numbers are read when Prometheus scrapes (`LiveCollector`), so
the hot path only bumps the plain integers it already keeps (`sfu.forwarding.Counters`).
HTTP answers are counted as they are sent, labelled by the route's template
(`/api/meetings/{room_id}`), never by the raw URL, so the number of series stays bounded.
The event loop's lag is sampled by a small task (`LoopLag`). Every metric is described in
docs/operations.md.

Only loopback and `TERTULIA_METRICS_ALLOW` may read the page; everyone else gets the same
404 as for any path that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from signaling.addresses import client_address, trusted_networks
from signaling.keys import JOBS, LIVE, RECORDINGS, SETTINGS
from signaling.version import VERSION

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LAG_INTERVAL_SECONDS = 0.5
# Few buckets: every (method, route) has its own histogram, and a scrape's cost grows with
# the number of lines it writes.
HTTP_BUCKETS = (0.005, 0.025, 0.1, 0.5, 2.5)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# `_created` samples (each series' start time) would double the lines of every labelled
# counter and histogram for little use; this process is Tertulia's own, so say it once here.
disable_created_metrics()
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A request that carries one of these came through a proxy: its peer is not its client.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")

# (name, help, key in MediaServer.stats()): cumulative counts since the process started
MEDIA_COUNTERS = (
    ("tertulia_media_received_packets", "RTP packets taken in from publishers", "packets_received"),
    ("tertulia_media_received_frames", "Frames taken in from publishers", "frames_received"),
    ("tertulia_media_received_bytes", "RTP payload bytes taken in", "bytes_received"),
    ("tertulia_media_forwarded_packets", "RTP packets sent to subscribers", "packets_forwarded"),
    ("tertulia_media_forwarded_frames", "Frames sent to subscribers", "frames_forwarded"),
    ("tertulia_media_forwarded_bytes", "RTP payload bytes sent to subscribers", "bytes_forwarded"),
    ("tertulia_retransmissions", "NACKed packets resent to subscribers", "retransmissions"),
    (
        "tertulia_retransmissions_refused",
        "NACKed packets not resent (repair limits, or too old)",
        "retransmissions_refused",
    ),
    (
        "tertulia_keyframe_requests",
        "Keyframe requests (PLI) sent to publishers",
        "keyframe_requests_sent",
    ),
)
# (name, help, key in MediaServer.stats()): how things are now
MEDIA_GAUGES = (
    ("tertulia_peer_connections", "Media peer connections not closed", "peer_connections"),
    (
        "tertulia_publications",
        "Tracks being published (microphones, cameras, screens)",
        "publications",
    ),
    ("tertulia_receive_slots", "Receive slots of all subscribers", "slots"),
    ("tertulia_forwarded_streams", "Receive slots carrying someone's track", "forwarded_streams"),
)


class LiveCollector(Collector):
    """Reads the meetings, the media server and the recording jobs at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        if LIVE not in app:  # not started yet, or stopped
            return
        live = app[LIVE]
        yield _gauge(
            "tertulia_rooms",
            "Meetings with someone in them or waiting to be let in",
            len(live.rooms),
        )
        yield _gauge(
            "tertulia_participants",
            "People in meetings (signaling sessions)",
            sum(len(room.peers) for room in live.rooms.values()),
        )
        yield _gauge(
            "tertulia_waiting",
            "People in waiting rooms, not yet let in",
            sum(len(room.waiting) for room in live.rooms.values()),
        )
        stats = live.media.stats()
        for name, text, key in MEDIA_GAUGES:
            yield _gauge(name, text, stats[key])
        for name, text, key in MEDIA_COUNTERS:
            yield CounterMetricFamily(name, text, value=stats[key])
        # Worker pipes (sfu.pipe) carry publications between the workers of a meeting.
        pipes = GaugeMetricFamily(
            "tertulia_pipe_streams", "Streams piped to or from other workers", labels=["direction"]
        )
        pipes.add_metric(["out"], stats.get("pipe_streams_out", 0))
        pipes.add_metric(["in"], stats.get("pipe_streams_in", 0))
        pipes.add_metric(["idle"], stats.get("pipe_streams_idle", 0))
        yield pipes
        if RECORDINGS in app:
            yield _gauge(
                "tertulia_recordings_active", "Meetings being recorded", len(app[RECORDINGS].active)
            )
        if JOBS in app:
            queued, running = app[JOBS].queued, int(app[JOBS].composing)
            jobs = GaugeMetricFamily(
                "tertulia_composition_jobs",
                "Recordings waiting for, or being composed into, one file",
                labels=["state"],
            )
            jobs.add_metric(["queued"], queued)
            jobs.add_metric(["running"], running)
            yield jobs


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


class LoopLag:
    """How late the event loop wakes a task that asked to sleep for a fixed interval: the
    time everything on this process waited behind whatever held the loop."""

    def __init__(self, registry: CollectorRegistry, interval: float = LAG_INTERVAL_SECONDS):
        self.interval = interval
        self.last = Gauge(
            "tertulia_event_loop_lag_last_seconds",
            "Event loop lag: the last sample",
            registry=registry,
        )
        self.histogram = Histogram(
            "tertulia_event_loop_lag_seconds",
            f"Event loop lag, sampled every {interval} s",
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    def record(self, lag: float) -> None:
        lag = max(lag, 0.0)
        self.last.set(lag)
        self.histogram.observe(lag)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.interval)
            self.record(loop.time() - asked - self.interval)


class Metrics:
    """One app's registry and the metrics it updates itself."""

    def __init__(self, app: web.Application) -> None:
        self.live = LiveCollector(app)  # read on the event loop, the rest anywhere
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, memory, fds
        Gauge(
            "tertulia_build_info", "This server's version", ["version"], registry=self.registry
        ).labels(VERSION).set(1)
        self.requests = Counter(
            "tertulia_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tertulia_http_request_duration_seconds",
            "Time from a request to its answer's head (WebSockets: to the upgrade)",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = LoopLag(self.registry)

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        method = request.method if request.method in METHODS else "other"
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    async def exposition(self) -> bytes:
        """The page. The live numbers are read here, on the event loop (that state is not
        thread-safe); the registry's own metrics are, and writing the page, most of a
        scrape's cost, is done in a thread: a scrape does not hold media up for its length."""
        live = list(self.live.collect())
        return await asyncio.to_thread(generate_latest, _Page(live, self.registry))


class _Page(Collector):
    def __init__(self, live: list[Metric], registry: CollectorRegistry) -> None:
        self.live, self.registry = live, registry

    def collect(self) -> Iterator[Metric]:
        yield from self.live
        yield from self.registry.collect()


METRICS = web.AppKey("metrics", Metrics)


STARTED = web.RequestKey("metrics_started", float)


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Note when the request arrived; it is counted when its answer is prepared (below)."""
    request[STARTED] = time.perf_counter()
    return await handler(request)


async def _count_answer(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer counts when its head is sent, whatever prepares it: a handler, an
    error raised past the middlewares, a WebSocket's upgrade (101, counted at once: its
    latency is the handshake's, not the meeting's). A request dropped unanswered does not."""
    started = request.get(STARTED)
    if started is not None:
        request.app[METRICS].observe(request, response.status, time.perf_counter() - started)


def may_scrape(request: web.Request, allow: str, trusted_proxies: str) -> bool:
    """Loopback, or an address in `TERTULIA_METRICS_ALLOW`. The client is the one
    `TERTULIA_TRUSTED_PROXIES` lets us see; a request forwarded by a proxy we do not trust
    has an unknown client, so it is not taken for loopback (a reverse proxy on this host
    must not open /metrics to the world)."""
    address = client_address(request, trusted_proxies)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in trusted_networks(allow)):
        return True
    proxied = any(name in request.headers for name in FORWARDING_HEADERS)
    return ip.is_loopback and not (proxied and address == request.remote)


async def metrics_page(request: web.Request) -> web.Response:
    return await _page(request, request.app)


async def _page(request: web.Request, app: web.Application) -> web.Response:
    settings = app[SETTINGS]
    if not may_scrape(request, settings.metrics_allow, settings.trusted_proxies):
        raise web.HTTPNotFound()
    body = await app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _own_port(app: web.Application) -> AsyncIterator[None]:
    """`TERTULIA_METRICS_PORT`: the same page on a port of this worker's own (workers share
    the main port, so a scrape there reaches whichever worker the kernel picks). Only
    `/metrics` is served there, with the same rule on who may read it."""
    settings = app[SETTINGS]
    if settings.metrics_port is None:
        yield
        return
    page = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return await _page(request, app)

    page.router.add_get("/metrics", handler)
    runner = web.AppRunner(page, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.metrics_port).start()
        log.info("metrics on %s:%d/metrics", settings.host, settings.metrics_port)
        yield
    finally:
        await runner.cleanup()


async def _loop_lag(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[METRICS].loop_lag.run(), name="event-loop-lag")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def install(app: web.Application) -> None:
    """The registry, the loop-lag sampler and `GET /metrics` (not part of the JSON API, so
    not in the route table nor in OpenAPI). Add `http_metrics` to the app's middlewares."""
    app[METRICS] = Metrics(app)
    app.cleanup_ctx.append(_loop_lag)
    app.cleanup_ctx.append(_own_port)
    app.on_response_prepare.append(_count_answer)
    app.router.add_get("/metrics", metrics_page)
