"""Keyframes: late subscribers start at one; subscribers' PLIs reach the publisher, limited."""

from __future__ import annotations

import asyncio
import time

from rtp import aiortc_hooks
from tests.helpers import eventually

from .client import ClientPeer


async def test_late_subscriber_starts_at_keyframe_and_pli_is_forwarded(server, clip):
    publisher = ClientPeer(
        server, "room", "pub", clip, initial_audio_slots=0, initial_video_slots=0
    )
    await publisher.join()
    keyframe_requests = 0

    def count_request() -> None:
        nonlocal keyframe_requests
        keyframe_requests += 1

    camera_sender = publisher.media._senders["camera"].sender
    camera_sender._send_keyframe = count_request  # what aiortc calls on an incoming PLI/FIR
    await asyncio.sleep(1.3)  # join mid-GOP: the clip's keyframes are 1 s apart
    viewer = ClientPeer(
        server,
        "room",
        "viewer",
        clip,
        publish_audio=False,
        publish_video=False,
        initial_audio_slots=1,
        initial_video_slots=1,
    )
    try:
        await viewer.join()
        await eventually(
            lambda: (viewer.probe_for("pub", "camera") or _Nothing).frames >= 5,
            10,
            "the viewer to receive the camera",
            viewer.describe,
        )
        probe = viewer.probe_for("pub", "camera")
        assert probe is not None and probe.first_frame_was_keyframe is True
        assert keyframe_requests >= 1, "a new subscriber should trigger a PLI upstream"

        before = keyframe_requests
        assert probe.ssrc is not None
        for _ in range(20):  # a subscriber asking for a keyframe 20 times in one second
            await aiortc_hooks.send_pli(probe.receiver, probe.ssrc)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.7)
        forwarded = keyframe_requests - before
        assert 1 <= forwarded <= 4, f"{forwarded} PLIs reached the publisher (limit 1 per 0.5 s)"
    finally:
        await viewer.close()
        await publisher.close()


class _Nothing:
    frames = 0


async def test_new_slots_send_once_the_answer_is_applied(server, clip):
    """A new receive slot sends nothing until the client says it applied the answer (before
    that, a keyframe could reach a receiver that does not know the m-line yet and arrive
    broken); a client that never says it gets its slots after the grace period."""
    from sfu.participant import ANSWER_APPLY_GRACE_S

    publisher = ClientPeer(
        server, "room", "pub", clip, initial_audio_slots=0, initial_video_slots=0
    )
    await publisher.join()

    def viewer(pid: str) -> ClientPeer:
        peer = ClientPeer(
            server,
            "room",
            pid,
            clip,
            publish_audio=False,
            publish_video=False,
            initial_audio_slots=1,
            initial_video_slots=1,
        )
        peer.media._answer_applied = None  # this client does not send `answer-applied`
        return peer

    silent, confirming = viewer("silent"), viewer("confirming")
    try:
        started = time.monotonic()
        await silent.join()
        await confirming.join()
        slots = [
            slot
            for pid in ("silent", "confirming")
            for slot in server._rooms["room"].participants[pid].slots.values()
        ]
        assert len(slots) == 4 and all(slot.held for slot in slots)
        await asyncio.sleep(0.3)  # the publisher keeps sending meanwhile
        if time.monotonic() - started < ANSWER_APPLY_GRACE_S:  # (a stalled loop proves nothing)
            assert sum(slot.packets_out for slot in slots) == 0
        server.answer_applied("room", "confirming")
        for peer in (confirming, silent):  # the silent one after the grace period
            await eventually(
                lambda peer=peer: (peer.probe_for("pub", "camera") or _Nothing).frames >= 5,
                10,
                f"{peer.pid} to receive the camera",
                peer.describe,
            )
            probe = peer.probe_for("pub", "camera")
            assert probe is not None and probe.first_frame_was_keyframe is True
            assert probe.misrouted == 0
    finally:
        await confirming.close()
        await silent.close()
        await publisher.close()
