"""Benchmark baseline only: forwarding replaced by aiortc's `MediaRelay`.

With `MediaSettings.forwarding == "relay"` each published track is decoded once by aiortc
and every subscriber's sender re-encodes it, which is what aiortc's public API offers.
The capacity benchmark runs the same bots against this mode to measure, in the same run,
what encoded forwarding saves. Keyframes, audio levels and RTX are left to aiortc here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpTransceiver
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from rtp.types import Kind, Source

from .api import NegotiationError
from .forwarding import Counters, Publication, Slot, receiver_upstream


class RelayPublication(Publication):
    """A publication whose decoded track is fanned out by a MediaRelay."""

    def __init__(self, track: MediaStreamTrack, *args: Any) -> None:
        super().__init__(*args)
        self.relay = MediaRelay()
        self.track = track
        self.slots: set[RelaySlotTrack] = set()

    def subscribe(self, slot: RelaySlotTrack) -> MediaStreamTrack:
        self.slots.add(slot)
        return self.relay.subscribe(self.track, buffered=False)

    def unsubscribe(self, slot: RelaySlotTrack) -> None:
        self.slots.discard(slot)

    def close(self) -> list[Any]:
        for slot in list(self.slots):
            slot.set_source(None)
        return super().close()


class RelayForwarding:
    """The `sfu.strategies.Forwarding` of the baseline: aiortc decodes what it receives,
    and each slot's sender encodes again."""

    def __init__(self, participant_id: str, counters: Counters, video_codec: str) -> None:
        self.participant_id = participant_id
        self.counters = counters
        self.video_codec = video_codec
        self._tracks: dict[str, MediaStreamTrack] = {}  # decoded remote tracks by mid

    def track_arrived(self, transceiver: RTCRtpTransceiver, track: Any) -> None:
        if transceiver.mid is not None:
            self._tracks[transceiver.mid] = track

    def new_slot(self, transceiver: RTCRtpTransceiver) -> Slot:
        track = RelaySlotTrack(transceiver.kind, transceiver.mid or "", self.counters)  # type: ignore[arg-type]
        transceiver.sender.replaceTrack(track)
        return track

    def publish(self, source: Source, kind: Kind, transceiver: RTCRtpTransceiver) -> Publication:
        track = self._tracks.get(transceiver.mid or "")
        if track is None:
            raise NegotiationError("bad-track-map", f"mid {transceiver.mid} has no remote track")
        return RelayPublication(
            track,
            self.participant_id,
            source,
            kind,
            receiver_upstream(transceiver.receiver),
            self.counters,
        )

    def unpublish(self, transceiver: RTCRtpTransceiver) -> None:
        pass


class RelaySlotTrack(MediaStreamTrack):
    """A subscriber slot fed with decoded frames; aiortc's sender encodes them."""

    def __init__(self, kind: Kind, mid: str, counters: Counters) -> None:
        super().__init__()
        self.kind = kind
        self.mid = mid
        self.counters = counters
        self.source: Publication | None = None
        self.max_height = 1 << 16  # (no per-receiver quality in the baseline)
        self._proxy: MediaStreamTrack | None = None
        self._changed = asyncio.Event()

    @property
    def idle(self) -> bool:
        return self.source is None

    def hold(self, seconds: float) -> None:
        """Nothing to hold: aiortc's own sender starts with a keyframe from its encoder."""

    def release(self) -> None:
        pass

    def set_source(self, publication: Publication | None) -> None:
        if self.source is publication:
            return
        if isinstance(self.source, RelayPublication):
            self.source.unsubscribe(self)
        if self._proxy is not None:
            self._proxy.stop()
        self.source = publication
        self._proxy = (
            publication.subscribe(self) if isinstance(publication, RelayPublication) else None
        )
        self._changed.set()

    async def recv(self) -> Any:
        while self.readyState == "live":
            proxy = self._proxy
            self._changed.clear()
            if proxy is None:
                await self._changed.wait()
                continue
            frame_task = asyncio.ensure_future(proxy.recv())
            changed_task = asyncio.ensure_future(self._changed.wait())
            done, _ = await asyncio.wait(
                (frame_task, changed_task), return_when=asyncio.FIRST_COMPLETED
            )
            changed_task.cancel()
            if frame_task not in done:
                frame_task.cancel()
                continue
            with contextlib.suppress(MediaStreamError):
                frame = frame_task.result()
                self.counters.frames_forwarded += 1
                return frame
            await self._changed.wait()  # the publisher's track ended: wait for a switch
        raise MediaStreamError

    def stop(self) -> None:
        self.set_source(None)
        super().stop()
        self._changed.set()
