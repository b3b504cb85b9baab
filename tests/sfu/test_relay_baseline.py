"""The MediaRelay baseline of the capacity benchmark still works (so the benchmark can't rot)."""

from __future__ import annotations

import hashlib

from rtp import aiortc_hooks
from sfu import MediaServer, MediaSettings
from tests.helpers import eventually

from .client import LOOPBACK, ClientPeer


async def test_relay_baseline_decodes_and_re_encodes(clip, monkeypatch):
    # decoders_started is process-wide: give this test's decoders back when it ends
    monkeypatch.setattr(aiortc_hooks, "_decoders_started", aiortc_hooks._decoders_started)
    server = MediaServer(MediaSettings(ice_host_addresses=LOOPBACK, forwarding="relay"))
    a, b = ClientPeer(server, "room", "a", clip), ClientPeer(server, "room", "b", clip)
    try:
        await a.join()
        await b.join()

        def receiving() -> bool:
            for c, o in ((a, b), (b, a)):
                for source in ("camera", "microphone"):
                    probe = c.probe_for(o.pid, source)
                    if probe is None or probe.frames < 15:
                        return False
            return True

        await eventually(
            receiving, 20, "relayed media both ways", lambda: [a.describe(), b.describe()]
        )
        sample = a.probe_for("b", "camera").decode_sample()
        assert sample is not None and (sample.width, sample.height) == (640, 480)
        # Unlike encoded forwarding, the baseline decodes every published track.
        assert server.stats()["decoders_started"] >= 4
        # Re-encoded, so (unlike encoded forwarding) not the clip's bytes.
        sent = {hashlib.blake2b(d, digest_size=16).digest() for d, _, _ in clip.video}
        assert not set(a.probe_for("b", "camera").digests) & sent
    finally:
        await a.close()
        await b.close()
        await server.close()
