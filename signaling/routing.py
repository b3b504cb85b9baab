"""A route table that both registers handlers and describes them for OpenAPI.

Keeping the description next to the registration is what keeps /api/openapi.json true.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: bool = True
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    content_type: str = "application/json"
    headers: tuple[dict[str, Any], ...] = ()  # OpenAPI header parameter objects


@dataclass
class RouteTable:
    operations: list[Operation] = field(default_factory=list)

    def route(self, method: str, path: str, **meta: object) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.operations.append(Operation(method, path, handler, **meta))  # type: ignore[arg-type]
            return handler

        return decorate

    def register(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, op.path, op.handler)
