"""The VP8 payload descriptor reader and rewriter (rtp/vp8.py), on hand-made descriptors of
every shape RFC 7741 allows, on truncated and random payloads (which must never raise)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from rtp import vp8
from rtp.codecs import _vp8_descriptor_length, packet_starts_keyframe

KEY_HEADER = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A])  # P = 0: keyframe
DELTA_HEADER = bytes([0x31, 0x01, 0x00, 0x55, 0x66])  # P = 1: interframe


def descriptor(
    *,
    start: bool = True,
    partition: int = 0,
    non_reference: bool = False,
    picture_id: int | None = None,
    long_id: bool = True,
    tl0: int | None = None,
    tid: int | None = None,
    sync: bool = False,
    key_index: int | None = None,
    extension: bool | None = None,
) -> bytes:
    """A descriptor with exactly the optional fields given (RFC 7741 4.2)."""
    fields = picture_id is not None or tl0 is not None or tid is not None or key_index is not None
    x = fields if extension is None else extension
    out = bytearray([(0x80 if x else 0) | (0x20 if non_reference else 0)])
    out[0] |= (0x10 if start else 0) | partition
    if not x:
        return bytes(out)
    ext = 0
    ext |= 0x80 if picture_id is not None else 0
    ext |= 0x40 if tl0 is not None else 0
    ext |= 0x20 if tid is not None else 0
    ext |= 0x10 if key_index is not None else 0
    out.append(ext)
    if picture_id is not None:
        if long_id:
            out += bytes([0x80 | (picture_id >> 8), picture_id & 0xFF])
        else:
            out.append(picture_id)
    if tl0 is not None:
        out.append(tl0)
    if tid is not None or key_index is not None:
        out.append(((tid or 0) << 6) | (0x20 if sync else 0) | (key_index or 0))
    return bytes(out)


# Every combination of the optional fields (I 7/15 bits or absent, L, T, K), with values that
# differ from each other so that a field read from the wrong offset shows.
SHAPES: list[dict[str, object]] = []
for pid, tl0, tid, key in itertools.product(
    (None, "short", "long"), (None, 0xA7), (None, 2), (None, 0x15)
):
    shape: dict[str, object] = {"tl0": tl0, "tid": tid, "key_index": key}
    if pid == "short":
        shape.update(picture_id=0x5B, long_id=False)
    elif pid == "long":
        shape.update(picture_id=0x1234, long_id=True)
    SHAPES.append(shape)


def test_minimal_descriptor_has_no_layers():
    d = vp8.parse(descriptor() + KEY_HEADER)
    assert d == vp8.Descriptor(1, False, True, 0, -1, 0, -1, -1, False, -1, True)
    assert vp8.temporal(descriptor() + KEY_HEADER) == (-1, 0, -1, -1, 1)
    assert vp8.temporal(descriptor(start=False) + DELTA_HEADER) == vp8.NO_LAYERS


def test_extension_byte_without_fields():
    payload = descriptor(extension=True) + DELTA_HEADER
    d = vp8.parse(payload)
    assert d is not None and d.size == 2 and d.picture_id == -1 and d.tid == -1
    assert not d.keyframe
    assert vp8.temporal(payload) == (-1, 0, -1, -1, 1)


def test_every_shape_reads_every_field():
    for shape in SHAPES:
        payload = descriptor(**shape) + KEY_HEADER  # type: ignore[arg-type]
        d = vp8.parse(payload)
        assert d is not None, shape
        assert d.size == len(payload) - len(KEY_HEADER) == _vp8_descriptor_length(payload)
        assert d.picture_id == shape.get("picture_id", -1)
        assert d.picture_id_bits == (
            0 if "picture_id" not in shape else 15 if shape["long_id"] else 7
        )
        assert d.tl0picidx == (-1 if shape["tl0"] is None else shape["tl0"])
        assert d.tid == (-1 if shape["tid"] is None else shape["tid"])
        assert d.key_index == (-1 if shape["key_index"] is None else shape["key_index"])
        assert d.keyframe and d.start and d.partition == 0
        assert packet_starts_keyframe("VP8", payload)


def test_chromium_l1t3_shape():
    """What Chromium sends for L1T3: 15-bit picture id, TL0PICIDX, TID and Y."""
    for tid, sync in ((0, False), (2, True), (1, True), (2, False)):
        payload = descriptor(picture_id=0x7FFF, tl0=255, tid=tid, sync=sync) + DELTA_HEADER
        assert vp8.temporal(payload) == (tid, int(sync), 0x7FFF, 255, 1)
        d = vp8.parse(payload)
        assert d is not None and d.layer_sync is sync and not d.keyframe and d.size == 6


def test_flags_and_partitions():
    d = vp8.parse(descriptor(start=False, partition=5, non_reference=True, tid=3) + b"\x00")
    assert d is not None
    assert (d.start, d.partition, d.non_reference, d.tid, d.keyframe) == (False, 5, True, 3, False)
    # a packet that starts partition 1 is not a frame start, and never a keyframe start
    later = descriptor(partition=1, picture_id=9, tid=1) + KEY_HEADER
    assert vp8.temporal(later)[4] == 0
    later_d = vp8.parse(later)
    assert later_d is not None and not later_d.keyframe
    # continuation packet of a keyframe: not a keyframe start
    cont = vp8.parse(descriptor(start=False, picture_id=9, tid=0) + KEY_HEADER)
    assert cont is not None and not cont.keyframe


def test_key_index_without_tid():
    """K without T: the shared byte holds KEYIDX, and TID stays unknown."""
    payload = descriptor(key_index=7) + DELTA_HEADER
    d = vp8.parse(payload)
    assert d is not None and d.key_index == 7 and d.tid == -1 and d.size == 3
    assert vp8.temporal(payload) == (-1, 0, -1, -1, 1)


def test_temporal_agrees_with_parse_on_every_shape():
    for shape, sync, start in itertools.product(SHAPES, (False, True), (False, True)):
        payload = descriptor(sync=sync, start=start, **shape) + DELTA_HEADER  # type: ignore[arg-type]
        d = vp8.parse(payload)
        assert d is not None
        tid, y, pid, tl0, frame_start = vp8.temporal(payload)
        assert (tid, pid, tl0, frame_start) == (d.tid, d.picture_id, d.tl0picidx, int(start))
        assert y == (int(d.layer_sync) if d.tid >= 0 else 0)


def test_truncated_payloads_never_raise():
    for shape in SHAPES:
        full = descriptor(tid=shape["tid"] and 1, **{k: v for k, v in shape.items() if k != "tid"})  # type: ignore[arg-type]
        full += KEY_HEADER
        for cut in range(len(full) + 1):
            payload = full[:cut]
            d = vp8.parse(payload)
            size = _vp8_descriptor_length(full)
            if cut < size:
                assert d is None, (shape, cut)
                # never a wrong field: nothing, or what the whole descriptor says
                t = vp8.temporal(payload)
                assert t == vp8.NO_LAYERS or t[:4] == vp8.temporal(full)[:4], (shape, cut)
            else:
                assert d is not None and d.size == size
                assert d.keyframe == (cut > size)
            out = vp8.rewrite(payload, picture_id=77, tl0picidx=3)
            assert len(out) == len(payload)
            vp8.picture_id_modulus(payload)
    assert vp8.parse(b"") is None
    assert vp8.temporal(b"") == vp8.NO_LAYERS
    assert vp8.rewrite(b"", 1, 1) == b""


def test_rewrite_15_bit_picture_id_wraps_and_keeps_the_rest():
    payload = descriptor(picture_id=0x1234, tl0=9, tid=1, sync=True) + DELTA_HEADER
    for new, expected in (
        (0, 0),
        (0x7FFF, 0x7FFF),
        (0x8000, 0),
        (0x8000 + 5, 5),
        (70000, 70000 % 0x8000),
    ):
        out = vp8.rewrite(payload, picture_id=new)
        d = vp8.parse(out)
        assert d is not None and d.picture_id == expected and d.picture_id_bits == 15
        assert (d.tl0picidx, d.tid, d.layer_sync) == (9, 1, True)
        assert out[0:2] == payload[0:2] and out[4:] == payload[4:]


def test_rewrite_7_bit_picture_id_wraps():
    payload = descriptor(picture_id=0x05, long_id=False, tl0=1, tid=0) + KEY_HEADER
    out = vp8.rewrite(payload, picture_id=130)
    d = vp8.parse(out)
    assert d is not None and d.picture_id == 2 and d.picture_id_bits == 7 and d.keyframe
    assert out[3:] == payload[3:]
    assert vp8.picture_id_modulus(payload) == vp8.PICTURE_ID_7


def test_rewrite_tl0picidx_wraps_and_picture_id_can_stay():
    payload = descriptor(picture_id=300, tl0=250, tid=0) + KEY_HEADER
    out = vp8.rewrite(payload, tl0picidx=256 + 4)
    d = vp8.parse(out)
    assert d is not None and d.tl0picidx == 4 and d.picture_id == 300
    both = vp8.parse(vp8.rewrite(payload, picture_id=301, tl0picidx=251))
    assert both is not None and (both.picture_id, both.tl0picidx) == (301, 251)
    # TL0PICIDX without a picture id
    alone = descriptor(tl0=17, tid=2) + DELTA_HEADER
    alone_d = vp8.parse(vp8.rewrite(alone, picture_id=5, tl0picidx=18))
    assert alone_d is not None and alone_d.tl0picidx == 18 and alone_d.picture_id == -1


def test_rewrite_leaves_payloads_without_the_fields_alone():
    for payload in (
        descriptor() + KEY_HEADER,
        descriptor(extension=True) + KEY_HEADER,
        descriptor(tid=2) + DELTA_HEADER,
        descriptor(key_index=3) + DELTA_HEADER,
    ):
        assert vp8.rewrite(payload, picture_id=1, tl0picidx=2) == payload
        assert vp8.picture_id_modulus(payload) == 0
    payload = descriptor(picture_id=40, tl0=2, tid=0) + DELTA_HEADER
    assert vp8.rewrite(payload) == payload
    assert vp8.picture_id_modulus(payload) == vp8.PICTURE_ID_15


def test_rewrite_every_shape_round_trips():
    for shape in SHAPES:
        payload = descriptor(**shape) + DELTA_HEADER  # type: ignore[arg-type]
        before = vp8.parse(payload)
        assert before is not None
        out = vp8.rewrite(payload, picture_id=0x2345, tl0picidx=0x42)
        after = vp8.parse(out)
        assert after is not None and len(out) == len(payload)
        expected_pid = -1 if before.picture_id < 0 else 0x2345 % (1 << before.picture_id_bits)
        assert after.picture_id == expected_pid
        assert after.tl0picidx == (-1 if before.tl0picidx < 0 else 0x42)
        assert after._replace(picture_id=0, tl0picidx=0) == before._replace(
            picture_id=0, tl0picidx=0
        )
        assert out[after.size :] == payload[before.size :]


@given(st.binary(max_size=12))
def test_random_bytes_never_raise(payload: bytes):
    d = vp8.parse(payload)
    t = vp8.temporal(payload)
    assert len(t) == 5
    if d is not None:
        assert d.size <= len(payload)
        if d.tid >= 0:
            assert t[0] == d.tid and t[2] == d.picture_id and t[3] == d.tl0picidx
    out = vp8.rewrite(payload, picture_id=12345, tl0picidx=200)
    assert len(out) == len(payload)
    if d is not None and d.picture_id >= 0:
        again = vp8.parse(out)
        assert again is not None and again.picture_id == 12345 % (1 << d.picture_id_bits)


# First 16 bytes of RTP payloads Chromium 156 sent to the server with
# sendEncodings [{scalabilityMode: "L1T3"}] (one picture each: 0 2 1 2 0 ...).
CHROMIUM_L1T3 = [
    # hex, (tid, sync, picture id, tl0picidx, frame start), non-reference, keyframe
    ("90e0912799207065009d012a8002e001", (0, 1, 0x1127, 0x99, 1), False, True),
    ("80e091279920b830e7c6489d760f804e", (0, 1, 0x1127, 0x99, 0), False, False),
    ("b0e0912899a0311900111c240c2c2c44", (2, 1, 0x1128, 0x99, 1), True, False),
    ("90e091299960711f00151c240c2c2c44", (1, 1, 0x1129, 0x99, 1), False, False),
    ("b0e0912a9980b11b00111c240c2c2c44", (2, 0, 0x112A, 0x99, 1), True, False),
    ("90e0912b9a00113900e4e0af6da337af", (0, 0, 0x112B, 0x9A, 1), False, False),
]


def test_descriptors_captured_from_chromium():
    for text, fields, non_reference, keyframe in CHROMIUM_L1T3:
        payload = bytes.fromhex(text)
        assert vp8.temporal(payload) == fields, text
        d = vp8.parse(payload)
        assert d is not None and d.size == 6 and d.picture_id_bits == 15
        assert (d.non_reference, d.keyframe) == (non_reference, keyframe), text
        assert packet_starts_keyframe("VP8", payload) is keyframe
        tid, sync, pid, tl0, start = fields
        out = vp8.rewrite(payload, picture_id=pid - 0x1000, tl0picidx=tl0 + 1)
        assert vp8.temporal(out) == (tid, sync, pid - 0x1000, tl0 + 1, start)
        assert out[6:] == payload[6:] and out[0:2] == payload[0:2]
