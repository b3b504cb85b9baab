"""Media settings from the environment, for the SFU and for the browsers."""

from __future__ import annotations

from typing import Any

from sfu import IceServer, MediaSettings
from signaling.config import Settings


def _items(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def ice_servers(settings: Settings) -> tuple[IceServer, ...]:
    urls = _items(settings.ice_servers)
    if not urls:
        return ()
    return (
        IceServer(urls=urls, username=settings.ice_username, credential=settings.ice_credential),
    )


def media_settings(settings: Settings) -> MediaSettings:
    return MediaSettings(
        ice_host_addresses=_items(settings.ice_host_addresses),
        announced_address=settings.ice_announced_address,
        ice_servers=ice_servers(settings),
        video_codec=settings.video_codec,
        forwarding=settings.forwarding,
        default_last_n=settings.last_n,
        audio_streams=settings.audio_streams,
    )


def client_ice_servers(settings: Settings) -> list[dict[str, Any]]:
    """The `iceServers` a browser passes to RTCPeerConnection (none unless configured)."""
    result: list[dict[str, Any]] = []
    for server in ice_servers(settings):
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.username:
            entry |= {"username": server.username, "credential": server.credential or ""}
        result.append(entry)
    return result
