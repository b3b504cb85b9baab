"""ICE configuration: which servers aiortc uses and which address the answer announces."""

from __future__ import annotations

import ipaddress

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

from .api import MediaSettings


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
