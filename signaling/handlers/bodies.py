"""Parse request bodies, query strings and path parameters (4xx on every failure)."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from signaling.errors import ApiError, read_json
from signaling.identifiers import is_room_id, parse_id

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: web.Request, model: type[M]) -> M:
    return model.model_validate(await read_json(request))


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model`; a parameter given twice is refused (which one would
    count is a guess, and guesses are how filters get bypassed)."""
    names = [name for name, _ in request.query.items()]  # keys() lists each name once
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        details = [{"field": name, "message": "given more than once"} for name in repeated]
        raise ApiError(422, "validation-failed", "the request is not valid", details)
    return model.model_validate(dict(request.query))


def json_model(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json(), status=status, content_type="application/json"
    )


def path_id(request: web.Request, name: str, code: str, what: str) -> int:
    """The integer path parameter `name`; 404 `code` when it cannot name anything."""
    value = parse_id(request.match_info[name])
    if value is None:
        raise ApiError(404, code, f"no such {what}")
    return value


def path_room_id(request: web.Request) -> str:
    """The `room_id` path parameter; 404 `meeting-not-found` when it cannot be a room id."""
    room_id = request.match_info["room_id"]
    if not is_room_id(room_id):
        raise ApiError(404, "meeting-not-found", "no meeting has this id")
    return room_id
