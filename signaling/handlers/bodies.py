"""Parse request bodies and query strings into pydantic models (4xx on every failure)."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from signaling.errors import read_json

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: web.Request, model: type[M]) -> M:
    return model.model_validate(await read_json(request))


def parse_query(request: web.Request, model: type[M]) -> M:
    return model.model_validate(dict(request.query))


def json_model(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json(), status=status, content_type="application/json"
    )
