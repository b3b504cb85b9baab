"""Fan-out of RTP packets: one Publication per incoming track, one SlotTrack per slot.

Forwarding happens at the RTP level. Each packet the receive tap hands to a Publication is
sent on to every subscriber slot at once, inside the same call: the slot rewrites sequence
number, timestamp, SSRC and payload type for its own stream and hands the bytes to its
`SenderPort` (SRTP + UDP). Nothing is decoded, re-encoded, re-assembled or re-packetized,
and no task switch happens per packet.

A SlotTrack is also the persistent track of one server sender (one receive slot of a
subscriber): aiortc's sender loop dies forever when its track ends, so a slot keeps one
track for its whole life; the track never yields a frame, it only keeps that loop parked.

Frame-level consumers (the recorder) attach with `attach_frames`; only then does the
publication re-assemble frames.

A Publication does not know where its packets come from: a local one is fed by the receive
tap of the publisher's peer connection, a remote one by a pipe from another media server
(`sfu.pipe`). The only difference downstream is its `upstream`, where keyframe requests go.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from rtp import aiortc_hooks, vp8
from rtp.aiortc_hooks import SenderPort
from rtp.codecs import keyframe_detector, packet_starts_keyframe
from rtp.framing import AudioFramer, EncodedFrame, SsrcLock, VideoFramer

from .api import Kind, Source
from .layers import LossCap, TemporalFilter, layers_for

logger = logging.getLogger(__name__)

PLI_INTERVAL_S = 0.5
VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
# RTP timestamp step inserted when a slot switches to another publisher (or the publisher's
# SSRC changes), so the subscriber sees a short pause rather than time going backwards.
SWITCH_GAP = {"audio": 960, "video": 3000}
# After a (re)start, packets older than the first one forwarded are dropped: their sequence
# numbers would collide with what the slot sent before. Checked for this many packets.
START_GUARD_PACKETS = 1024
# Sequence-number offsets remembered once a slot drops packets (temporal layers), so that a
# packet arriving late (reordered, or repaired upstream) is numbered as when it was due.
SEQ_MEMORY = 512


class Counters:
    """Forwarding totals shared by a MediaServer's publications."""

    def __init__(self) -> None:
        self.packets_in = 0
        self.frames_in = 0
        self.bytes_in = 0  # RTP payload bytes (headers are not counted)
        self.packets_forwarded = 0
        self.frames_forwarded = 0
        self.bytes_forwarded = 0  # RTP payload bytes sent on to subscribers
        self.keyframe_requests_sent = 0
        self.retransmissions = 0  # NACK repair sent (aiortc_hooks.SenderPort)
        self.retransmissions_refused = 0  # NACKed packets not resent (its limits, too old)
        self.layer_packets_dropped = 0  # upper temporal layers not sent to small tiles
        # pipes between media servers (sfu.pipe): media datagrams and their payload bytes
        self.packets_piped_out = 0
        self.bytes_piped_out = 0
        self.packets_piped_in = 0
        self.bytes_piped_in = 0
        self.pipe_datagrams_dropped = 0  # malformed, unknown pipe, wrong sender, send failed


class Slot(Protocol):
    """One receive slot (m-line) of a subscriber, whatever moves its media."""

    kind: str  # "audio" or "video" (typed as aiortc's MediaStreamTrack.kind)
    mid: str
    source: Publication | None
    max_height: int  # video: the height the receiver draws it at (per-receiver quality)

    @property
    def idle(self) -> bool: ...

    def set_source(self, publication: Publication | None) -> None: ...

    def hold(self, seconds: float) -> None: ...

    def release(self) -> None: ...

    def stop(self) -> None: ...


class PacketSink(Protocol):
    """A packet-level consumer of a publication: a subscriber's slot (`SlotTrack`) or a
    pipe to another media server (`sfu.pipe.PipeOut`)."""

    @property
    def waiting_for_keyframe(self) -> bool: ...

    def forward(
        self,
        packet: RtpPacket,
        keyframe: bool,
        ntp: int,
        abs_time: bytes,
        audio_level: int | None,
        layers: tuple[int, int, int, int, int] = vp8.NO_LAYERS,
    ) -> None: ...

    def set_source(self, publication: Publication | None) -> None: ...


# Asks the publisher for a keyframe of the given media SSRC: a PLI through the publisher's
# own receiver (returns its coroutine), or a datagram up a pipe (sent at once, None).
Upstream = Callable[[int], Awaitable[None] | None]


def receiver_upstream(receiver: RTCRtpReceiver) -> Upstream:
    """Keyframe requests of a local publication: RTCP PLI through the server's receiver."""
    return lambda media_ssrc: aiortc_hooks.send_pli(receiver, media_ssrc)


class FrameSink(Protocol):
    """A frame-level consumer of a publication (the recorder)."""

    waiting_for_keyframe: bool

    def push(self, frame: EncodedFrame) -> None: ...

    def set_source(self, publication: Publication | None) -> None: ...


class Publication:
    """One published track (participant + source) and the slots it feeds.

    `upstream` is where its keyframe requests go (`receiver_upstream` for a publisher
    connected here; a pipe back to the origin server for a remote one)."""

    def __init__(
        self,
        participant_id: str,
        source: Source,
        kind: Kind,
        upstream: Upstream,
        counters: Counters,
        video_codec: str = "VP8",
    ) -> None:
        self.participant_id = participant_id
        self.source = source
        self.kind = kind
        self.upstream = upstream
        self.counters = counters
        self.video_codec = video_codec
        self.outputs: set[PacketSink] = set()
        self.frame_outputs: set[FrameSink] = set()
        self.media_ssrc: int | None = None
        self.frame_height = 0  # video: as the last keyframe said (VP8; 0 = not known)
        # where a microphone's RFC 6464 levels go (the room's speaker detector)
        self.level_sink: Callable[[str, int, int], None] | None = None
        self.closed = False
        # told when the first consumer (slot, pipe, recorder) comes and the last one goes: a
        # publication fed through a pipe asks its origin to send only while someone uses it
        self.on_demand: Callable[[bool], None] | None = None
        self._framer: AudioFramer | VideoFramer | None = None
        # aiortc routes an unknown SSRC by payload type to any receiver using it: accept one
        # SSRC at a time, a new one only once the current one fell silent.
        self._ssrc_lock = SsrcLock(time.monotonic)
        self._last_pli = -1e9
        self._pli_timer: asyncio.TimerHandle | None = None
        self._pli_tasks: set[asyncio.Task[None]] = set()

    # called by the receive tap, synchronously inside aiortc's packet handler: the hot path
    def on_rtp(self, packet: RtpPacket) -> None:
        if self._ssrc_lock.check(packet.ssrc) is False:
            return
        self.media_ssrc = packet.ssrc
        counters = self.counters
        counters.packets_in += 1
        counters.bytes_in += len(packet.payload)
        counters.frames_in += packet.marker if self.kind == "video" else 1
        if self.closed:
            return
        level = None
        if self.kind == "audio":
            vad_level = packet.extensions.audio_level
            if vad_level is not None:
                level = (vad_level[0] << 7) | vad_level[1]  # the byte as forwarded
                if self.level_sink is not None:
                    self.level_sink(self.participant_id, vad_level[1], packet.timestamp)
        if self.outputs:
            ntp = aiortc_hooks.ntp_now()
            abs_time = aiortc_hooks.abs_send_time(ntp)
            keyframe = self.kind == "video" and packet_starts_keyframe(
                self.video_codec, packet.payload
            )
            layers = vp8.NO_LAYERS
            if self.kind == "video" and self.video_codec == "VP8":
                layers = vp8.temporal(packet.payload)  # read once here, for every slot
                if keyframe:
                    self.frame_height = vp8.keyframe_height(packet.payload) or self.frame_height
            for output in self.outputs:
                output.forward(packet, keyframe, ntp, abs_time, level, layers)
        if self._framer is not None:
            self._framer.add(packet)

    def _on_frame(self, frame: EncodedFrame) -> None:
        for sink in list(self.frame_outputs):
            sink.push(frame)

    @property
    def wanted(self) -> bool:
        """Whether anything consumes this publication (a slot, a pipe, the recorder)."""
        return bool(self.outputs or self.frame_outputs)

    def _demand(self, was_wanted: bool) -> None:
        if self.on_demand is not None and self.wanted != was_wanted:
            self.on_demand(not was_wanted)

    def attach(self, output: PacketSink) -> None:
        """Forward every packet to `output` from now on (video: from a keyframe on)."""
        was_wanted = self.wanted
        self.outputs.add(output)
        self._demand(was_wanted)
        if self.kind == "video":
            self.request_keyframe()

    def detach(self, output: PacketSink) -> None:
        was_wanted = self.wanted
        self.outputs.discard(output)
        self._demand(was_wanted)

    @property
    def framing(self) -> bool:
        """Whether packets are re-assembled into frames (a frame consumer is attached)."""
        return self._framer is not None

    def attach_frames(self, sink: FrameSink) -> None:
        """Deliver whole encoded frames to `sink` (re-assembly starts with the first)."""
        if self._framer is None:
            self._framer = (
                VideoFramer(self.video_codec, self._on_frame, keyframe_detector(self.video_codec))
                if self.kind == "video"
                else AudioFramer(self._on_frame)
            )
        was_wanted = self.wanted
        self.frame_outputs.add(sink)
        self._demand(was_wanted)
        if self.kind == "video":
            self.request_keyframe()

    def detach_frames(self, sink: FrameSink) -> None:
        was_wanted = self.wanted
        self.frame_outputs.discard(sink)
        if not self.frame_outputs:
            self._framer = None
        self._demand(was_wanted)

    def _waiting(self) -> bool:
        return any(o.waiting_for_keyframe for o in self.outputs) or any(
            o.waiting_for_keyframe for o in self.frame_outputs
        )

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
        if self._waiting():
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
        sending = self.upstream(self.media_ssrc)
        if sending is not None:
            task = asyncio.ensure_future(sending)
            self._pli_tasks.add(task)
            task.add_done_callback(self._pli_tasks.discard)

    def close(self) -> list[PacketSink]:
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
        for sink in list(self.frame_outputs):
            sink.set_source(None)
        self.outputs.clear()
        self.frame_outputs.clear()
        self._framer = None
        return outputs


class SlotTrack(MediaStreamTrack):
    """One receive slot of a subscriber: rewrites a publisher's RTP into its own stream."""

    def __init__(
        self,
        kind: Kind,
        mid: str,
        counters: Counters,
        open_port: Callable[[], SenderPort | None] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.mid = mid
        self.counters = counters
        self.source: Publication | None = None
        self.waiting_for_keyframe = kind == "video"
        self.port: SenderPort | None = None
        self._open_port = open_port
        # A new m-line: until the subscriber has applied the answer that created it, what
        # this slot sends is lost or, in aiortc, routed to another receiver by payload type
        # (the new SSRC is not known yet), so a keyframe sent then arrives broken. Held
        # slots send nothing; `release` (the client's `answer-applied`) or this deadline
        # (clients that never say it) opens them, and they start at the next keyframe.
        self._held_until: float | None = None
        self._stopped = asyncio.Event()
        self._gap = SWITCH_GAP[kind]
        # Output stream state: continues across publisher switches.
        self._next_seq = random.randint(0, 0xFFFF)
        self._next_ts = random.randint(0, 0xFFFFFFFF)
        # Mapping from the current input stream (None until the first packet after a start).
        self._seq_offset: int | None = None
        self._ts_offset = 0
        self._start_seq = 0
        self._since_start = 0
        self._src_ssrc: int | None = None
        self._last_in = 0  # newest input sequence number since the start
        self._seq_memory: list[int] | None = None  # offsets by input seq, once one is dropped
        # Per-receiver quality (sfu.layers): the largest height the receiver draws this
        # slot's publisher at, set from its receive policy; the filter acts on VP8 only.
        self.max_height = 1 << 16
        self._layers: TemporalFilter | None = None
        self.loss = LossCap()  # and the layers the receiver's losses allow
        self.packets_out = 0
        self.frames_out = 0
        self.packets_dropped = 0  # temporal layers this receiver does not get

    @classmethod
    def for_transceiver(cls, transceiver: RTCRtpTransceiver, counters: Counters) -> SlotTrack:
        """A slot that sends through `transceiver`'s sender once it is connected."""
        sender = transceiver.sender
        track = cls(
            transceiver.kind,  # type: ignore[arg-type]
            transceiver.mid,  # type: ignore[arg-type]
            counters,
            lambda: aiortc_hooks.open_sender_port(transceiver, counters),
        )
        sender.replaceTrack(track)
        aiortc_hooks.hook_sender(
            sender,
            track.on_keyframe_request,
            on_loss=track.on_receiver_report if track.kind == "video" else None,
        )
        return track

    @property
    def idle(self) -> bool:
        return self.source is None

    @property
    def held(self) -> bool:
        return self._held_until is not None

    def hold(self, seconds: float) -> None:
        """Send nothing for at most `seconds` (a new m-line, see `__init__`); only before
        the slot's first packet, when its port is not open yet."""
        if self.port is None:
            self._held_until = time.monotonic() + seconds

    def release(self) -> None:
        """The subscriber applied the answer: send from the next keyframe on, and ask for
        one (a keyframe that came while held reached nobody)."""
        if self._held_until is None:
            return
        self._held_until = None
        if self.source is not None and self.waiting_for_keyframe:
            self.source.request_keyframe()

    def set_source(self, publication: Publication | None) -> None:
        """Switch the publisher this slot forwards (None = idle)."""
        if self.source is publication:
            return
        if self.source is not None:
            self.source.detach(self)
        self.source = publication
        self._seq_offset = None
        self._src_ssrc = None
        self.waiting_for_keyframe = self.kind == "video"
        if publication is not None and publication.kind == "video":
            if publication.video_codec != "VP8":
                self._layers = None
            elif self._layers is None:
                self._layers = TemporalFilter()
        if publication is not None:
            publication.attach(self)

    def forward(
        self,
        packet: RtpPacket,
        keyframe: bool,
        ntp: int,
        abs_time: bytes,
        audio_level: int | None,
        layers: tuple[int, int, int, int, int] = vp8.NO_LAYERS,
    ) -> None:
        """Rewrite one input packet into this slot's stream and send it (the hot path).

        `layers` is the packet's `rtp.vp8.temporal()` reading (VP8 video only).
        """
        port = self.port
        if port is None:
            if self._held_until is not None:
                if time.monotonic() < self._held_until:
                    return  # the subscriber may not know this m-line yet (see `hold`)
                self._held_until = None
            if self._open_port is None or (port := self._open_port()) is None:
                return  # the subscriber's transport is not up yet
            self.port = port
        if packet.ssrc != self._src_ssrc:
            # a new input stream (first packet, or the publisher's encoder restarted)
            self._src_ssrc = packet.ssrc
            self._seq_offset = None
            self.waiting_for_keyframe = self.kind == "video"
        seq_in = packet.sequence_number
        if self._seq_offset is None:
            if self.waiting_for_keyframe:
                if not keyframe:
                    if self.source is not None:
                        self.source.request_keyframe()  # rate-limited there
                    return
                self.waiting_for_keyframe = False
            self._seq_offset = (self._next_seq - seq_in) & 0xFFFF
            self._ts_offset = (self._next_ts - packet.timestamp) & 0xFFFFFFFF
            self._start_seq = seq_in
            self._last_in = (seq_in - 1) & 0xFFFF
            self._since_start = 0
            self._seq_memory = None
            if self._layers is not None:
                self._layers.restart()
        elif self._since_start < START_GUARD_PACKETS:
            self._since_start += 1
            if (seq_in - self._start_seq) & 0xFFFF >= 0x8000:
                return  # from before this start: its number is taken
        payload: bytes | None = packet.payload
        if self._layers is not None:
            source = self.source
            height = source.frame_height if source is not None else 0
            wanted = min(layers_for(self.max_height, height), self.loss.cap)
            payload = self._layers.admit(packet.payload, layers, wanted)
        offset = self._renumber(seq_in, payload is None)
        if offset is None:
            return
        marker = packet.marker
        if payload is None:  # late, its number already given out: send it as padding
            payload, marker = b"", 0  # (libwebrtc takes an empty packet as padding)
        seq = (seq_in + offset) & 0xFFFF
        ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        if not port.send(seq, ts, marker, payload, ntp, abs_time, audio_level):
            return
        if (seq - self._next_seq) & 0xFFFF < 0x8000:  # newest so far (not a late packet)
            self._next_seq = (seq + 1) & 0xFFFF
            self._next_ts = (ts + self._gap) & 0xFFFFFFFF
        self.packets_out += 1
        self.counters.packets_forwarded += 1
        self.counters.bytes_forwarded += len(payload)
        if marker or self.kind == "audio":
            self.frames_out += 1
            self.counters.frames_forwarded += 1

    def _renumber(self, seq_in: int, drop: bool) -> int | None:
        """The sequence-number offset for this input packet; None: drop it without a trace.

        Without drops the offset is constant. Each dropped packet that is the newest so far
        lowers it by one for the packets after it, so the receiver sees no gap it would
        NACK. Once there were drops, the offsets are remembered per input number: a packet
        arriving late gets the number it was skipped with. That number is taken whether or
        not the packet is forwarded, so a late packet of a dropped picture is sent as
        padding (the caller's job).
        """
        offset = self._seq_offset
        assert offset is not None
        memory = self._seq_memory
        ahead = (seq_in - self._last_in) & 0xFFFF
        if 0 < ahead < 0x8000:  # the newest so far
            if memory is not None:
                for number in range(seq_in - min(ahead - 1, SEQ_MEMORY), seq_in + 1):
                    memory[number % SEQ_MEMORY] = offset  # this one and those skipped
            self._last_in = seq_in
            if drop:
                if memory is None:
                    self._seq_memory = [offset] * SEQ_MEMORY
                self._seq_offset = (offset - 1) & 0xFFFF
                self.packets_dropped += 1
                self.counters.layer_packets_dropped += 1
                return None
            return offset
        return offset if memory is None else memory[seq_in % SEQ_MEMORY]

    def on_receiver_report(self, fraction_lost: int) -> None:
        """A receiver report about this slot: a receiver losing packets gets fewer layers."""
        cap = self.loss.cap
        if self.loss.report(fraction_lost, time.monotonic()) != cap:
            logger.info(
                "slot %s: %d/256 lost, temporal layers up to %d",
                self.mid,
                fraction_lost,
                self.loss.cap,
            )

    def on_keyframe_request(self) -> None:
        """PLI/FIR from the subscriber: forward it upstream (rate-limited there)."""
        if self.source is not None:
            self.source.request_keyframe()

    async def recv(self) -> None:  # type: ignore[override]
        """Never yields: packets go out through `forward`; this parks aiortc's send loop."""
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        self.set_source(None)
        super().stop()
        self._stopped.set()
