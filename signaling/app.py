"""The aiohttp application factory."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from sfu import MediaServer
from signaling import logs, metrics, security
from signaling.admission import WaitingRoom
from signaling.audit import AuditLog
from signaling.cluster import Cluster
from signaling.config import Settings, ensure_data_dir, jwt_secret
from signaling.drain import Drain
from signaling.errors import error_middleware
from signaling.handlers import ROUTES
from signaling.keys import (
    AUDIT,
    DATABASE,
    DRAIN,
    HANDSHAKES,
    JOBS,
    LIFECYCLE,
    LIVE,
    MEETINGS,
    MODERATION,
    RECORDINGS,
    SETTINGS,
    THROTTLE,
    TOKEN_REFUSALS,
    TOKENS,
    WAITING_ROOM,
)
from signaling.leader import WORKER_ID
from signaling.lifecycle import Lifecycle
from signaling.media_config import media_settings
from signaling.meetings import MeetingService
from signaling.moderation import Moderation
from signaling.realtime.limits import PendingHandshakes
from signaling.realtime.live import LiveMeetings
from signaling.recordings.control import RecordingControl
from signaling.recordings.handover import HandOver
from signaling.recordings.jobs import ComposeQueue
from signaling.throttle import RefusalSampler, SignInThrottle
from signaling.tokens import TokenService
from storage import meetings
from storage.database import Database

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def create_app(settings: Settings, database: Database | None = None) -> web.Application:
    """Build the app. A database may be handed in (tests); otherwise one is opened from settings.

    Migrations are not run here: `tertulia serve` runs them before the app starts.
    """
    app = web.Application(
        middlewares=[logs.request_ids, metrics.http_metrics, error_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[TOKENS] = TokenService(jwt_secret(settings), settings.token_ttl_seconds)
    app[THROTTLE] = SignInThrottle()
    app[TOKEN_REFUSALS] = RefusalSampler()
    app[HANDSHAKES] = PendingHandshakes()
    app.cleanup_ctx.append(_database_context(database))
    app.cleanup_ctx.append(_media_context)
    app.on_shutdown.append(_send_everyone_away)
    ROUTES.register(app)
    _add_web_client(app)
    metrics.install(app)
    logs.install(app)
    security.install(app, https=settings.resolved_public_url.startswith("https://"))
    return app


def _database_context(given: Database | None):  # type: ignore[no-untyped-def]
    async def database_context(app: web.Application) -> AsyncIterator[None]:
        ensure_data_dir(app[SETTINGS])
        database = given or Database(app[SETTINGS].resolved_database_url)
        app[DATABASE] = database
        if not app[SETTINGS].redis_url:  # one process: whatever is open was its last run's
            async with database.session() as session:
                if closed := await meetings.close_open_visits(session):
                    log.info("closed %d visits left open by the previous run", closed)
        yield
        if given is None:
            await database.dispose()

    return database_context


async def _media_context(app: web.Application) -> AsyncIterator[None]:
    """The SFU and the recording jobs live as long as the app; on the way out, recordings
    are stopped and stored, then every peer connection is closed."""
    settings, database = app[SETTINGS], app[DATABASE]
    media = MediaServer(media_settings(settings))
    cluster = (
        # this app's own id among the workers (two apps of one process are two workers)
        Cluster(
            settings.redis_url,
            f"{WORKER_ID}:{secrets.token_hex(3)}",
            prefix=settings.redis_prefix,
            lease_seconds=settings.worker_lease_seconds,
        )
        if settings.redis_url
        else None
    )
    if cluster is not None:
        await cluster.start()
    live = LiveMeetings(media, cluster, settings.video_codec)
    audit = AuditLog(database)
    jobs = ComposeQueue(settings, database)
    recordings = RecordingControl(database, live, jobs, audit)
    meetings_ = MeetingService(database, live, recordings, audit)
    waiting_room = WaitingRoom(
        database,
        live,
        meetings_,
        audit,
        limit=settings.waiting_room_limit,
        knock_retry_seconds=settings.knock_retry_seconds,
    )
    lifecycle = Lifecycle(database, live, meetings_, settings)
    app[LIVE], app[JOBS], app[RECORDINGS], app[MEETINGS] = live, jobs, recordings, meetings_
    app[AUDIT], app[WAITING_ROOM], app[LIFECYCLE] = audit, waiting_room, lifecycle
    app[MODERATION] = moderation = Moderation(database, live, meetings_, waiting_room, audit)
    handover = HandOver(recordings, audit)
    app[DRAIN] = Drain(live, handover, app[HANDSHAKES])
    # what other workers ask of this one: moderation of people held here, and recordings
    live.on_command = _commands(moderation, recordings, handover)
    await jobs.start()
    recordings.keep_leases()
    lifecycle.start()
    yield
    await lifecycle.close()
    await meetings_.shutdown()
    await recordings.stop_leases()
    await media.close()
    await jobs.close()
    if cluster is not None:
        await cluster.close()


def _commands(
    moderation: Moderation, recordings: RecordingControl, handover: HandOver
) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """What other workers ask of this one, by act: a decision's effect on a person this
    worker holds (moderation), or a recording this worker makes or could take over."""

    async def carry_out(room_id: str, command: dict[str, Any]) -> None:
        match command.get("act"):
            case "stop-recording":
                await recordings.command(room_id, command)
            case "take-over-recording":
                await handover.take(room_id, command)
            case _:
                await moderation.apply(room_id, command)

    return carry_out


async def _send_everyone_away(app: web.Application) -> None:
    """Runs once aiohttp has closed the listening socket, before it waits for the open
    WebSocket handlers to finish: the worker drains (signaling.drain)."""
    if DRAIN in app:
        await app[DRAIN].run()


def _add_web_client(app: web.Application) -> None:
    """Serve the browser client: pages by route, assets from web/."""
    index = WEB_DIR / "index.html"

    async def page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(index)

    app.router.add_get("/", page)
    app.router.add_get("/m/{room_id}", page)
    app.router.add_get("/recordings", page)
    app.router.add_get("/recordings/{recording_id}", page)
    app.router.add_get("/audit", page)
    app.router.add_static("/static/", WEB_DIR, show_index=False, follow_symlinks=False)
