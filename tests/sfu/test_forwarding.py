"""Three participants exchange media through the SFU; nothing is decoded on the server."""

from __future__ import annotations

import asyncio
import threading

import aiortc.rtcrtpreceiver

from sfu import MediaServer, MediaSettings
from tests.helpers import eventually

from .client import LOOPBACK, person
from .media import Cast


async def test_three_participants_receive_each_other(server, cast, monkeypatch):
    created = []
    original = aiortc.rtcrtpreceiver.get_decoder
    monkeypatch.setattr(
        aiortc.rtcrtpreceiver, "get_decoder", lambda c: created.append(c) or original(c)
    )
    # three people who look and sound different: each slot must carry the one it names
    clients = [person(server, cast[i]) for i in range(3)]
    for c in clients:
        await c.join()

    def all_receive() -> bool:
        for c in clients:
            for other in clients:
                if other is c:
                    continue
                for source in ("microphone", "camera"):
                    probe = c.probe_for(other.pid, source)
                    if probe is None or probe.frames < 20:
                        return False
        return True

    await eventually(
        all_receive, 15, "everyone to receive everyone", lambda: [c.describe() for c in clients]
    )
    # Forwarded byte-identical and to the right place: every frame received on the slot of
    # `other` is one of `other`'s encoded frames (its own size and tone), the camera decodes
    # at `other`'s size and the audio carries `other`'s level.
    for c in clients:
        for other in clients:
            if other is c:
                continue
            for source in ("camera", "microphone"):
                cast.check(c.probe_for(other.pid, source), other.persona, source, where=c.pid)
    # no slot switched publishers, so no frame was cut short
    assert sum(p.incomplete for c in clients for p in c.probes.values()) == 0
    stats = server.stats()
    assert stats["decoders_started"] == 0
    assert created == []
    assert not [t for t in threading.enumerate() if t.name.endswith("-decoder")]
    assert stats["participants"] == 3 and stats["forwarded_streams"] == 12
    # payload bytes are counted where packets are; each packet goes to at most two others
    assert stats["bytes_received"] > stats["packets_received"] > 0
    assert 2 * stats["bytes_received"] >= stats["bytes_forwarded"] > stats["packets_forwarded"]
    for c in clients:
        await c.close()
    await asyncio.sleep(0)


async def test_h264_forwarding(pytestconfig):
    cast = Cast(pytestconfig.cache.mkdir("sfu-test-media"), "H264", people=2, screen=False)
    server = MediaServer(MediaSettings(ice_host_addresses=LOOPBACK, video_codec="H264"))
    a, b = person(server, cast[0], "a"), person(server, cast[1], "b")
    pairs = ((a, b, cast[1]), (b, a, cast[0]))  # receiver, publisher, publisher's persona
    try:
        await a.join()
        await b.join()
        await eventually(
            lambda: all(
                cast.carries(c.probe_for(o.pid, "camera"), p, "camera") for c, o, p in pairs
            ),
            10,
            "H.264 to decode both ways, each at its publisher's size",
            lambda: [cast.problems(c.probe_for(o.pid, "camera"), p, "camera") for c, o, p in pairs],
        )
        for c, o, p in pairs:
            for source in ("camera", "microphone"):
                cast.check(c.probe_for(o.pid, source), p, source, where=c.pid)
        assert "VP8" not in a.pc.remoteDescription.sdp
        assert server.stats()["decoders_started"] == 0
    finally:
        await a.close()
        await b.close()
        await server.close()
