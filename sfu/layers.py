"""Per-receiver quality: which VP8 temporal layers one receive slot forwards.

Browsers publish their camera with `scalabilityMode: "L1T3"`: one SSRC, and every frame
belongs to temporal layer 0, 1 or 2 (its TID, in the VP8 payload descriptor). Layer 0 alone
is a quarter of the frame rate, layers 0-1 half of it, all three the full rate; a frame
never references a frame of a higher layer, so a receiver can be sent any prefix of the
layers and still decode everything it gets. A receiver that draws a publisher's video small
gets fewer layers (`layers_for`): fewer frames to download and to decode, which is what
lets a browser show a gallery of 25 tiles. (docs/sfu.md says why this and not simulcast.)

`TemporalFilter` makes that decision for one slot, picture by picture, and keeps the
output well-formed for libwebrtc's receiver: picture ids continue without gaps (a gap
reads as frames still to come, and RtpVp8RefFinder holds back every later upper-layer frame
that might depend on them), and after a switch to another publisher both picture ids and
TL0PICIDX continue from where the slot's stream was. Layers go down at once and up only
where a receiver can start them: at a base-layer frame, or at a frame with the layer-sync
bit. The slot (`sfu.forwarding.SlotTrack`) renumbers sequence numbers around what is
dropped.

A stream without temporal layers (no TID: another browser, a bot, screen share) passes
through untouched.
"""

from __future__ import annotations

from rtp import vp8

MAX_TID = 2  # L1T3: layers 0, 1, 2
_TABLE = 256  # recent pictures remembered (indexed by picture id mod 256)
_DROPPED = -2


def layers_for(max_height: int, frame_height: int) -> int:
    """The highest temporal layer for a receiver that draws a stream `frame_height` tall
    at `max_height`: all three from half the size up, layers 0-1 (half the frame rate) from
    a quarter, the base layer (a quarter of the frames) below. An unknown frame height gets
    everything.

    Temporal layers cannot make a frame smaller, so a small tile is served by sending
    fewer of the full-size frames: the browser downloads and decodes 2-4 times less. The
    bounds are generous because a fluid picture matters more than pixels: a gallery of
    three on a laptop (tiles 328 px tall, a 480p camera) still gets every frame; a strip
    or a gallery of 25 (about 120 px) gets half of a 480p camera's frames, a quarter of
    a 720p camera's.
    """
    if frame_height <= 0 or 2 * max_height >= frame_height:
        return MAX_TID
    if 4 * max_height >= frame_height:
        return 1
    return 0


class TemporalFilter:
    """The layer decision and picture-id rewrite of one slot (see the module docstring)."""

    __slots__ = (
        "_current",
        "_in_pid",
        "_last_out_pid",
        "_last_out_tl0",
        "_last_pid",
        "_modulus",
        "_out_pid",
        "_pid_offset",
        "_restart",
        "_tl0_offset",
        "pictures_dropped",
    )

    def __init__(self) -> None:
        self._current = MAX_TID  # layers forwarded now (the target, once a frame allows it)
        self._restart = True  # the next picture starts a new input stream (a keyframe)
        self._modulus = vp8.PICTURE_ID_15
        self._last_pid = -1  # newest input picture id
        self._pid_offset = 0  # output picture id = input + offset (mod modulus)
        self._tl0_offset = 0
        self._last_out_pid = -1  # the output's newest picture id and TL0PICIDX, to continue
        self._last_out_tl0 = -1
        # decisions on recent pictures: input picture id, output picture id or _DROPPED
        self._in_pid = [-1] * _TABLE
        self._out_pid = [0] * _TABLE
        self.pictures_dropped = 0

    def restart(self) -> None:
        """The slot starts again at a keyframe (another publisher, or a new SSRC)."""
        self._restart = True
        self._last_pid = -1
        self._in_pid = [-1] * _TABLE

    def admit(
        self, payload: bytes, layers: tuple[int, int, int, int, int], max_tid: int
    ) -> bytes | None:
        """The payload to forward (rewritten if need be), or None to drop the packet.

        `layers` is `vp8.temporal(payload)` (read once per packet by the publication, for
        all its slots); `max_tid` the highest layer the receiver should get now
        (`layers_for`).
        """
        tid, sync, pid, tl0, _ = layers
        if tid < 0 or pid < 0:
            return payload  # no temporal layers: nothing to decide, nothing to renumber
        if self._restart:
            self._start(payload, pid, tl0, max_tid)
        index = pid & (_TABLE - 1)
        if self._in_pid[index] == pid:  # a later packet of a picture already decided
            out = self._out_pid[index]
        else:
            modulus = self._modulus
            ahead = (pid - self._last_pid) % modulus
            newest = self._last_pid < 0 or 0 < ahead < modulus >> 1
            if newest:
                self._last_pid = pid
                if max_tid < self._current:
                    self._current = max_tid  # down: at once
                elif max_tid > self._current and (tid == 0 or (sync and tid <= max_tid)):
                    self._current = max_tid  # up: where the new layers can start
            if tid > self._current:
                out = _DROPPED
                self.pictures_dropped += 1
                if newest:  # the pictures after it move down
                    self._pid_offset = (self._pid_offset - 1) % modulus
                # else: a picture first seen late, after its successor was numbered: its id
                # stays unused (rare: it costs the receiver a few upper-layer frames)
            else:
                out = (pid + self._pid_offset) % modulus
            self._in_pid[index] = pid
            self._out_pid[index] = out
        if out == _DROPPED:
            return None
        if pid == self._last_pid:
            self._last_out_pid = out
        out_tl0 = -1
        if tl0 >= 0:
            out_tl0 = (tl0 + self._tl0_offset) & 0xFF
            if tid == 0 and pid == self._last_pid:
                self._last_out_tl0 = out_tl0
        if out == pid and out_tl0 == tl0:
            return payload
        return vp8.rewrite(payload, out, out_tl0 if out_tl0 != tl0 else -1)

    def _start(self, payload: bytes, pid: int, tl0: int, max_tid: int) -> None:
        """Map a new input stream so that the output continues where it was."""
        self._restart = False
        self._modulus = vp8.picture_id_modulus(payload) or vp8.PICTURE_ID_15
        self._current = max_tid  # a keyframe: any layers may start here
        if self._last_out_pid >= 0:
            self._pid_offset = (self._last_out_pid + 1 - pid) % self._modulus
        if self._last_out_tl0 >= 0 and tl0 >= 0:
            self._tl0_offset = (self._last_out_tl0 + 1 - tl0) & 0xFF


class LossCap:
    """Fewer layers for a receiver that loses packets: the bandwidth half of the choice.

    Fed with the fraction lost of each receiver report about the slot (about one a second
    from a browser). Over 10 % lost takes one layer away, at most once per `HOLD_S` so the
    effect shows in the next reports; under 2 % for `RECOVER_S` since the last change gives
    one back: the loss thresholds of Google Congestion Control's loss-based controller
    (draft-ietf-rmcat-gcc), which is what browsers do to their own sending rate. The
    receiver's drawn height still caps the layers: the slot forwards
    `min(layers_for(height), cap)`.
    """

    HIGH = 26  # 10 % of 256
    LOW = 5  # 2 %
    HOLD_S = 2.0
    RECOVER_S = 4.0

    __slots__ = ("_changed", "_low_since", "cap")

    def __init__(self) -> None:
        self.cap = MAX_TID
        self._changed = -1e9
        self._low_since: float | None = None

    def report(self, fraction_lost: int, now: float) -> int:
        """Take one report (`fraction_lost` in 256ths); returns the layer cap."""
        if fraction_lost > self.HIGH:
            self._low_since = None
            if self.cap > 0 and now - self._changed >= self.HOLD_S:
                self.cap -= 1
                self._changed = now
        elif fraction_lost < self.LOW:
            if self._low_since is None:
                self._low_since = now
            start = max(self._low_since, self._changed)
            if self.cap < MAX_TID and now - start >= self.RECOVER_S:
                self.cap += 1
                self._changed = now
        else:
            self._low_since = None
        return self.cap
