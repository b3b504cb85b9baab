"""Three participants exchange media through the SFU; nothing is decoded on the server."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import aiortc.rtcrtpreceiver

from sfu import MediaServer, MediaSettings
from sfu.synthetic import load_clip

from .client import LOOPBACK, MIC_LEVEL, ClientPeer
from .conftest import wait_for


async def test_three_participants_receive_each_other(server, clip, monkeypatch):
    created = []
    original = aiortc.rtcrtpreceiver.get_decoder
    monkeypatch.setattr(
        aiortc.rtcrtpreceiver, "get_decoder", lambda c: created.append(c) or original(c)
    )
    clients = [ClientPeer(server, "room", f"p{i}", clip) for i in range(3)]
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

    await wait_for(
        all_receive, 15, "everyone to receive everyone", lambda: [c.describe() for c in clients]
    )
    for c in clients:
        for other in clients:
            if other is c:
                continue
            sample = c.probe_for(other.pid, "camera").decode_sample()
            assert sample is not None, f"{c.pid} got no decodable video from {other.pid}"
            assert (sample.width, sample.height) == (640, 480)
            levels = set(c.probe_for(other.pid, "microphone").audio_levels)
            assert levels == {MIC_LEVEL}, "ssrc-audio-level not carried across"
    # forwarded byte-identical: every received frame is one of the clip's encoded frames
    sent = {hashlib.blake2b(d, digest_size=16).digest() for d, _, _ in clip.video}
    sent_audio = {hashlib.blake2b(d, digest_size=16).digest() for d, _ in clip.audio}
    for c in clients:
        for other in clients:
            if other is not c:
                assert set(c.probe_for(other.pid, "camera").digests) <= sent
                assert set(c.probe_for(other.pid, "microphone").digests) <= sent_audio
    stats = server.stats()
    assert stats["decoders_started"] == 0
    assert created == []
    assert not [t for t in threading.enumerate() if t.name.endswith("-decoder")]
    assert stats["participants"] == 3 and stats["forwarded_streams"] == 12
    for c in clients:
        await c.close()
    await asyncio.sleep(0)


async def test_h264_forwarding(pytestconfig):
    clip = load_clip(pytestconfig.cache.mkdir("sfu-test-media"), "H264")
    server = MediaServer(MediaSettings(ice_host_addresses=LOOPBACK, video_codec="H264"))
    a, b = ClientPeer(server, "room", "a", clip), ClientPeer(server, "room", "b", clip)
    try:
        await a.join()
        await b.join()

        def decoded() -> bool:
            for c, o in ((a, b), (b, a)):
                probe = c.probe_for(o.pid, "camera")
                sample = probe.decode_sample() if probe else None
                if sample is None or (sample.width, sample.height) != (640, 480):
                    return False
            return True

        await wait_for(
            decoded, 10, "H.264 to decode both ways", lambda: [a.describe(), b.describe()]
        )
        assert "VP8" not in a.pc.remoteDescription.sdp
        assert server.stats()["decoders_started"] == 0
    finally:
        await a.close()
        await b.close()
        await server.close()
