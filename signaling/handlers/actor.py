"""Who is asking, for the use cases and the audit trail: the user and their address."""

from __future__ import annotations

from aiohttp import web

from signaling.addresses import client_address
from signaling.audit import Actor
from signaling.keys import SETTINGS
from storage.models import User


def actor_of(request: web.Request, user: User) -> Actor:
    """The signed-in user of a REST request, with the address it came from."""
    return Actor(user, client_address(request, request.app[SETTINGS].trusted_proxies))
