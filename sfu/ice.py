"""ICE configuration: which servers aiortc uses, where it binds, what the answer announces."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterator

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

from rtp import aiortc_hooks

from .api import MediaSettings, NegotiationError

logger = logging.getLogger(__name__)


def rtc_configuration(settings: MediaSettings) -> RTCConfiguration:
    """Only the configured ICE servers (aiortc's default public STUN server is never used).

    max-bundle: with aiortc's default "balanced" policy, a remote offer that creates two
    transceivers of one kind leaves the second on a transport that BUNDLE then discards, so
    that m-line never sends (measured: the first video receive slot stayed silent).
    """
    return RTCConfiguration(
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in settings.ice_servers
        ],
    )


def announce_address(sdp_text: str, announced: str | None) -> str:
    """Put the public address of a 1:1 NAT into the host candidates and c= lines.

    The server still binds its local addresses; the NAT forwards the announced
    address:port to them, as mediasoup's `announcedIp` does.
    """
    if not announced:
        return sdp_text
    family = "IP6" if ipaddress.ip_address(announced).version == 6 else "IP4"
    lines = []
    for line in sdp_text.split("\r\n"):
        if line.startswith("a=candidate:"):
            bits = line.split(" ")
            if len(bits) > 7 and bits[6] == "typ" and bits[7] == "host":
                bits[4] = announced
                line = " ".join(bits)
        elif line.startswith("c=IN "):
            line = f"c=IN {family} {announced}"
        lines.append(line)
    return "\r\n".join(lines)


def reserve_host_ports(settings: MediaSettings) -> aiortc_hooks.IceSockets | None:
    """With a port range, bind this peer connection's host candidates' sockets now, before
    the offer touches anything: a full range refuses the offer (`no-media-ports`) and
    leaves the participant as it was. None without a range (aioice picks ports)."""
    if settings.ice_port_range is None:
        return None
    try:
        return aiortc_hooks.IceSockets.reserve(settings.ice_host_addresses, settings.ice_port_range)
    except aiortc_hooks.IcePortsExhausted as exc:
        low, high = settings.ice_port_range
        logger.warning("%s: an offer is refused (no-media-ports)", exc)
        raise NegotiationError(
            "no-media-ports",
            f"the server has no free UDP port for media ({low}-{high}); try again later",
        ) from exc


@contextlib.contextmanager
def gathering(settings: MediaSettings, reserved: aiortc_hooks.IceSockets | None) -> Iterator[None]:
    """Around `setLocalDescription`: gather on the configured host addresses, and on the
    reserved sockets when there are any (the caller closes what is left of them)."""
    with (
        aiortc_hooks.ice_host_addresses(settings.ice_host_addresses),
        aiortc_hooks.ice_host_sockets(reserved),
    ):
        yield
