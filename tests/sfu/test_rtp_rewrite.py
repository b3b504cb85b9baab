"""RTP-level forwarding without a network: keyframe starts, and one slot's rewriting."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from rtp.codecs import packet_starts_keyframe
from sfu.forwarding import SWITCH_GAP, Counters, SlotTrack

from .fakes import FakePort, FakePublication, feed


def vp8(seq: int, ts: int, *, start: bool, key: bool, ssrc: int = 1, marker: bool = False):
    # descriptor with X bit and a 15-bit picture id, as Chromium sends it
    descriptor = bytes([0x90 if start else 0x80, 0x80, 0x80 | 0x12, 0x34])
    body = bytes([0x00 if key else 0x01, 0x42])
    packet = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF)
    packet.ssrc, packet.marker, packet.payload = ssrc, int(marker), descriptor + body
    return packet


def test_keyframe_start_detection():
    assert packet_starts_keyframe("VP8", vp8(1, 0, start=True, key=True).payload)
    assert not packet_starts_keyframe("VP8", vp8(1, 0, start=True, key=False).payload)
    assert not packet_starts_keyframe("VP8", vp8(1, 0, start=False, key=True).payload)
    assert packet_starts_keyframe("VP8", bytes([0x10, 0x00]))  # no extension byte
    assert not packet_starts_keyframe("VP8", bytes([0x90]))  # truncated: not a keyframe
    sps, pps, idr, slice_ = b"\x67\x42", b"\x68\xce", b"\x65\x88", b"\x41\x9a"
    stap = b"\x78" + b"".join(len(n).to_bytes(2, "big") + n for n in (sps, pps))
    assert packet_starts_keyframe("H264", stap)
    assert packet_starts_keyframe("H264", idr)
    assert packet_starts_keyframe("H264", bytes([0x7C, 0x85]))  # FU-A start of an IDR
    assert not packet_starts_keyframe("H264", bytes([0x7C, 0x05]))  # FU-A middle
    assert not packet_starts_keyframe("H264", slice_)


async def test_slot_rewrites_into_one_continuous_stream():
    port = FakePort()
    slot = SlotTrack("video", "1", Counters(), lambda: port)  # type: ignore[arg-type,return-value]
    ana, bo = FakePublication("ana"), FakePublication("bo")
    slot.set_source(ana)

    feed(slot, vp8(100, 9000, start=True, key=False))  # delta frame: wait, ask for a keyframe
    assert port.sent == [] and ana.keyframe_requests >= 1
    feed(slot, vp8(101, 12000, start=True, key=True))
    feed(slot, vp8(102, 12000, start=False, key=False, marker=True))
    feed(slot, vp8(99, 9000, start=False, key=False))  # late packet from before the start
    feed(slot, vp8(104, 15000, start=False, key=False, marker=True))  # 103 lost upstream
    feed(slot, vp8(103, 15000, start=True, key=False))  # ... and recovered: fills the gap
    seqs = [s for s, _, _ in port.sent]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 3, seqs[0] + 2]
    ts0 = port.sent[0][1]
    assert [t - ts0 for _, t, _ in port.sent] == [0, 0, 3000, 3000]

    # Switching the slot to Bo continues the same output numbering after a keyframe.
    slot.set_source(bo)
    feed(slot, vp8(5000, 777, start=True, key=False, ssrc=2))
    assert len(port.sent) == 4
    feed(slot, vp8(5001, 777 + 3000, start=True, key=True, ssrc=2, marker=True))
    seq, ts, marker = port.sent[-1]
    assert seq == seqs[0] + 4
    assert ts == ts0 + 3000 + SWITCH_GAP["video"] and marker == 1

    # Bo's encoder restarts with a new SSRC: wait for its keyframe again.
    feed(slot, vp8(1, 0, start=True, key=False, ssrc=3))
    assert len(port.sent) == 5
    feed(slot, vp8(2, 3000, start=True, key=True, ssrc=3))
    assert port.sent[-1][0] == seqs[0] + 5
    slot.stop()
    assert bo.outputs == set()
