"""Health, media counters and the API description."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from signaling.auth import current_user_who_may
from signaling.handlers.bodies import json_model
from signaling.handlers.table import ROUTES
from signaling.keys import DATABASE, LIVE
from signaling.openapi import build_openapi
from signaling.permissions import Action
from signaling.schemas import HealthResponse, MediaStats
from signaling.version import VERSION

log = logging.getLogger(__name__)


@ROUTES.route(
    "GET",
    "/api/health",
    summary="Database reachable, version",
    tag="system",
    auth=False,
    response=HealthResponse,
    errors=(503,),
)
async def health(request: web.Request) -> web.Response:
    try:
        await request.app[DATABASE].ping()
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check: database unreachable: %s", exc)
        body = HealthResponse(status="degraded", database="unreachable", version=VERSION)
        return json_model(body, status=503)
    return json_model(HealthResponse(status="ok", database="ok", version=VERSION))


@ROUTES.route(
    "GET",
    "/api/admin/media-stats",
    summary="Media server counters: rooms, streams, packets forwarded, repairs (admin)",
    tag="system",
    response=MediaStats,
)
async def media_stats(request: web.Request) -> web.Response:
    """For operators and the capacity benchmark (server-side packet counts)."""
    await current_user_who_may(request, Action.SEE_MEDIA_STATS)
    return json_model(MediaStats.model_validate(request.app[LIVE].media.stats()))


@ROUTES.route(
    "GET",
    "/api/openapi.json",
    summary="This API's OpenAPI 3.1 description",
    tag="system",
    auth=False,
)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(ROUTES, VERSION))
