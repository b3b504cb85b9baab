"""Keyframes: late subscribers start at one; subscribers' PLIs reach the publisher, limited."""

from __future__ import annotations

import asyncio

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
