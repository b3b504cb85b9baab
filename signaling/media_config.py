"""Media settings from the environment, for the SFU and for the browsers.

TURN credentials follow the TURN REST API's shared-secret scheme, as coturn implements it
with `use-auth-secret` and `static-auth-secret`: the username is `<expiry unix time>:<user
id>` and the password is base64(HMAC-SHA1(secret, username)). coturn recomputes the password
from the username and refuses a username whose time has passed, so each participant gets
credentials of their own that stop working by themselves (docs/deploy.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from sfu import IceServer, MediaSettings
from signaling.config import ConfigError, Settings


def _items(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def ice_servers(settings: Settings) -> tuple[IceServer, ...]:
    urls = _items(settings.ice_servers)
    if not urls:
        return ()
    return (
        IceServer(urls=urls, username=settings.ice_username, credential=settings.ice_credential),
    )


def turn_urls(settings: Settings) -> tuple[str, ...]:
    """The TURN server's URLs handed out with per-participant credentials; ConfigError when
    they cannot work (no shared secret, or not a turn:/turns:/stun: URL)."""
    urls = _items(settings.turn_urls)
    for url in urls:
        if not url.startswith(("turn:", "turns:", "stun:")):
            raise ConfigError(
                f"invalid setting TERTULIA_TURN_URLS: {url!r} is not a turn:, turns: or stun: URL"
            )
    if urls and not settings.turn_secret:
        raise ConfigError("invalid setting TERTULIA_TURN_SECRET: required with TERTULIA_TURN_URLS")
    return urls


def turn_credentials(
    secret: str, user_id: int | str, ttl_seconds: int, now: float | None = None
) -> tuple[str, str]:
    """(username, credential) valid for `ttl_seconds` from `now` (TURN REST API scheme)."""
    expiry = int(time.time() if now is None else now) + ttl_seconds
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def media_settings(settings: Settings) -> MediaSettings:
    turn_urls(settings)  # checked at start-up, not at the first join
    port_range = None
    if settings.ice_port_min is not None and settings.ice_port_max is not None:
        port_range = (settings.ice_port_min, settings.ice_port_max)
    return MediaSettings(
        ice_host_addresses=_items(settings.ice_host_addresses),
        announced_address=settings.ice_announced_address,
        ice_port_range=port_range,
        ice_servers=ice_servers(settings),
        video_codec=settings.video_codec,
        forwarding=settings.forwarding,
        default_last_n=settings.last_n,
        audio_streams=settings.audio_streams,
        pipe_bind_address=settings.pipe_address,
        pipe_announced_address=settings.pipe_announced_address,
    )


def client_ice_servers(
    settings: Settings, user_id: int | str | None = None, now: float | None = None
) -> list[dict[str, Any]]:
    """The `iceServers` a browser passes to RTCPeerConnection: the configured STUN/TURN
    servers, and the TURN server with credentials of this user's own (none unless
    configured). The server itself does not use the TURN server (docs/deploy.md)."""
    result: list[dict[str, Any]] = []
    for server in ice_servers(settings):
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.username:
            entry |= {"username": server.username, "credential": server.credential or ""}
        result.append(entry)
    urls = turn_urls(settings)
    if urls and settings.turn_secret and user_id is not None:
        username, credential = turn_credentials(
            settings.turn_secret, user_id, settings.turn_ttl_seconds, now
        )
        result.append({"urls": list(urls), "username": username, "credential": credential})
    return result
