"""The address a request comes from, for throttling and per-address limits.

Behind a reverse proxy every request comes from the proxy; when the peer is one of
`TERTULIA_TRUSTED_PROXIES`, the client is the last `X-Forwarded-For` hop that is not itself
a trusted proxy. Anyone else's `X-Forwarded-For` is ignored: it is only a claim.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(setting: str) -> tuple[Network, ...]:
    """Comma-separated addresses or networks (`TERTULIA_TRUSTED_PROXIES`, also
    `TERTULIA_METRICS_ALLOW`), parsed once."""
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False)
        for item in setting.split(",")
        if item.strip()
    )


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: web.Request, trusted_proxies: str) -> str:
    peer = request.remote or "unknown"
    networks = trusted_networks(trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a malformed header from the proxy: count the proxy
    return peer
