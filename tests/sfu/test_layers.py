"""Per-receiver quality by VP8 temporal layers (sfu/layers.py) on a real L1T3 stream.

The stream is encoded by libvpx with three temporal layers in the pattern browsers use
(`scalabilityMode: "L1T3"`: TID 0, 2, 1, 2), packetized with the layer fields in the VP8
payload descriptor, and sent through one slot. What the slot sends is depacketized again
and decoded by libvpx (the decoder browsers use), so "the receiver can decode it" is
checked, not assumed; and the output must be one continuous stream: sequence numbers and
picture ids without gaps, TL0PICIDX continuing across a switch of publisher.
"""

from __future__ import annotations

import functools
import itertools
import random
from fractions import Fraction

import av
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtpPacket
from av.video.frame import PictureType
from hypothesis import given, settings
from hypothesis import strategies as st

from rtp import aiortc_hooks, vp8
from rtp.synthetic import video_encoder
from sfu.forwarding import Counters, SlotTrack
from sfu.layers import MAX_TID, LossCap, TemporalFilter, layers_for

from .fakes import FakePort, FakePublication, feed

WIDTH, HEIGHT, FPS = 320, 240, 30
PATTERN = (0, 2, 1, 2)  # temporal layer of frame i: PATTERN[i % 4]
L1T3 = (
    "ts_number_layers=3:ts_target_bitrate=150,225,300:ts_rate_decimator=4,2,1:"
    "ts_periodicity=4:ts_layer_id=0,2,1,2:ts_layering_mode=3"
)
MTU = 400  # small, so that frames span several packets
SMALL, MIDDLE, LARGE = HEIGHT // 8, HEIGHT // 3, HEIGHT  # -> layers 0, 0-1, 0-2


@functools.cache
def l1t3_frames(count: int = 64) -> tuple[bytes, ...]:
    """`count` VP8 frames with three temporal layers; a keyframe every 32 (a TL0 frame)."""
    ctx = video_encoder("VP8", (WIDTH, HEIGHT), FPS, 300_000, keyint=32)
    ctx.options = {**ctx.options, "ts-parameters": L1T3}
    frames: list[bytes] = []
    with av.open(f"testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}", format="lavfi") as src:
        for i, frame in enumerate(src.decode(video=0)):
            if i >= count:
                break
            frame = frame.reformat(format="yuv420p")
            frame.pict_type = PictureType.NONE
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            frames += [bytes(p) for p in ctx.encode(frame)]
    assert len(frames) == count and all(not frames[i][0] & 1 for i in (0, 32))
    return tuple(frames)


def packetize(
    frames: tuple[bytes, ...],
    *,
    ssrc: int = 1,
    seq: int = 1000,
    pid: int = 500,
    tl0: int = 7,
    mtu: int = MTU,
) -> list[RtpPacket]:
    """RTP packets as a browser sends L1T3: picture id, TL0PICIDX and TID on every packet."""
    packets = []
    tl0 -= 1
    for i, frame in enumerate(frames):
        tid = PATTERN[i % 4]
        tl0 += tid == 0
        chunks = [frame[at : at + mtu] for at in range(0, len(frame), mtu)]
        for n, chunk in enumerate(chunks):
            descriptor = VpxPayloadDescriptor(
                partition_start=int(n == 0),
                partition_id=0,
                picture_id=(pid + i) & 0x7FFF,
                tl0picidx=tl0 & 0xFF,
                tid=(tid, 0),
            )
            packet = RtpPacket(
                payload_type=96, sequence_number=seq & 0xFFFF, timestamp=i * 3000 & 0xFFFFFFFF
            )
            packet.ssrc, packet.marker = ssrc, int(n == len(chunks) - 1)
            packet.payload = bytes(descriptor) + chunk
            packets.append(packet)
            seq += 1
    return packets


def received_frames(port: FakePort) -> list[tuple[int, int, int, bytes]]:
    """(picture id, TL0PICIDX, TID, frame) for each frame the slot sent, in sequence order."""
    frames: list[tuple[int, int, int, bytes]] = []
    parts: list[bytes] = []
    first: vp8.Descriptor | None = None
    order = sorted(range(len(port.sent)), key=lambda i: unwrap(port.sent, i))
    for i in order:
        _, _, marker = port.sent[i]
        if not port.payloads[i]:
            continue  # padding
        d = vp8.parse(port.payloads[i])
        assert d is not None
        if d.start and d.partition == 0:
            parts, first = [], d
        parts.append(port.payloads[i][d.size :])
        if marker:
            assert first is not None and first.picture_id == d.picture_id
            frames.append((d.picture_id, d.tl0picidx, d.tid, b"".join(parts)))
    return frames


def unwrap(sent: list[tuple[int, int, int]], i: int) -> int:
    """Sequence number i, unwrapped relative to the first one sent."""
    return (sent[i][0] - sent[0][0] + 0x8000) % 0x10000 - 0x8000


def decode(frames: list[tuple[int, int, int, bytes]]) -> int:
    """Decode with libvpx (the browsers' decoder); every frame must come out whole."""
    decoder = av.CodecContext.create("libvpx", "r")
    decoded = 0
    for _, _, _, data in frames:
        for picture in decoder.decode(av.Packet(data)):
            assert (picture.width, picture.height) == (WIDTH, HEIGHT)
            decoded += 1
    return decoded


def continuous(values: list[int], modulus: int) -> bool:
    return all((b - a) % modulus == 1 for a, b in itertools.pairwise(values))


def slot_for(publication: FakePublication, max_height: int) -> tuple[SlotTrack, FakePort]:
    port = FakePort()
    slot = SlotTrack("video", "1", Counters(), lambda: port)  # type: ignore[arg-type,return-value]
    slot.set_source(publication)
    slot.max_height = max_height
    return slot, port


def send(slot: SlotTrack, publication: FakePublication, packets: list[RtpPacket]) -> None:
    for packet in packets:
        if height := vp8.keyframe_height(packet.payload):  # as Publication.on_rtp does
            publication.frame_height = height
        feed(slot, packet)


def test_layers_for_heights():
    assert layers_for(720, 720) == layers_for(360, 720) == MAX_TID
    assert layers_for(359, 720) == layers_for(180, 720) == 1
    assert layers_for(179, 720) == layers_for(0, 720) == 0
    assert layers_for(90, 0) == MAX_TID  # size not known yet: everything


def test_keyframe_height_is_read_from_the_first_packet():
    packets = packetize(l1t3_frames())
    assert vp8.keyframe_height(packets[0].payload) == HEIGHT
    assert vp8.keyframe_height(packets[1].payload) == 0  # not a frame start
    assert vp8.keyframe_height(packets[-1].payload) == 0


async def test_each_tile_size_gets_its_layers_and_decodes_every_frame():
    frames = l1t3_frames()
    for height, every in ((SMALL, 4), (MIDDLE, 2), (LARGE, 1)):
        ana = FakePublication("ana")
        slot, port = slot_for(ana, height)
        send(slot, ana, packetize(frames))
        got = received_frames(port)
        assert len(got) == len(frames) // every, height
        assert decode(got) == len(got)
        assert continuous([seq for seq, _, _ in port.sent], 0x10000)
        assert continuous([pid for pid, _, _, _ in got], 0x8000)
        assert max(tid for _, _, tid, _ in got) == {4: 0, 2: 1, 1: 2}[every]
        dropped = len(packetize(frames)) - len(port.sent)
        assert slot.packets_dropped == dropped == slot.counters.layer_packets_dropped


async def test_layers_go_down_at_once_and_up_at_a_base_layer_frame():
    frames = l1t3_frames()
    packets = packetize(frames)
    ana = FakePublication("ana")
    slot, port = slot_for(ana, LARGE)
    starts = [i for i, p in enumerate(packets) if p.payload[0] & 0x10]  # frame starts
    send(slot, ana, packets[: starts[10]])
    slot.max_height = SMALL  # frame 10 (TID 1) is already dropped
    send(slot, ana, packets[starts[10] : starts[21]])
    slot.max_height = LARGE  # frame 21 (TID 2) cannot start: full rate from frame 24 (TID 0)
    send(slot, ana, packets[starts[21] :])
    got = received_frames(port)
    pictures = [(pid - got[0][0]) % 0x8000 for pid, _, _, _ in got]
    sent = [*range(10), 12, 16, 20, *range(24, 64)]
    assert [PATTERN[i % 4] for i in sent] == [tid for _, _, tid, _ in got]
    assert pictures == list(range(len(sent)))  # renumbered without a gap
    assert decode(got) == len(sent)
    assert continuous([seq for seq, _, _ in port.sent], 0x10000)


async def test_switching_publisher_continues_picture_ids_and_tl0picidx():
    frames = l1t3_frames()
    ana, bo = FakePublication("ana"), FakePublication("bo")
    slot, port = slot_for(ana, MIDDLE)
    send(slot, ana, packetize(frames[:32], pid=30000, tl0=250))
    slot.set_source(bo)
    slot.max_height = MIDDLE
    send(slot, bo, packetize(frames[32:], ssrc=2, seq=60000, pid=17, tl0=3))
    got = received_frames(port)
    assert len(got) == 32
    assert continuous([pid for pid, _, _, _ in got], 0x8000)
    base = [tl0 for _, tl0, tid, _ in got if tid == 0]
    assert continuous(base, 0x100)
    assert decode(got) == 32


async def test_a_stream_without_layers_passes_untouched():
    ana = FakePublication("ana")
    slot, port = slot_for(ana, SMALL)
    packets = packetize(l1t3_frames()[:8])
    for packet in packets:  # the same frames, described without TL0PICIDX and TID
        d = vp8.parse(packet.payload)
        assert d is not None
        plain = VpxPayloadDescriptor(int(d.start), 0, picture_id=d.picture_id)
        packet.payload = bytes(plain) + packet.payload[d.size :]
    send(slot, ana, packets)
    assert port.payloads == [p.payload for p in packets]


@settings(max_examples=40, deadline=None)
@given(
    heights=st.lists(st.sampled_from((SMALL, MIDDLE, LARGE)), min_size=1, max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
async def test_reordered_packets_and_any_layer_changes_keep_one_gapless_stream(
    heights: list[int], seed: int
) -> None:
    """Packets arrive out of order (up to 6 places) while the tile changes size: every
    packet that is sent gets its own number, and together they leave no gap."""
    rng = random.Random(seed)
    packets = packetize(l1t3_frames())
    first, rest = packets[:1], packets[1:]  # the keyframe's first packet starts the slot
    shuffled = sorted(range(len(rest)), key=lambda i: i + rng.uniform(0, 6))
    ana = FakePublication("ana")
    slot, port = slot_for(ana, heights[0])
    send(slot, ana, first)
    for n, i in enumerate(shuffled):
        slot.max_height = heights[n * len(heights) // len(shuffled)]
        send(slot, ana, [rest[i]])
    numbers = sorted(unwrap(port.sent, i) for i in range(len(port.sent)))
    assert numbers == list(range(len(numbers)))
    assert len(port.sent) + slot.packets_dropped == len(packets)  # late drops: as padding
    got = received_frames(port)
    assert decode(got) == len(got)


def test_filter_decides_each_picture_once():
    """Later packets of a picture follow its first packet's decision, even if the target
    changed in between (a frame is never cut in half)."""
    packets = packetize(l1t3_frames()[:2], mtu=20)  # frame 0 (TID 0, a keyframe), frame 1 (TID 2)
    frame_one = [p for p in packets if vp8.temporal(p.payload)[0] == 2]
    assert len(frame_one) > 1
    layers = TemporalFilter()

    def kept(packet: RtpPacket, max_tid: int) -> bool:
        return layers.admit(packet.payload, vp8.temporal(packet.payload), max_tid) is not None

    assert all(kept(p, MAX_TID) for p in packets[: -len(frame_one)])
    assert kept(frame_one[0], MAX_TID)
    assert all(kept(p, 0) for p in frame_one[1:])


def test_loss_takes_layers_away_and_gives_them_back_slowly():
    cap = LossCap()
    assert cap.report(0, 0.0) == MAX_TID
    assert cap.report(40, 1.0) == 1  # 16 % lost: one layer less
    assert cap.report(40, 2.0) == 1  # held: the last change has not shown yet
    assert cap.report(40, 3.0) == 0
    assert cap.report(40, 9.0) == 0  # never below the base layer
    assert cap.report(12, 10.0) == 0  # 5 %: neither
    assert [cap.report(0, t) for t in (11.0, 12.0, 14.0, 15.0)] == [0, 0, 0, 1]
    assert cap.report(3, 16.0) == 1  # low, but only 1 s since the last change
    assert cap.report(3, 19.0) == MAX_TID


async def test_receiver_reports_reach_the_slot_and_cap_its_layers():
    """hook_sender hands each report block about the sender to the slot; a lossy
    receiver of a large tile is sent the base layer only."""

    class Sender:  # the two attributes the hook uses, as RTCRtpSender has them
        def __init__(self) -> None:
            self._ssrc = 1234
            self.handled: list[object] = []

        async def _handle_rtcp_packet(self, packet: object) -> None:
            self.handled.append(packet)

    ana = FakePublication("ana")
    slot, port = slot_for(ana, LARGE)
    sender = Sender()
    aiortc_hooks.hook_sender(sender, slot.on_keyframe_request, on_loss=slot.on_receiver_report)  # type: ignore[arg-type]

    def report(lost: int, ssrc: int = 1234) -> RtcpRrPacket:
        block = RtcpReceiverInfo(ssrc, lost, 0, 0, 0, 0, 0)
        return RtcpRrPacket(ssrc=9, reports=[block])

    await sender._handle_rtcp_packet(report(200, ssrc=777))  # about another stream
    assert slot.loss.cap == MAX_TID and len(sender.handled) == 1  # aiortc still sees it
    await sender._handle_rtcp_packet(report(60))
    await sender._handle_rtcp_packet(report(60))
    assert slot.loss.cap == 1  # the second is within the hold time
    slot.loss.cap = 0
    send(slot, ana, packetize(l1t3_frames()))
    assert len(received_frames(port)) == 16
