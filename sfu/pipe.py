"""Pipes between media servers: one publication's RTP, sent once to another server.

A meeting may span workers (one process per core) and nodes. When a subscriber on server B
needs a publication that lives on server A, A pipes that publication to B once, and B fans it
out to its own subscribers through a `Publication` of its own, exactly as if the publisher
were connected there: slots, keyframe gating, temporal layers, audio levels, the recorder.

Each MediaServer has one UDP socket for all its pipes (`PipeEndpoint`). Inside a host or a
deployment's private network there is no ICE, DTLS or SRTP: plain RTP and RTCP (RFC 3550,
4585), multiplexed on that one port as RFC 5761 does (RTCP packet types 192-223 in the second
byte). Which pipe a datagram belongs to is its SSRC: the pipe id, chosen by whoever wires the
pipes (signaling), unique among the pipes a server receives and among those it sends.

Media, origin -> receiver: an RTP packet (V=2, no padding, CC=1)::

    SSRC  = pipe id
    CSRC  = the stream inside the pipe: the publisher's SSRC, plus the number of times the
            pipe restarted after a pause (a moderator's block): when it changes, the receiver
            starts again at a keyframe, as for a publisher whose SSRC changed
    PT    = 96 VP8, 102 H264, 111 opus (checked against what the receiver expects)
    M, sequence number, timestamp: the publisher's, untouched
    X     = 1 when the packet carries an audio level: RFC 8285 one-byte header, id 1, the
            RFC 6464 byte (V bit + level) as the publisher sent it
    payload: the publisher's RTP payload, byte for byte (VP8 descriptor included)

Why the SSRC and not a header of our own: the datagram stays plain RTP (any RTP tool reads
it), one 32-bit lookup finds the pipe, and keyframe requests and NACKs name a pipe the way
RTCP names a stream: by its SSRC. The publisher's own SSRC moves to the CSRC, where it
still tells the receiver when the stream restarts.

Control (RTCP):

* PLI (PT 206, FMT 1), receiver -> origin, media SSRC = pipe id: the receiver's publication
  wants a keyframe; the origin's publication asks its publisher (its own rate limit).
* Generic NACK (PT 205, FMT 1), receiver -> origin: sequence numbers lost on the pipe; the
  origin resends them from the pipe's history (512 packets, `rtp.repair` limits). Each gap
  is asked for once; subscribers' own NACKs are answered by B's slots from what they sent.
* Demand (APP, PT 204, name `TDMD`, subtype 1 = wanted, 0 = idle; SSRC = pipe id),
  receiver -> origin, video only: whether anything on the receiving server uses the stream (a
  subscriber's slot shows it, the recorder records it). An idle pipe sends nothing; wanted
  again, it restarts like a pipe after a pause (new stream id, from a keyframe). A pipe starts
  wanted; the receiver says `idle` when media arrives that nobody uses (again at most once a
  second, in case a datagram was lost), and a PLI counts as `wanted` too (a receiver waiting
  for a keyframe wants the stream), so a lost datagram costs a second at most. Audio is
  always sent: every worker's speaker detector hears every microphone.
* BYE (PT 203), origin -> receiver: the pipe ended (stopped, or the publication went away:
  unpublished, its participant left): the receiver's publication closes at once.

A datagram from anyone but the pipe's peer (its origin for media and BYE, its destination
for PLI and NACK), for an unknown pipe, or malformed, is dropped and counted.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable

from aiortc.rtp import RtpPacket

from rtp import aiortc_hooks, vp8
from rtp.repair import HISTORY_SIZE, RepairBudget
from rtp.types import Kind, Source

from .api import PipeError
from .forwarding import Counters, Publication

logger = logging.getLogger(__name__)

PAYLOAD_TYPES = {"VP8": 96, "H264": 102, "opus": 111}
MAX_DATAGRAM = 4096  # larger datagrams are not ours (an RTP packet fits a 1500-byte MTU)
READ_BATCH = 64  # datagrams read per readiness callback
SOCKET_BUFFER = 4 * 1024 * 1024  # asked for; the kernel caps it (net.core.rmem_max)
MAX_NACK_GAP = 64  # a larger hole is not repaired packet by packet (receivers ask keyframes)

_MEDIA = struct.Struct("!BBHIII")  # V/X/CC, M/PT, sequence, timestamp, SSRC, CSRC
_LEVEL = b"\xbe\xde\x00\x01"  # RFC 8285 one-byte header, one 32-bit word of elements
_RTCP = struct.Struct("!BBH")  # V/count, PT, length in 32-bit words minus one
_FEEDBACK = struct.Struct("!BBHII")  # ... sender SSRC, media SSRC (RFC 4585)
_BYE = struct.Struct("!BBHI")
_SSRC = struct.Struct("!I")
_FCI = struct.Struct("!HH")  # generic NACK: packet id, bitmask of the 16 following
_APP = struct.Struct("!BBHI4s")  # V/subtype, PT, length, SSRC, name (RFC 3550, 6.7)
RTCP_BYE, RTCP_APP, RTCP_RTPFB, RTCP_PSFB = 203, 204, 205, 206
DEMAND = b"TDMD"
IDLE_REPEAT_S = 1.0  # an idle receiver getting media says so again at most this often

Address = tuple[str, int]


# ---------------------------------------------------------------- wire format


def media_datagram(
    pipe_id: int,
    payload_type: int,
    marker: int,
    seq: int,
    timestamp: int,
    stream: int,
    level: int | None,
    payload: bytes,
) -> bytes:
    """One media packet of a pipe (see the module docstring)."""
    if level is None:
        return (
            _MEDIA.pack(0x81, marker << 7 | payload_type, seq, timestamp, pipe_id, stream) + payload
        )
    return (
        _MEDIA.pack(0x91, marker << 7 | payload_type, seq, timestamp, pipe_id, stream)
        + _LEVEL
        + bytes((0x10, level, 0, 0))
        + payload
    )


class Malformed(ValueError):
    """A datagram that is not a pipe's; the argument says why (the drop counter's key)."""


def parse_media(data: bytes) -> tuple[int, int, int, int, int, int, int | None, bytes]:
    """(pipe id, payload type, marker, seq, timestamp, stream, level, payload) of a media
    datagram; Malformed if it is not one."""
    n = len(data)
    if n < 16:
        raise Malformed("truncated")
    first, second, seq, timestamp, pipe_id, stream = _MEDIA.unpack_from(data)
    if first & 0xEF != 0x81:  # version 2, no padding, one CSRC (X may be set)
        raise Malformed("bad-header")
    level = None
    position = 16
    if first & 0x10:
        if n < 20:
            raise Malformed("truncated")
        profile = data[16] << 8 | data[17]
        position = 20 + 4 * (data[18] << 8 | data[19])
        if position > n:
            raise Malformed("truncated")
        if profile == 0xBEDE:
            level = _one_byte_level(data, 20, position)
    return pipe_id, second & 0x7F, second >> 7, seq, timestamp, stream, level, data[position:]


def _one_byte_level(data: bytes, start: int, end: int) -> int | None:
    """The element of id 1 in an RFC 8285 one-byte header block, if it is one byte long."""
    i = start
    while i < end:
        element = data[i]
        if element == 0:  # padding
            i += 1
            continue
        ident, length = element >> 4, (element & 0x0F) + 1
        if ident == 15:
            return None
        if ident == 1 and length == 1 and i + 1 < end:
            return data[i + 1]
        i += 1 + length
    return None


def pli_datagram(pipe_id: int) -> bytes:
    return _FEEDBACK.pack(0x81, RTCP_PSFB, 2, 0, pipe_id)


def demand_datagram(pipe_id: int, wanted: bool) -> bytes:
    return _APP.pack(0x80 | int(wanted), RTCP_APP, 2, pipe_id, DEMAND)


def bye_datagram(pipe_id: int) -> bytes:
    return _BYE.pack(0x81, RTCP_BYE, 1, pipe_id)


def nack_datagram(pipe_id: int, lost: Iterable[int]) -> bytes:
    """A generic NACK for `lost` (sequence numbers in sending order)."""
    fci = bytearray()
    first: int | None = None
    mask = 0
    for seq in lost:
        if first is not None and 0 < (distance := (seq - first) & 0xFFFF) <= 16:
            mask |= 1 << (distance - 1)
            continue
        if first is not None:
            fci += _FCI.pack(first, mask)
        first, mask = seq, 0
    if first is not None:
        fci += _FCI.pack(first, mask)
    return _FEEDBACK.pack(0x81, RTCP_RTPFB, 2 + len(fci) // 4, 0, pipe_id) + bytes(fci)


def nacked(fci: bytes) -> list[int]:
    """The sequence numbers a generic NACK's FCI entries name."""
    lost = []
    for position in range(0, len(fci) - 3, 4):
        first, mask = _FCI.unpack_from(fci, position)
        lost.append(first)
        lost += [(first + bit + 1) & 0xFFFF for bit in range(16) if mask >> bit & 1]
    return lost


# ---------------------------------------------------------------- the two ends


class PipeOut:
    """The origin's end of a pipe: a packet sink of one publication, like a subscriber's
    slot, whose output is the publication's packets as they came, sent to another server."""

    def __init__(
        self,
        endpoint: PipeEndpoint,
        pipe_id: int,
        destination: Address,
        publication: Publication,
        on_end: Callable[[PipeOut], None],
    ) -> None:
        self.endpoint = endpoint
        self.pipe_id = pipe_id
        self.destination = destination
        self.publication = publication
        codec = publication.video_codec if publication.kind == "video" else "opus"
        self.payload_type = PAYLOAD_TYPES[codec]
        self.counters = endpoint.counters
        self.paused = False  # the source is blocked by a moderator: nothing leaves
        self.idle = False  # nothing on the receiving server uses it (video): nothing leaves
        self.keyframe_wanted = False  # the receiver asked; cleared by the next keyframe
        self.ended = False
        self.packets = 0
        self._restarts = 0  # resumes after a pause: part of the stream id (see above)
        self._stream = -1  # the stream id sent last
        self._history: list[tuple[int, int, bytes] | None] = [None] * HISTORY_SIZE
        self._repair = RepairBudget()
        self._on_end = on_end

    # --- the PacketSink interface a Publication calls ------------------------------------
    @property
    def waiting_for_keyframe(self) -> bool:
        """True while the receiver waits for a keyframe, so a deferred PLI still goes out."""
        return self.keyframe_wanted

    def forward(
        self,
        packet: RtpPacket,
        keyframe: bool,
        ntp: int,
        abs_time: bytes,
        audio_level: int | None,
        layers: tuple[int, int, int, int, int] = vp8.NO_LAYERS,
    ) -> None:
        if self.paused or self.idle:
            return
        if keyframe:
            self.keyframe_wanted = False
        seq = packet.sequence_number
        stream = self._stream = (packet.ssrc + self._restarts) & 0xFFFFFFFF
        payload = packet.payload
        data = media_datagram(
            self.pipe_id,
            self.payload_type,
            packet.marker,
            seq,
            packet.timestamp,
            stream,
            audio_level,
            payload,
        )
        self._history[seq % HISTORY_SIZE] = (seq, stream, data)
        if self.endpoint.send(data, self.destination):
            self.packets += 1
            self.counters.packets_piped_out += 1
            self.counters.bytes_piped_out += len(payload)

    def set_source(self, publication: Publication | None) -> None:
        """The publication closed (unpublished, or its participant left): the pipe ends."""
        if publication is None:
            self.end()

    # --- control -----------------------------------------------------------------------
    def start(self) -> None:
        self.publication.attach(self)  # video: asks the publisher for a keyframe

    def set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        if not paused and not self.idle:
            self._restart()

    def demand(self, wanted: bool) -> None:
        """The receiver uses the stream (or no longer does): send it, or stop (video)."""
        if self.publication.kind != "video" or wanted != self.idle:
            return
        self.idle = not wanted
        if wanted and not self.paused:
            self._restart()

    def _restart(self) -> None:
        self._restarts += 1  # the receiver starts again at a keyframe: ask for one
        self.keyframe_wanted = self.publication.kind == "video"
        self.publication.request_keyframe()

    def keyframe_request(self) -> None:
        """A PLI from the receiver: the publication's own (rate-limited) request path. The
        receiver wants the stream, whatever it said before."""
        if self.idle:
            self.demand(True)
        elif self.publication.kind == "video" and not self.paused:
            self.keyframe_wanted = True
            self.publication.request_keyframe()

    def repair(self, lost: list[int]) -> None:
        """A NACK from the receiver: resend what the history still has, within the limits."""
        if self.ended:
            return
        counters = self.counters
        for seq in lost:
            entry = self._history[seq % HISTORY_SIZE]
            if (
                entry is None
                or entry[0] != seq
                or entry[1] != self._stream  # of a stream the receiver no longer takes
                or self.paused
                or self.idle
                or not self._repair.allow(seq, self.packets)
            ):
                counters.retransmissions_refused += 1
            elif self.endpoint.send(entry[2], self.destination):
                counters.retransmissions += 1

    def end(self) -> None:
        """Stop sending, tell the receiver (BYE) and forget the pipe (idempotent)."""
        if self.ended:
            return
        self.ended = True
        self.publication.detach(self)
        self.endpoint.send(bye_datagram(self.pipe_id), self.destination)
        self.endpoint.outgoing.pop(self.pipe_id, None)
        self._history = []
        self._on_end(self)


class PipeIn:
    """The receiving end of a pipe: feeds a publication of this server, whose keyframe
    requests go back up the pipe."""

    def __init__(
        self,
        endpoint: PipeEndpoint,
        pipe_id: int,
        origin: Address,
        participant_id: str,
        source: Source,
        kind: Kind,
        codec: str,
        video_codec: str,
        on_end: Callable[[PipeIn], None],
    ) -> None:
        self.endpoint = endpoint
        self.pipe_id = pipe_id
        self.origin = origin
        self.codec = codec
        self.payload_type = PAYLOAD_TYPES[codec]
        self.counters = endpoint.counters
        self.publication = Publication(
            participant_id, source, kind, self.request_keyframe, endpoint.counters, video_codec
        )
        if kind == "video":
            self.publication.on_demand = self._demand
        self.ended = False
        self.packets = 0
        self.nacks_sent = 0
        self._idle_said = -IDLE_REPEAT_S  # when `idle` was last sent
        self._stream: int | None = None
        self._newest = 0  # newest sequence number of the current stream
        self._on_end = on_end

    def receive(
        self, marker: int, seq: int, timestamp: int, stream: int, level: int | None, payload: bytes
    ) -> None:
        """One media datagram of this pipe, parsed: on to the publication (the hot path)."""
        if stream != self._stream:
            self._stream = stream
            self._newest = seq
        else:
            ahead = (seq - self._newest) & 0xFFFF
            if 0 < ahead < 0x8000:
                if 1 < ahead <= MAX_NACK_GAP + 1:  # a hole: ask for it once
                    lost = [(self._newest + i) & 0xFFFF for i in range(1, ahead)]
                    self.nacks_sent += 1
                    self.endpoint.send(nack_datagram(self.pipe_id, lost), self.origin)
                self._newest = seq
        packet = RtpPacket(self.payload_type, marker, seq, timestamp, stream, payload)
        if level is not None:
            packet.extensions.audio_level = (level >= 0x80, level & 0x7F)
        publication = self.publication
        if publication.kind == "video" and not publication.wanted:
            now = time.monotonic()  # nobody here uses it: tell the origin (again)
            if now - self._idle_said >= IDLE_REPEAT_S:
                self._demand(False)
        if publication.framing:  # the recorder re-assembles frames: depayload as aiortc does
            try:
                aiortc_hooks.set_depayloaded(packet, self.codec)
            except ValueError:
                self.endpoint.drop("bad-payload")
                return
        self.packets += 1
        self.counters.packets_piped_in += 1
        self.counters.bytes_piped_in += len(payload)
        publication.on_rtp(packet)

    def request_keyframe(self, media_ssrc: int) -> None:
        """The publication's upstream: a PLI to the origin (rate-limited by the publication)."""
        self.endpoint.send(pli_datagram(self.pipe_id), self.origin)

    def _demand(self, wanted: bool) -> None:
        """Someone here started (or stopped) using the stream: tell the origin."""
        if not wanted:
            self._idle_said = time.monotonic()
        if not self.ended:
            self.endpoint.send(demand_datagram(self.pipe_id, wanted), self.origin)

    def end(self) -> None:
        """Close the publication (its slots fall idle, its recording ends) and forget the
        pipe (idempotent). Nothing is sent: the origin stops on its own side's call."""
        if self.ended:
            return
        self.ended = True
        self.publication.close()
        self.endpoint.incoming.pop(self.pipe_id, None)
        self._on_end(self)


# ---------------------------------------------------------------- the socket


class PipeEndpoint:
    """A media server's one UDP socket for pipes, in both directions."""

    def __init__(self, host: str, port: int, announced: str | None, counters: Counters) -> None:
        try:
            address = ipaddress.ip_address(host)
        except ValueError as exc:
            raise ValueError(f"pipe bind address {host!r} is not an IP address") from exc
        self.family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        self.counters = counters
        self.announced = announced
        self.outgoing: dict[int, PipeOut] = {}
        self.incoming: dict[int, PipeIn] = {}
        self.dropped: collections.Counter[str] = collections.Counter()
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
                except OSError:
                    pass
            self.sock.bind((str(address), port))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def address(self) -> Address:
        """Where other servers send to: the announced address (else the bound one), port."""
        host, port = self.sock.getsockname()[:2]
        return (self.announced or host, port)

    def peer(self, address: tuple[str, int]) -> Address:
        """`address` as datagrams from it will show (IPv4 on an IPv6 socket: mapped)."""
        host, port = address
        try:
            ip = ipaddress.ip_address(host)
        except ValueError as exc:
            raise PipeError("bad-address", f"{host!r} is not an IP address") from exc
        if not 0 < port < 65536:
            raise PipeError("bad-address", f"port {port} out of range")
        if self.family == socket.AF_INET6 and ip.version == 4:
            return (f"::ffff:{ip}", port)
        if self.family == socket.AF_INET and ip.version == 6:
            raise PipeError("bad-address", f"{host} is IPv6; the pipe socket is IPv4")
        return (str(ip), port)

    # --- pipes ---------------------------------------------------------------------------
    def open_out(
        self,
        pipe_id: int,
        destination: tuple[str, int],
        publication: Publication,
        on_end: Callable[[PipeOut], None],
    ) -> PipeOut:
        _check_id(pipe_id)
        if pipe_id in self.outgoing:
            raise PipeError("pipe-id-in-use", f"pipe {pipe_id} already leaves this server")
        pipe = PipeOut(self, pipe_id, self.peer(destination), publication, on_end)
        self._start_reading()
        self.outgoing[pipe_id] = pipe
        return pipe

    def open_in(
        self,
        pipe_id: int,
        origin: tuple[str, int],
        participant_id: str,
        source: Source,
        kind: Kind,
        codec: str,
        video_codec: str,
        on_end: Callable[[PipeIn], None],
    ) -> PipeIn:
        _check_id(pipe_id)
        if pipe_id in self.incoming:
            raise PipeError("pipe-id-in-use", f"pipe {pipe_id} already arrives at this server")
        pipe = PipeIn(
            self,
            pipe_id,
            self.peer(origin),
            participant_id,
            source,
            kind,
            codec,
            video_codec,
            on_end,
        )
        self._start_reading()
        self.incoming[pipe_id] = pipe
        return pipe

    # --- datagrams -----------------------------------------------------------------------
    def send(self, data: bytes, address: Address) -> bool:
        try:
            self.sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            self.drop("send-buffer-full")
            return False
        except OSError as exc:
            logger.debug("pipe datagram to %s not sent: %s", address, exc)
            self.drop("send-failed")
            return False
        return True

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        self.counters.pipe_datagrams_dropped += 1

    def _start_reading(self) -> None:
        if self._loop is None and not self.closed:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        sock = self.sock
        for _ in range(READ_BATCH):
            try:
                data, address = sock.recvfrom(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.debug("pipe socket: %s", exc)
                return
            try:
                self.datagram_received(data, address)
            except Exception:  # a bug must not stop the socket: count it, go on
                logger.exception("pipe datagram from %s failed", address)
                self.drop("error")

    def datagram_received(
        self, data: bytes, address: tuple[str, int] | tuple[str, int, int, int]
    ) -> None:
        """Dispatch one datagram: media to its PipeIn, control to the pipe it names."""
        n = len(data)
        if n < 8 or data[0] >> 6 != 2:
            self.drop("not-rtp")
            return
        if n > MAX_DATAGRAM:
            self.drop("oversize")
            return
        if 192 <= data[1] <= 223:
            self._control(data, (address[0], address[1]))
            return
        try:
            pipe_id, payload_type, marker, seq, timestamp, stream, level, payload = parse_media(
                data
            )
        except Malformed as exc:
            self.drop(str(exc))
            return
        pipe = self.incoming.get(pipe_id)
        if pipe is None:
            self.drop("unknown-pipe")
        elif (address[0], address[1]) != pipe.origin:
            self.drop("foreign")
        elif payload_type != pipe.payload_type:
            self.drop("payload-type")
        else:
            pipe.receive(marker, seq, timestamp, stream, level, payload)

    def _control(self, data: bytes, address: Address) -> None:
        """A (compound) RTCP datagram: PLI and NACK for pipes leaving, BYE for arriving."""
        position, n = 0, len(data)
        while position < n:
            if n - position < 8:
                self.drop("truncated")
                return
            first, kind, words = _RTCP.unpack_from(data, position)
            end = position + 4 * (words + 1)
            if first >> 6 != 2 or end > n:
                self.drop("bad-rtcp")
                return
            count = first & 0x1F
            if kind in (RTCP_PSFB, RTCP_RTPFB) and count == 1 and end - position >= 12:
                (pipe_id,) = _SSRC.unpack_from(data, position + 8)
                out = self.outgoing.get(pipe_id)
                if self._from_peer(out.destination if out else None, address):
                    assert out is not None
                    if kind == RTCP_PSFB:
                        out.keyframe_request()
                    else:
                        out.repair(nacked(data[position + 12 : end]))
            elif (
                kind == RTCP_APP
                and end - position >= 12
                and data[position + 8 : position + 12] == DEMAND
            ):
                (pipe_id,) = _SSRC.unpack_from(data, position + 4)
                out = self.outgoing.get(pipe_id)
                if self._from_peer(out.destination if out else None, address):
                    assert out is not None
                    out.demand(bool(count & 1))
            elif kind == RTCP_BYE and count and end - position >= 4 + 4 * count:
                for i in range(count):
                    (pipe_id,) = _SSRC.unpack_from(data, position + 4 + 4 * i)
                    into = self.incoming.get(pipe_id)
                    if self._from_peer(into.origin if into else None, address):
                        assert into is not None
                        logger.info("pipe %d ended by its origin %s", pipe_id, address)
                        into.end()
            else:
                self.drop("rtcp-unknown")
            position = end

    def _from_peer(self, peer: Address | None, address: Address) -> bool:
        """Whether a control datagram comes from the pipe's peer (None: no such pipe)."""
        if peer is None:
            self.drop("unknown-pipe")
            return False
        if address != peer:
            self.drop("foreign")
            return False
        return True

    def close(self) -> None:
        """End every pipe (BYE for those leaving) and close the socket (idempotent)."""
        if self.closed:
            return
        for out in list(self.outgoing.values()):
            out.end()
        for into in list(self.incoming.values()):
            into.end()
        self.closed = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


def _check_id(pipe_id: int) -> None:
    if not 0 < pipe_id <= 0xFFFFFFFF:
        raise PipeError("bad-pipe", f"pipe id {pipe_id} is not a 32-bit number above 0")
