"""Unit tests of the pieces that need no network: framing, codec checks, the probe."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from rtp import aiortc_hooks
from rtp.codecs import h264_is_keyframe, is_frame_start, vp8_is_keyframe
from rtp.framing import RECOVERY_WINDOW_S, EncodedFrame, VideoFramer
from rtp.probe import ReceiveProbe, frame_digest


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def vp8_packet(seq: int, ts: int, start: bool, marker: bool, key: bool) -> RtpPacket:
    descriptor = bytes([0x10 if start else 0x00])
    body = bytes([0x00 if key else 0x01]) + bytes([seq & 0xFF]) if start else bytes([seq & 0xFF])
    packet = RtpPacket(payload_type=97, sequence_number=seq & 0xFFFF, timestamp=ts)
    packet.ssrc, packet.marker, packet.payload = 1, int(marker), descriptor + body
    packet._data = body  # what aiortc's depayloader hands the tap
    return packet


def frame_packets(first_seq: int, ts: int, n: int, key: bool = False) -> list[RtpPacket]:
    return [vp8_packet(first_seq + i, ts, i == 0, i == n - 1, key) for i in range(n)]


def make_framer() -> tuple[VideoFramer, list[EncodedFrame], FakeClock]:
    out: list[EncodedFrame] = []
    clock = FakeClock()
    return VideoFramer("VP8", out.append, vp8_is_keyframe, clock), out, clock


def test_frames_released_on_marker_in_order_with_late_retransmission():
    framer, out, _ = make_framer()
    f1 = frame_packets(65534, 1000, 3, key=True)  # wraps the 16-bit sequence number
    f2 = frame_packets(65537, 4000, 2)
    for p in f1:
        framer.add(p)
    assert [f.timestamp for f in out] == [1000] and out[0].keyframe and out[0].packets == 3
    framer.add(f2[1])  # first packet of frame 2 lost for now
    assert len(out) == 1
    framer.add(f2[0])  # the retransmission arrives
    assert [f.timestamp for f in out] == [1000, 4000]
    assert not out[1].discontinuity and not out[1].keyframe


def test_unrecoverable_frame_flags_discontinuity_after_window():
    framer, out, clock = make_framer()
    for p in frame_packets(10, 0, 2, key=True):
        framer.add(p)
    lost = frame_packets(12, 3000, 2)
    framer.add(lost[1])  # lost[0] never arrives
    for i, p in enumerate(frame_packets(14, 6000, 2)):
        clock.now = 0.01 * i
        framer.add(p)
    assert len(out) == 1
    clock.now = RECOVERY_WINDOW_S + 0.1
    for p in frame_packets(16, 9000, 2):
        framer.add(p)
    assert [f.timestamp for f in out] == [0, 6000, 9000]
    assert out[1].discontinuity and not out[2].discontinuity
    assert framer.frames_dropped == 1


def test_foreign_ssrc_is_ignored_while_the_locked_one_is_live():
    framer, out, clock = make_framer()
    for p in frame_packets(100, 0, 1, key=True):
        framer.add(p)
    intruder = frame_packets(40000, 50, 1, key=True)[0]
    intruder.ssrc = 2
    framer.add(intruder)
    assert len(out) == 1 and framer.lock.foreign == 1
    clock.now = 1.0  # the first stream fell silent: the new SSRC takes over
    framer.add(intruder)
    assert len(out) == 2 and out[1].keyframe


def test_probe_drops_a_frame_cut_short_by_a_publisher_switch(monkeypatch):
    """A publisher leaves mid-frame; the slot's next packet (next sequence number) starts
    the next publisher's keyframe. The framer hands over the cut frame, but a browser never
    completes a frame without its marker packet: the probe neither counts nor digests it."""
    monkeypatch.setattr(aiortc_hooks, "tap_receiver", lambda receiver, sink: None)
    probe = ReceiveProbe(None, "video")  # type: ignore[arg-type]
    first = frame_packets(10, 0, 2, key=True)
    cut = frame_packets(12, 3000, 3)[:2]  # its marker packet never comes
    second = frame_packets(14, 6000, 2, key=True)  # the next publisher, continuing the numbers
    for packet in [*first, *cut, *second]:
        probe._on_packet(packet)
    assert probe.frames == 2 and probe.keyframes == 2 and probe.incomplete == 1
    whole = [b"".join(p._data for p in frame) for frame in (first, second)]
    assert probe.digests == [frame_digest(data) for data in whole]


def test_probe_drops_packets_routed_to_it_for_another_mid(monkeypatch):
    """aiortc routes an unsignalled SSRC to the only receiver of its payload type; a browser
    routes by the MID header extension, and so does a probe that knows its mid."""
    monkeypatch.setattr(aiortc_hooks, "tap_receiver", lambda receiver, sink: None)
    probe = ReceiveProbe(None, "video", mid="2")  # type: ignore[arg-type]
    stray, own = frame_packets(10, 0, 1, key=True)[0], frame_packets(500, 0, 1, key=True)[0]
    stray.extensions.mid, own.extensions.mid = "4", "2"
    probe._on_packet(stray)
    probe._on_packet(own)
    assert probe.misrouted == 1 and probe.frames == 1 and probe.digests == [frame_digest(own._data)]


def test_codec_checks():
    assert vp8_is_keyframe(b"\x10\x02") and not vp8_is_keyframe(b"\x11")
    assert h264_is_keyframe(b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x01\x65")
    assert not h264_is_keyframe(b"\x00\x00\x00\x01\x41\x9a")
    assert is_frame_start("VP8", b"\x10\x00") and not is_frame_start("VP8", b"\x00\x00")
    assert is_frame_start("H264", b"\x7c\x85") is None
