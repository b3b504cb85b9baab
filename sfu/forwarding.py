"""Fan-out of encoded frames: one Publication per incoming track, one SlotTrack per slot.

A SlotTrack is the persistent track of one server sender (one receive slot of a
subscriber). aiortc's sender loop dies forever when its track ends, and `replaceTrack`
cannot interrupt a pending `recv()`, so a slot keeps one track for its whole life and
attaching a publisher only switches where its frames come from. The track returns
`av.Packet`s, so `RTCRtpSender` only calls the codec's `pack()`: nothing is decoded or
encoded on the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from fractions import Fraction

import av
from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError

from . import aiortc_hooks
from .api import Kind, Source
from .framing import EncodedFrame
from .relay_baseline import RelaySource

logger = logging.getLogger(__name__)

PLI_INTERVAL_S = 0.5
VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
MAX_QUEUE = {"audio": 50, "video": 90}
# RTP timestamp step inserted when a slot switches to another publisher.
SWITCH_GAP = {"audio": 960, "video": 3000}


class Counters:
    """Forwarding totals shared by a MediaServer's publications."""

    def __init__(self) -> None:
        self.packets_in = 0
        self.frames_in = 0
        self.frames_forwarded = 0
        self.keyframe_requests_sent = 0


class Publication:
    """One published track (participant + source) and the slots it feeds."""

    def __init__(
        self,
        participant_id: str,
        source: Source,
        kind: Kind,
        receiver: RTCRtpReceiver,
        counters: Counters,
    ) -> None:
        self.participant_id = participant_id
        self.source = source
        self.kind = kind
        self.receiver = receiver
        self.counters = counters
        self.outputs: set[SlotTrack] = set()
        self.media_ssrc: int | None = None
        self.relay: RelaySource | None = None  # only in the MediaRelay benchmark baseline
        self.closed = False
        self._last_pli = -1e9
        self._pli_timer: asyncio.TimerHandle | None = None
        self._pli_tasks: set[asyncio.Task[None]] = set()

    # called by the receive tap (synchronously, inside aiortc's packet handler)
    def on_packet_ssrc(self, ssrc: int) -> None:
        self.media_ssrc = ssrc
        self.counters.packets_in += 1

    def on_frame(self, frame: EncodedFrame) -> None:
        self.counters.frames_in += 1
        if self.closed:
            return
        for output in self.outputs:
            output.push(frame)

    def attach(self, output: SlotTrack) -> None:
        self.outputs.add(output)
        if self.kind == "video":
            self.request_keyframe()

    def detach(self, output: SlotTrack) -> None:
        self.outputs.discard(output)

    def request_keyframe(self) -> None:
        """Send a PLI upstream, at most one per PLI_INTERVAL_S; later asks are deferred."""
        if self.closed or self.kind != "video":
            return
        now = time.monotonic()
        wait = self._last_pli + PLI_INTERVAL_S - now
        if wait <= 0:
            self._send_pli()
        elif self._pli_timer is None:
            self._pli_timer = asyncio.get_running_loop().call_later(wait, self._deferred_pli)

    def _deferred_pli(self) -> None:
        self._pli_timer = None
        if any(o.waiting_for_keyframe for o in self.outputs):
            self._send_pli()

    def _send_pli(self) -> None:
        if self.media_ssrc is None:
            # Nothing received yet: the first frames will include a keyframe anyway,
            # but ask again shortly in case the publisher started long ago.
            self._last_pli = time.monotonic()
            self._pli_timer = asyncio.get_running_loop().call_later(
                PLI_INTERVAL_S, self._deferred_pli
            )
            return
        self._last_pli = time.monotonic()
        self.counters.keyframe_requests_sent += 1
        task = asyncio.ensure_future(aiortc_hooks.send_pli(self.receiver, self.media_ssrc))
        self._pli_tasks.add(task)
        task.add_done_callback(self._pli_tasks.discard)

    def close(self) -> list[SlotTrack]:
        """Stop forwarding; returns the slots that became idle."""
        self.closed = True
        if self._pli_timer is not None:
            self._pli_timer.cancel()
            self._pli_timer = None
        for task in self._pli_tasks:
            task.cancel()
        outputs = list(self.outputs)
        for output in outputs:
            output.set_source(None)
        self.outputs.clear()
        return outputs


class SlotTrack(MediaStreamTrack):
    """The outgoing track of one receive slot; yields encoded `av.Packet`s."""

    def __init__(self, kind: Kind, mid: str, counters: Counters) -> None:
        super().__init__()
        self.kind = kind
        self.mid = mid
        self.counters = counters
        self.source: Publication | None = None
        self.waiting_for_keyframe = kind == "video"
        self.last_audio_level: int | None = None
        self._queue: deque[EncodedFrame] = deque()
        self._wakeup = asyncio.Event()
        self._clock = VIDEO_CLOCK if kind == "video" else AUDIO_CLOCK
        self._time_base = Fraction(1, self._clock)
        self._out_ts = 0  # last pts handed to the sender
        self._src_origin: int | None = None  # source timestamp mapped to _out_base
        self._out_base = 0
        self.frames_out = 0

    @property
    def idle(self) -> bool:
        return self.source is None

    def set_source(self, publication: Publication | None) -> None:
        """Switch the publisher this slot forwards (None = idle)."""
        if self.source is publication:
            return
        if self.source is not None:
            self.source.detach(self)
        self.source = publication
        self._queue.clear()
        self._src_origin = None
        self.waiting_for_keyframe = self.kind == "video"
        if publication is not None:
            publication.attach(self)

    def push(self, frame: EncodedFrame) -> None:
        if self.kind == "video":
            if frame.discontinuity and not frame.keyframe:
                self._need_keyframe()
                return
            if self.waiting_for_keyframe:
                if not frame.keyframe:
                    return
                self.waiting_for_keyframe = False
        if len(self._queue) >= MAX_QUEUE[self.kind]:
            # The sender fell behind: drop the backlog and restart from a keyframe.
            logger.warning(
                "slot %s: queue overflow, dropping %d frames", self.mid, len(self._queue)
            )
            self._queue.clear()
            if self.kind == "video":
                self._need_keyframe()
                return
        self._queue.append(frame)
        self._wakeup.set()

    def _need_keyframe(self) -> None:
        self.waiting_for_keyframe = True
        if self.source is not None:
            self.source.request_keyframe()

    def on_keyframe_request(self) -> None:
        """PLI/FIR from the subscriber: forward it upstream (rate-limited there)."""
        if self.source is not None:
            self.source.request_keyframe()

    def audio_level(self) -> int | None:
        return self.last_audio_level

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.readyState != "live":
            raise MediaStreamError
        frame = self._queue.popleft()
        if self._src_origin is None:
            self._src_origin = frame.timestamp
            self._out_base = self._out_ts + SWITCH_GAP[self.kind] if self.frames_out else 0
        pts = self._out_base + frame.timestamp - self._src_origin
        if pts < self._out_ts:  # never go backwards (reordered audio)
            pts = self._out_ts
        self._out_ts = pts
        packet = av.Packet(frame.data)
        packet.pts = pts
        packet.time_base = self._time_base
        self.last_audio_level = frame.audio_level
        self.frames_out += 1
        self.counters.frames_forwarded += 1
        return packet

    def stop(self) -> None:
        self.set_source(None)
        super().stop()
        self._wakeup.set()
