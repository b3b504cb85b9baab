"""Packet loss recovery, slot reuse over join/leave cycles, bad offers, hooks self-check."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver

from rtp import aiortc_hooks, repair
from rtp.aiortc_hooks import AiortcCompatibilityError
from sfu import NegotiationError
from tests.helpers import eventually

from .client import LOOPBACK, ClientPeer, person
from .test_lifecycle import _mesh

logger = logging.getLogger(__name__)


async def test_five_percent_loss_keeps_frame_rate(server, clip):
    publishers = [ClientPeer(server, "room", f"pub{i}", clip) for i in range(2)]
    viewer = ClientPeer(
        server,
        "room",
        "viewer",
        clip,
        initial_video_slots=2,
        initial_audio_slots=2,
        publish_audio=False,
        publish_video=False,
    )
    for c in [*publishers, viewer]:
        await c.join()

    def flowing() -> bool:
        probes = [viewer.probe_for(p.pid, "camera") for p in publishers]
        return all(p is not None and p.keyframes > 0 and p.frames > 10 for p in probes)

    await eventually(flowing, 10, "viewer to receive both cameras", viewer.describe)
    dropped = aiortc_hooks.inject_rtp_loss(viewer.pc, 0.05)
    await asyncio.sleep(0.5)
    probes = [viewer.probe_for(p.pid, "camera") for p in publishers]
    t0 = time.monotonic()
    window = 4.0
    await asyncio.sleep(window)
    rates = [p.frames_since(t0) / window for p in probes]
    logger.info("frame rates under 5%% loss: %s fps, %d packets dropped", rates, dropped())
    assert dropped() > 30, "loss injection did not drop packets"
    for rate in rates:
        assert rate >= 27.0, f"frame rates under 5% loss: {rates} (sent: 30 fps)"
    for c in [*publishers, viewer]:
        await c.close()


HOLD_S = 1.0  # each guest stays at least this long after it is heard and seen
HEARD_WITHIN_S = 1.0  # from join() returning to the guest's first audio and video frame


async def test_join_leave_cycles_reuse_slots(server, cast):
    """20 guests come and go through the same two slots of a stayer; each is heard and seen
    within a second of joining, on media that is its own (guests alternate between two
    personas), and stays a second: a reused slot that resumed at a stale sequence number
    would hold the next guest back for as long as the previous one was on air."""
    stayer = person(server, cast[0], "stayer")
    await stayer.join()
    delays: list[tuple[float, float]] = []
    for i in range(20):
        guest = person(server, cast[1 + i % 2], f"guest{i}")
        assert guest.persona is not None
        await guest.join()
        joined = time.monotonic()

        def on_air(g: ClientPeer = guest, t0: float = joined) -> bool:
            return all(
                (probe := stayer.probe_for(g.pid, source)) is not None
                and probe.frames_since(t0) >= 5
                for source in ("microphone", "camera")
            )

        await eventually(on_air, 5, f"stayer to hear and see guest{i}", stayer.describe)
        audio = stayer.probe_for(guest.pid, "microphone")
        video = stayer.probe_for(guest.pid, "camera")
        assert audio is not None and video is not None
        heard, seen = (p.first_frame_since(joined) for p in (audio, video))
        assert heard is not None and seen is not None
        delays.append((heard - joined, seen - joined))
        logger.info("guest%d heard after %.3fs, seen after %.3fs", i, *delays[-1])
        assert max(delays[-1]) <= HEARD_WITHIN_S, (
            f"guest{i} heard/seen {delays[-1][0]:.2f}s/{delays[-1][1]:.2f}s after joining"
            f" (all so far: {[(round(a, 2), round(v, 2)) for a, v in delays]})"
        )
        await asyncio.sleep(max(0.0, max(heard, seen) + HOLD_S - time.monotonic()))
        for probe, source in ((audio, "microphone"), (video, "camera")):
            cast.check(probe, guest.persona, source, since=joined, where=f"stayer, guest{i}")
        assert video.incomplete <= i, "more frames cut short than publisher switches"
        await guest.close()
        await eventually(lambda: stayer.receiving_from() == set(), 5, "slots to free")
    mlines = stayer.pc.localDescription.sdp.count("\nm=")
    # 2 published m-lines + 1 audio and 1 video receive slot, reused 20 times
    assert mlines <= 6, f"{mlines} m-lines after 20 join/leave cycles"
    assert server.stats()["slots"] <= 4
    await stayer.close()


async def _raw_offer(video_codec_rewrite: str | None = None) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", "recvonly")
    pc.addTransceiver("video", "recvonly")
    offer = await pc.createOffer()
    with aiortc_hooks.ice_host_addresses(LOOPBACK):
        await pc.setLocalDescription(offer)
    sdp = pc.localDescription.sdp
    if video_codec_rewrite:
        sdp = sdp.replace("VP8/90000", f"{video_codec_rewrite}/90000").replace(
            "H264/90000", f"{video_codec_rewrite}/90000"
        )
    return pc, sdp


class _NoEvents:
    async def renegotiate(
        self, audio_slots: int, video_slots: int, audio_total: int, video_total: int
    ) -> None:
        pass

    async def slots_changed(self, slots: list) -> None:
        pass

    async def connection_lost(self, reason: str) -> None:
        pass

    async def speakers_changed(self, dominant: str | None, recent: list) -> None:
        pass


async def test_bad_offers_fail_cleanly_and_spare_others(server, cast):
    clients = await _mesh(server, cast, 2)
    await server.join("room", "bad", _NoEvents())

    with pytest.raises(NegotiationError) as err:
        await server.negotiate("room", "bad", "this is not SDP", {})
    assert err.value.code == "bad-sdp"

    pc, vp9_only = await _raw_offer("VP9")
    with pytest.raises(NegotiationError) as err:
        await server.negotiate("room", "bad", vp9_only, {})
    assert err.value.code == "no-common-codec" and "VP9" in err.value.message
    await pc.close()

    pc, offer = await _raw_offer()
    with pytest.raises(NegotiationError) as err:
        await server.negotiate("room", "bad", offer, {"1": "microphone"})
    assert err.value.code == "bad-track-map"
    with pytest.raises(NegotiationError) as err:
        await server.negotiate("room", "nobody", offer, {})
    assert err.value.code == "not-joined"
    await pc.close()

    before = [c.probe_for(o.pid, "camera").frames for c, o in (clients, clients[::-1])]
    await asyncio.sleep(0.5)
    after = [c.probe_for(o.pid, "camera").frames for c, o in (clients, clients[::-1])]
    assert all(a >= b + 10 for a, b in zip(after, before, strict=True)), (before, after)
    await server.leave("room", "bad")
    for c in clients:
        await c.close()


def test_self_check_names_missing_attribute(monkeypatch):
    aiortc_hooks.self_check()
    monkeypatch.delattr(RTCRtpReceiver, "_send_rtcp_pli")
    with pytest.raises(AiortcCompatibilityError) as err:
        aiortc_hooks.self_check()
    assert "RTCRtpReceiver._send_rtcp_pli" in str(err.value)
    assert "aiortc 1.16.0" in str(err.value)


def test_self_check_notices_renamed_private_state(monkeypatch):
    def init(self, kind, transport):  # an aiortc whose receiver renamed its jitter buffer
        self._RTCRtpReceiver__buffer = None

    monkeypatch.setattr(RTCRtpReceiver, "__init__", init)
    with pytest.raises(AiortcCompatibilityError, match="_RTCRtpReceiver__jitter_buffer"):
        aiortc_hooks.self_check()


async def test_repair_traffic_is_bounded_under_heavy_loss(server, clip):
    """A subscriber losing 40 % gets NACKs answered only within the resend limits."""
    publisher = ClientPeer(server, "room", "pub", clip)
    viewer = ClientPeer(
        server,
        "room",
        "viewer",
        clip,
        initial_video_slots=1,
        initial_audio_slots=1,
        publish_audio=False,
        publish_video=False,
    )
    for c in (publisher, viewer):
        await c.join()

    def flowing() -> bool:
        probe = viewer.probe_for(publisher.pid, "camera")
        return probe is not None and probe.frames > 10

    await eventually(flowing, 10, "viewer to receive the camera", viewer.describe)
    before = server.stats()
    aiortc_hooks.inject_rtp_loss(viewer.pc, 0.4)
    await asyncio.sleep(3.0)
    slots = server._rooms["room"].participants[viewer.pid].slots.values()  # the viewer's ports
    ports = [slot.port for slot in slots if getattr(slot, "port", None) is not None]
    sent = sum(slot.packets_out for slot in slots)
    resent = sum(port.resent for port in ports)
    refused = sum(port.resends_refused for port in ports)
    logger.info("40%% loss: %d packets sent, %d resent, %d refused", sent, resent, refused)
    assert resent > 0, "NACKs were not answered at all"
    assert refused > 0, "every NACK was answered: the limits did not apply"
    limit = repair.RESEND_SHARE * sent + repair.RESEND_BURST * len(ports)
    assert resent <= limit, f"{resent} retransmissions for {sent} packets"
    after = server.stats()
    assert after["retransmissions"] - before["retransmissions"] >= resent
    assert after["packets_forwarded"] > before["packets_forwarded"]
    for c in (publisher, viewer):
        await c.close()
