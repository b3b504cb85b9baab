"""Codec facts read from encoded payloads without decoding: keyframes, frame starts, sizes."""

from __future__ import annotations

from collections.abc import Callable


def vp8_is_keyframe(frame: bytes) -> bool:
    """VP8 payload header: bit 0 of the first byte is 0 on keyframes (RFC 6386 9.1)."""
    return bool(frame) and not frame[0] & 0x01


def _annexb_nal_types(frame: bytes) -> list[int]:
    types = []
    i = frame.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(frame):
        types.append(frame[i + 3] & 0x1F)
        i = frame.find(b"\x00\x00\x01", i + 3)
    return types


def h264_is_keyframe(frame: bytes) -> bool:
    """An access unit with an IDR slice (5) or an SPS (7) starts a decodable sequence."""
    return any(t in (5, 7) for t in _annexb_nal_types(frame))


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]
        value = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        """Unsigned Exp-Golomb code (H.264 7.2)."""
        zeros = 0
        while self.bit() == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _skip_scaling_list(reader: _BitReader, size: int) -> None:
    last = next_ = 8
    for _ in range(size):
        if next_:
            next_ = (last + reader.se() + 256) % 256
        last = next_ or last


def h264_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Width and height from the SPS of an Annex-B access unit (H.264 7.3.2.1), or None."""
    start = frame.find(b"\x00\x00\x01")
    while start >= 0 and start + 3 < len(frame) and frame[start + 3] & 0x1F != 7:
        start = frame.find(b"\x00\x00\x01", start + 3)
    if start < 0 or start + 3 >= len(frame):
        return None
    end = frame.find(b"\x00\x00\x01", start + 3)
    rbsp = frame[start + 4 : end if end >= 0 else len(frame)].replace(b"\x00\x00\x03", b"\x00\x00")
    try:
        r = _BitReader(rbsp)
        profile = r.bits(8)
        r.bits(16)  # constraint flags, level
        r.ue()  # seq_parameter_set_id
        chroma_format = 1
        if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            chroma_format = r.ue()
            if chroma_format == 3:
                r.bit()
            r.ue()  # bit depth luma
            r.ue()  # bit depth chroma
            r.bit()
            if r.bit():  # seq_scaling_matrix_present
                for i in range(8 if chroma_format != 3 else 12):
                    if r.bit():
                        _skip_scaling_list(r, 16 if i < 6 else 64)
        r.ue()  # log2_max_frame_num
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bit()
            r.se()
            r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.bit()
        width_mbs = r.ue() + 1
        height_units = r.ue() + 1
        frame_mbs_only = r.bit()
        if not frame_mbs_only:
            r.bit()
        r.bit()  # direct_8x8_inference
        width, height = width_mbs * 16, height_units * 16 * (2 - frame_mbs_only)
        if r.bit():  # frame_cropping
            left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
            crop_x = 2 if chroma_format in (1, 2) else 1
            crop_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
            width -= (left + right) * crop_x
            height -= (top + bottom) * crop_y
        return width, height
    except IndexError:
        return None


def keyframe_detector(codec_name: str) -> Callable[[bytes], bool]:
    """The keyframe test for a video codec name ("VP8" or "H264")."""
    return vp8_is_keyframe if codec_name.upper() == "VP8" else h264_is_keyframe


def is_frame_start(codec_name: str, payload: bytes) -> bool | None:
    """Whether a raw RTP payload starts a frame; None when the payload alone cannot tell."""
    if not payload:
        return None
    if codec_name == "VP8":
        # VP8 payload descriptor: S bit set and partition index 0 (RFC 7741 4.2).
        return bool(payload[0] & 0x10) and payload[0] & 0x07 == 0
    return None


def _vp8_descriptor_length(payload: bytes) -> int:
    """Length of the VP8 payload descriptor at the start of an RTP payload (RFC 7741 4.2)."""
    size = 1
    if payload[0] & 0x80:  # X: extension byte follows
        ext = payload[1]
        size = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            size += 2 if len(payload) > size and payload[size] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            size += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            size += 1
    return size


def _h264_keyframe_nal(payload: bytes) -> bool:
    nal_type = payload[0] & 0x1F
    if nal_type in (5, 7):
        return True
    if nal_type == 24:  # STAP-A: 2-byte sizes, then NAL units
        i = 1
        while i + 2 < len(payload):
            size = int.from_bytes(payload[i : i + 2], "big")
            if payload[i + 2] & 0x1F in (5, 7):
                return True
            i += 2 + size
        return False
    if nal_type == 28 and len(payload) > 1:  # FU-A: start fragment of an IDR slice
        return bool(payload[1] & 0x80) and payload[1] & 0x1F in (5, 7)
    return False


def packet_starts_keyframe(codec_name: str, payload: bytes) -> bool:
    """Whether this raw RTP payload is the first packet of a keyframe (no depayloading).

    A subscriber that has to wait for a keyframe may start with this packet.
    """
    try:
        if codec_name == "VP8":
            if not payload[0] & 0x10 or payload[0] & 0x07:  # S bit, partition 0
                return False
            return not payload[_vp8_descriptor_length(payload)] & 0x01
        return _h264_keyframe_nal(payload)
    except IndexError:  # truncated payload
        return False
