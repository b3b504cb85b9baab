"""ICE answers for a server behind a 1:1 NAT."""

from __future__ import annotations

from sfu.ice import announce_address


def test_announced_address_rewrites_host_candidates_only():
    sdp = (
        "c=IN IP4 10.0.0.5\r\n"
        "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"
        "a=candidate:2 1 udp 1694498815 198.51.100.7 40001 typ srflx raddr 10.0.0.5 "
        "rport 40000\r\n"
    )
    out = announce_address(sdp, "203.0.113.9")
    assert "c=IN IP4 203.0.113.9" in out
    assert "203.0.113.9 40000 typ host" in out
    assert "198.51.100.7 40001 typ srflx" in out
    assert announce_address(sdp, None) == sdp
