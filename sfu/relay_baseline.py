"""Benchmark baseline only: forwarding replaced by aiortc's `MediaRelay`.

With `MediaSettings.forwarding == "relay"` each published track is decoded once by aiortc
and every subscriber's sender re-encodes it, which is what aiortc's public API offers.
The capacity benchmark runs the same bots against this mode to measure, in the same run,
what encoded forwarding saves. Keyframes, audio levels and RTX are left to aiortc here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from .api import Kind

if TYPE_CHECKING:
    from .forwarding import Counters, Publication


class RelaySource:
    """The decoded remote track of one publication and its MediaRelay."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.relay = MediaRelay()

    def subscribe(self) -> MediaStreamTrack:
        return self.relay.subscribe(self.track, buffered=False)


class RelaySlotTrack(MediaStreamTrack):
    """A subscriber slot fed with decoded frames; aiortc's sender encodes them."""

    def __init__(self, kind: Kind, mid: str, counters: Counters) -> None:
        super().__init__()
        self.kind = kind
        self.mid = mid
        self.counters = counters
        self.source: Publication | None = None
        self.waiting_for_keyframe = False
        self._proxy: MediaStreamTrack | None = None
        self._changed = asyncio.Event()

    @property
    def idle(self) -> bool:
        return self.source is None

    def set_source(self, publication: Publication | None) -> None:
        if self.source is publication:
            return
        if self.source is not None:
            self.source.detach(self)  # type: ignore[arg-type]
        if self._proxy is not None:
            self._proxy.stop()
        self.source = publication
        relay = publication.relay if publication is not None else None
        self._proxy = relay.subscribe() if relay is not None else None
        self._changed.set()
        if publication is not None:
            publication.attach(self)  # type: ignore[arg-type]

    def on_keyframe_request(self) -> None:  # the encoder handles PLI itself
        pass

    def audio_level(self) -> int | None:
        return None

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
