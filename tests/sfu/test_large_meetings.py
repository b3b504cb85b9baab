"""Large meetings: each receiver gets what it asks for, the speaker takes the stage, audio is
capped at M, and a receiver's slots stay bounded however many people come and go.

Real aiortc peers over loopback. Every publisher is a persona of its own camera size, so a
receiver proves who it gets by decoding (see tests/sfu/media.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sfu import MediaServer, MediaSettings, ReceivePolicy
from tests.helpers import eventually

from .client import LOOPBACK, ClientPeer, person

QUIET, LOUD = 90, 20  # RFC 6464 levels (-dBov): below and above the voice threshold

log = logging.getLogger(__name__)


def viewer(server: MediaServer, clip, name: str = "viewer") -> ClientPeer:  # type: ignore[no-untyped-def]
    """A receiver that publishes nothing and starts without slots (the server asks for them)."""
    return ClientPeer(
        server,
        "room",
        name,
        clip,
        initial_audio_slots=0,
        initial_video_slots=0,
        publish_audio=False,
        publish_video=False,
    )


@asynccontextmanager
async def meeting(
    cast,
    clip,
    publishing: int,  # type: ignore[no-untyped-def]
) -> AsyncIterator[tuple[MediaServer, list[ClientPeer], ClientPeer]]:
    """A server (M = 3) with cast[0 .. publishing) joined, every microphone quiet (nobody
    speaks, so no speaker outranks what a receiver asks for), and a viewer joined after
    them; everyone closed at the end."""
    server = MediaServer(MediaSettings(ice_host_addresses=LOOPBACK, audio_streams=3))
    publishers = [person(server, cast[i]) for i in range(publishing)]
    watcher = viewer(server, clip)
    try:
        for p in publishers:
            p.media.audio_level = QUIET
            await p.join()
        await watcher.join()
        yield server, publishers, watcher
    finally:
        for p in [*publishers, watcher]:
            await p.close()
        await server.close()


def cameras(peer: ClientPeer) -> set[str]:
    return {s.participant_id for s in peer.slots if s.source == "camera" and s.participant_id}


def microphones(peer: ClientPeer) -> set[str]:
    return {s.participant_id for s in peer.slots if s.kind == "audio" and s.participant_id}


async def test_a_receiver_gets_exactly_the_tiles_it_shows_and_switches_without_renegotiating(
    cast, clip
):
    async with meeting(cast, clip, 8) as (server, _publishers, watcher):
        shown = [cast[2], cast[5], cast[7]]
        server.set_receive(
            "room", "viewer", ReceivePolicy(last_n=3, visible=tuple(p.name for p in shown))
        )

        def decodes(personas, since=None) -> bool:  # type: ignore[no-untyped-def]
            return all(
                cast.carries(watcher.probe_for(p.name, "camera"), p, "camera", since)
                for p in personas
            )

        await eventually(lambda: decodes(shown), 15, "the three shown cameras", watcher.describe)
        assert cameras(watcher) == {p.name for p in shown}, "something not shown is forwarded"
        offers, mlines = watcher.renegotiations, watcher.media.m_lines()

        # the next gallery page: other people, the same slots, no new offer
        shown = [cast[1], cast[3], cast[4]]
        switched = time.monotonic()
        server.set_receive(
            "room", "viewer", ReceivePolicy(last_n=3, visible=tuple(p.name for p in shown))
        )
        took = await eventually(
            lambda: decodes(shown, since=switched + 0.1),
            5,
            "the next page",
            lambda: [
                cast.problems(watcher.probe_for(p.name, "camera"), p, "camera", switched + 0.1)
                for p in shown
            ],
        )
        # These publishers do not answer keyframe requests: a new slot starts at their next
        # keyframe, up to one GOP (1 s) later. Browsers and the load bots answer at once;
        # how fast is bench.large's question (the switch p95), not a test's on a shared machine
        log.info("switching pages took %.2f s", took)
        assert cameras(watcher) == {p.name for p in shown}
        assert (watcher.renegotiations, watcher.media.m_lines()) == (offers, mlines)

        # a hidden tab: audio only
        server.set_receive("room", "viewer", ReceivePolicy(last_n=0))
        await eventually(lambda: not cameras(watcher), 5, "no video", watcher.describe)


async def test_the_speaker_takes_the_stage_and_audio_is_capped_at_m(cast, clip):
    async with meeting(cast, clip, 8) as (server, publishers, watcher):
        server.set_receive("room", "viewer", ReceivePolicy(last_n=1))  # a speaker view
        await eventually(lambda: len(cameras(watcher)) == 1, 15, "one camera", watcher.describe)
        # a microphone is heard until its first levels say it is silent (a client that sends
        # no levels is never muted that way); then nobody here is
        await eventually(lambda: not microphones(watcher), 5, "silence", watcher.describe)

        for speaker in (publishers[6], publishers[3]):
            for p in publishers:
                p.media.audio_level = LOUD if p is speaker else QUIET
            persona = cast[publishers.index(speaker)]
            took = await eventually(
                lambda s=speaker: cameras(watcher) == {s.pid},
                10,
                f"{speaker.pid} on the stage",
                watcher.describe,
            )
            # how fast is a benchmark's question (bench.large: the switch p95), not a test's:
            # this machine is shared, and CI saw 1.0-4.0 s here under load
            log.info("%s took %.2f s to reach the stage", speaker.pid, took)
            switched = time.monotonic()
            await eventually(
                lambda s=speaker, t=switched, pe=persona: cast.carries(
                    watcher.probe_for(s.pid, "camera"), pe, "camera", t + 0.1
                ),
                5,
                f"{speaker.pid}'s camera decoding",
                lambda s=speaker, t=switched, pe=persona: cast.problems(
                    watcher.probe_for(s.pid, "camera"), pe, "camera", t + 0.1
                ),
            )
            assert watcher.speaker_events[-1][0] == speaker.pid
            # the speaker is heard (the one before may still be, for a few seconds)
            assert speaker.pid in microphones(watcher)

        # everyone talks at once: the receiver hears at most M of them
        for p in publishers:
            p.media.audio_level = LOUD
        await eventually(
            lambda: len(microphones(watcher)) == 3, 10, "three microphones", watcher.describe
        )
        await asyncio.sleep(1.0)
        assert len(microphones(watcher)) == 3
        assert sum(1 for s in watcher.slots if s.kind == "audio") <= 3 + 1  # M, and a spare


async def test_slots_stay_bounded_after_30_joins_and_leaves(cast, clip):
    async with meeting(cast, clip, 2) as (server, _stayers, watcher):
        server.set_receive("room", "viewer", ReceivePolicy(last_n=2))
        for i in range(30):
            guest = person(server, cast[2 + i % 6], f"guest{i}")
            guest.media.audio_level = LOUD
            await guest.join()
            await eventually(lambda g=guest: g.pid in microphones(watcher), 5, f"{guest.pid} heard")
            await guest.close()
        await eventually(
            lambda: not any((s.participant_id or "").startswith("guest") for s in watcher.slots),
            5,
            "the last guest's slots freed",
            watcher.describe,
        )
        # it publishes nothing: its m-lines are receive slots, bounded by last_n and M
        assert watcher.media.m_lines() <= 2 + 3, watcher.describe()
