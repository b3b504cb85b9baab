"""`renegotiate` is idempotent: slots asked for once are not asked for again because an
offer crossed the request on the wire, so a client that follows the protocol ends with
exactly the receive slots it needs."""

from __future__ import annotations

import asyncio

from tests.helpers import eventually

from .client import ClientPeer


class Deferring(ClientPeer):
    """A subscriber whose `renegotiate` requests are held back until the test lets them
    through, as a busy browser's would be while it is in the middle of another offer."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.asked: list[tuple[int, int, int, int]] = []

    async def renegotiate(
        self, audio_slots: int, video_slots: int, audio_total: int, video_total: int
    ) -> None:
        self.asked.append((audio_slots, video_slots, audio_total, video_total))

    def follow(self) -> None:
        """Do what every request asked, as the protocol says: add that many more slots."""
        for audio, video, _, _ in self.asked:
            self.media.add_slots(audio, video)
        self.asked.clear()


def asked_for(peer: Deferring) -> tuple[int, int]:
    """Audio and video slots asked for in all (the sum of the requests' deltas)."""
    return (sum(a for a, _, _, _ in peer.asked), sum(v for _, v, _, _ in peer.asked))


def receive_slots(peer: ClientPeer) -> dict[str, int]:
    counts = {"audio": 0, "video": 0}
    for transceiver in peer.pc.getTransceivers():
        if transceiver.direction == "recvonly":
            counts[transceiver.kind] += 1
    return counts


async def test_crossing_offers_do_not_make_the_server_ask_twice(server, clip):
    viewer = Deferring(
        server,
        "room",
        "viewer",
        clip,
        initial_audio_slots=0,
        initial_video_slots=0,
        publish_video=False,
    )
    await viewer.join()
    first = ClientPeer(server, "room", "first", clip, initial_audio_slots=0, initial_video_slots=0)
    await first.join()
    # the first publisher's camera and microphone (the microphone as soon as it is measured
    # to be voiced: it may come in a request of its own)
    await eventually(
        lambda: asked_for(viewer) == (1, 1), 5, "the first request", lambda: viewer.asked
    )

    # the viewer offers for its own reasons (a screen share) before handling the request
    await viewer.start_screen()
    second = ClientPeer(
        server, "room", "second", clip, initial_audio_slots=0, initial_video_slots=0
    )
    await second.join()
    await eventually(
        lambda: asked_for(viewer) == (2, 2), 5, "the second publisher's slots", lambda: viewer.asked
    )
    await asyncio.sleep(0.5)  # anything asked twice would have come by now
    assert asked_for(viewer) == (2, 2), f"the crossing offer made it ask again: {viewer.asked}"
    assert viewer.asked[-1][2:] == (2, 2)  # the totals the next offer must hold

    viewer.follow()
    await viewer.offer()
    assert receive_slots(viewer) == {"audio": 2, "video": 2}
    await eventually(
        lambda: (
            viewer.receiving_from()
            == {
                ("first", "microphone"),
                ("first", "camera"),
                ("second", "microphone"),
                ("second", "camera"),
            }
        ),
        10,
        "the viewer to receive both",
        viewer.describe,
    )
    assert all(slot.participant_id for slot in viewer.slots), "idle extra slots"
    assert viewer.asked == []  # nothing more to ask
    for peer in (viewer, first, second):
        await peer.close()
