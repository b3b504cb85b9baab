"""The VP8 RTP payload descriptor (RFC 7741 section 4.2): read it, rewrite its picture ids.

An SFU that drops VP8 temporal layers for one receiver (`scalabilityMode: "L1T3"`: one SSRC,
the layer of each frame in the descriptor's TID) must know each packet's layer and must
renumber the picture ids it forwards: libwebrtc's receiver (RtpVp8RefFinder) treats a gap in
picture ids as frames still to come and holds back every upper-layer frame that might depend
on them. TL0PICIDX only needs rewriting when a slot switches to another publisher, because
base-layer frames are never dropped.

These functions sit on the per-packet path, so they take the raw RTP payload (`bytes`) and
return plain ints, tuples or new `bytes`: no object per packet beyond that, no exception for
a short or malformed payload (a truncated descriptor reads as "no layer information").

    0 1 2 3 4 5 6 7
   +-+-+-+-+-+-+-+-+
   |X|R|N|S|R| PID |   (required)  X: extension, N: non-reference, S: partition start
   +-+-+-+-+-+-+-+-+
X: |I|L|T|K| RSV   |   I: picture id, L: TL0PICIDX, T: TID/Y, K: KEYIDX present
   +-+-+-+-+-+-+-+-+
I: |M| PictureID   |   M=1: 15-bit picture id (two bytes), else 7 bits
   +-+-+-+-+-+-+-+-+
   |   PictureID   |   (M=1 only)
   +-+-+-+-+-+-+-+-+
L: |   TL0PICIDX   |
   +-+-+-+-+-+-+-+-+
T/K:|TID|Y| KEYIDX |   one byte when T or K is set
   +-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

from typing import NamedTuple

PICTURE_ID_7 = 0x80  # modulus of a 7-bit picture id
PICTURE_ID_15 = 0x8000  # modulus of a 15-bit picture id
TL0PICIDX_MODULO = 0x100

# `temporal()` when the descriptor carries no layer information (or is truncated).
NO_LAYERS = (-1, 0, -1, -1, 0)


class Descriptor(NamedTuple):
    """Every field of one payload descriptor; absent optional fields are -1 (bits: 0).

    For tests, logs and diagnostics; the forwarding path uses `temporal()` and `rewrite()`.
    """

    size: int  # descriptor length in bytes: the VP8 payload starts at this offset
    non_reference: bool  # N: no other frame depends on this one
    start: bool  # S: first packet of a VP8 partition
    partition: int  # PID: partition index (0..7)
    picture_id: int  # -1 when absent
    picture_id_bits: int  # 0 (absent), 7 or 15
    tl0picidx: int  # -1 when absent
    tid: int  # temporal layer index, -1 when absent
    layer_sync: bool  # Y: depends only on the base layer (TL0) frame
    key_index: int  # KEYIDX, -1 when absent
    keyframe: bool  # frame start (S, partition 0) whose VP8 header has P = 0


def parse(payload: bytes) -> Descriptor | None:
    """The descriptor at the start of a VP8 RTP payload, or None if it is cut short."""
    n = len(payload)
    if n < 1:
        return None
    b0 = payload[0]
    pos = 1
    picture_id = tl0 = tid = key_index = -1
    bits = 0
    sync = False
    if b0 & 0x80:  # X
        if n < 2:
            return None
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I
            if n <= pos:
                return None
            if payload[pos] & 0x80:  # M: 15 bits
                if n < pos + 2:
                    return None
                picture_id = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
                bits = 15
                pos += 2
            else:
                picture_id = payload[pos]
                bits = 7
                pos += 1
        if ext & 0x40:  # L
            if n <= pos:
                return None
            tl0 = payload[pos]
            pos += 1
        if ext & 0x30:  # T or K: one shared byte
            if n <= pos:
                return None
            byte = payload[pos]
            if ext & 0x20:
                tid = byte >> 6
                sync = bool(byte & 0x20)
            if ext & 0x10:
                key_index = byte & 0x1F
            pos += 1
    start = bool(b0 & 0x10)
    partition = b0 & 0x07
    keyframe = start and partition == 0 and n > pos and not payload[pos] & 0x01
    return Descriptor(
        pos,
        bool(b0 & 0x20),
        start,
        partition,
        picture_id,
        bits,
        tl0,
        tid,
        sync,
        key_index,
        keyframe,
    )


def temporal(payload: bytes) -> tuple[int, int, int, int, int]:
    """What a temporal-layer filter needs, in one pass: `(tid, sync, picture_id, tl0picidx,
    frame_start)`; -1 for an absent field, `NO_LAYERS` for a truncated descriptor.

    `sync` is the Y bit (1: this frame references only its TL0 frame, so a receiver can start
    taking this layer here); `frame_start` is 1 on the first packet of a frame (S bit and
    partition 0), where a filter may change the layers it lets through.
    """
    try:
        b0 = payload[0]
        if not b0 & 0x80:
            return -1, 0, -1, -1, int(b0 & 0x17 == 0x10)
        ext = payload[1]
        pos = 2
        picture_id = tl0 = tid = -1
        sync = 0
        if ext & 0x80:
            byte = payload[pos]
            if byte & 0x80:
                picture_id = ((byte & 0x7F) << 8) | payload[pos + 1]
                pos += 2
            else:
                picture_id = byte
                pos += 1
        if ext & 0x40:
            tl0 = payload[pos]
            pos += 1
        if ext & 0x20:
            byte = payload[pos]
            tid = byte >> 6
            sync = (byte >> 5) & 1
        return tid, sync, picture_id, tl0, int(b0 & 0x17 == 0x10)
    except IndexError:
        return NO_LAYERS


def rewrite(payload: bytes, picture_id: int = -1, tl0picidx: int = -1) -> bytes:
    """`payload` with its picture id and/or TL0PICIDX replaced (-1: leave that field).

    The picture id keeps the width the sender chose (7 or 15 bits) and is reduced modulo that
    width, as is TL0PICIDX modulo 256, so a caller can pass running counters. A field the
    descriptor does not carry is left out, and a truncated payload comes back unchanged:
    the caller forwards it as it is.
    """
    if len(payload) < 3 or not payload[0] & 0x80 or (picture_id < 0 and tl0picidx < 0):
        return payload
    ext = payload[1]
    pos = start = 2
    fields = b""  # replacement bytes for payload[start:pos] (the two fields are adjacent)
    if ext & 0x80:
        if payload[2] & 0x80:
            if len(payload) < 4:
                return payload
            if picture_id >= 0:
                fields = (0x8000 | (picture_id & 0x7FFF)).to_bytes(2, "big")
            pos = 4
        else:
            if picture_id >= 0:
                fields = bytes((picture_id & 0x7F,))
            pos = 3
    if ext & 0x40 and tl0picidx >= 0:
        if len(payload) <= pos:
            return payload
        if not fields:
            start = pos
        fields += bytes((tl0picidx & 0xFF,))
        pos += 1
    if not fields:
        return payload
    return payload[:start] + fields + payload[pos:]


def picture_id_modulus(payload: bytes) -> int:
    """The picture id's modulus in this descriptor (128 or 32768), 0 if it has none."""
    if len(payload) < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:
        return 0
    return PICTURE_ID_15 if payload[2] & 0x80 else PICTURE_ID_7


def keyframe_height(payload: bytes) -> int:
    """The frame height a keyframe's first packet announces (RFC 6386 9.1), 0 otherwise.

    The VP8 keyframe header follows the descriptor: a 3-byte frame tag (bit 0 = 0 on
    keyframes), the start code 9d 01 2a, then width and height as 14-bit little-endian
    numbers with 2 bits of scaling each.
    """
    d = parse(payload)
    if d is None or not d.keyframe:
        return 0
    at = d.size
    if payload[at + 3 : at + 6] != b"\x9d\x01\x2a" or len(payload) < at + 10:
        return 0
    return int.from_bytes(payload[at + 8 : at + 10], "little") & 0x3FFF
