"""The only module that touches aiortc/aioice private attributes.

aiortc's public API decodes every incoming track and re-encodes every outgoing one; an SFU
must forward encoded frames instead. The hooks here replace a receiver's jitter buffer with a
tap (so depayloaded packets reach us and no decoder thread starts), send rewritten RTP
packets straight through a sender's SRTP session and ICE pair (`SenderPort`), redirect a
sender's keyframe requests and NACKs, fix RTX routing, let the ICE host addresses be
chosen, and bind ICE host candidates within a fixed UDP port range. Every private name used
is listed in `_REQUIRED` and verified by `self_check()` at start-up, because aiortc moves
its internals between releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import ipaddress
import logging
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aioice.candidate
import aioice.ice
import aioice.turn
import aiortc
import aiortc.rtcrtpreceiver
from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtp import HeaderExtensionsMap, RtcpRrPacket, RtcpSrPacket, RtpPacket

from .repair import HISTORY_SIZE, RepairBudget, RepairCounters

logger = logging.getLogger(__name__)

TESTED_AIORTC_VERSION = "1.16.0"


class AiortcCompatibilityError(RuntimeError):
    """The installed aiortc lacks a private attribute these hooks rely on."""


_RX = "_RTCRtpReceiver__"
_TX = "_RTCRtpSender__"

# (owner, attribute, how it is checked): "attr" = class attribute, "init" = assigned in
# __init__ (name-mangled instance attribute), "module" = module-level name, "code" = a name
# the function uses (what a hook re-implements).
_REQUIRED: list[tuple[Any, str, str]] = [
    (RTCRtpReceiver, f"{_RX}jitter_buffer", "init"),
    (RTCRtpReceiver, f"{_RX}codecs", "init"),
    (RTCRtpReceiver, f"{_RX}rtx_ssrc", "init"),
    (RTCRtpReceiver, f"{_RX}started", "init"),
    (RTCRtpReceiver, f"{_RX}rtcp_task", "init"),
    (RTCRtpReceiver, f"{_RX}transport", "init"),
    (RTCRtpReceiver, f"{_RX}decoder_thread", "init"),
    (RTCRtpReceiver, f"{_RX}remote_bitrate_estimator", "init"),
    (RTCRtpReceiver, "_run_rtcp", "attr"),
    (RTCRtpReceiver, "_send_rtcp_pli", "attr"),
    (RTCRtpReceiver, "_handle_rtp_packet", "attr"),
    # packets that arrive outside aiortc (the SFU's pipes) are depayloaded as the receiver
    # does it, into the attribute the tap's consumers read (`depayloaded`)
    (RTCRtpReceiver._handle_rtp_packet, "_data", "code"),
    (aiortc.rtcrtpreceiver, "depayload", "module"),
    (RTCRtpSender, "_send_keyframe", "attr"),
    (RTCRtpSender, "_next_encoded_frame", "attr"),
    (RTCRtpSender, "_retransmit", "attr"),
    (RTCRtpSender, "_handle_rtcp_packet", "attr"),
    (RTCRtpSender, "_ssrc", "init"),
    (RTCRtpSender, "_rtx_ssrc", "init"),
    (RTCRtpSender, f"{_TX}started", "init"),
    (RTCRtpSender, f"{_TX}mid", "init"),
    (RTCRtpSender, f"{_TX}rtx_payload_type", "init"),
    (RTCRtpSender, f"{_TX}rtp_header_extensions_map", "init"),
    (RTCRtpSender, f"{_TX}ntp_timestamp", "init"),
    (RTCRtpSender, f"{_TX}rtp_timestamp", "init"),
    (RTCRtpSender, f"{_TX}packet_count", "init"),
    (RTCRtpSender, f"{_TX}octet_count", "init"),
    (HeaderExtensionsMap, "_HeaderExtensionsMap__ids", "init"),
    (RTCDtlsTransport, "_state", "init"),
    (RTCDtlsTransport, "_tx_srtp", "init"),
    (RTCIceTransport, "_connection", "init"),
    (RTCRtpTransceiver, "_codecs", "init"),
    (aioice.ice.Connection, "_nominated", "init"),
    (aioice.ice.CandidatePair, "protocol", "init"),
    (aioice.ice.CandidatePair, "remote_addr", "attr"),
    (aioice.ice.StunProtocol, "send_data", "attr"),
    (aioice.ice.StunProtocol.send_data, "transport", "code"),
    (RTCDtlsTransport, "_register_rtp_receiver", "attr"),
    (RTCDtlsTransport, "_handle_rtp_data", "attr"),
    (RTCDtlsTransport, "_rtp_router", "init"),
    (RTCDtlsTransport, "_rtp_header_extensions_map", "init"),
    (RtpRouter, "register_receiver", "attr"),
    (aiortc.rtcrtpreceiver, "get_decoder", "module"),
    (aioice.ice, "get_host_addresses", "module"),
    # ICE host candidates in a port range (`IceSockets`): a mirror of the host part of
    # Connection.get_component_candidates (aioice 0.13), which then runs with no addresses
    # for the TURN part.
    (aioice.ice.Connection, "get_component_candidates", "attr"),
    (aioice.ice.Connection, "_protocols", "init"),
    (aioice.ice.Connection._pair_remote_candidate, "local_candidate", "code"),
    (aioice.ice, "StunProtocol", "module"),
    (aioice.ice, "server_reflexive_candidate", "module"),
    (aioice.candidate, "candidate_foundation", "module"),
    (aioice.candidate, "candidate_priority", "module"),
    (aioice.turn, "UDP_SOCKET_BUFFER_SIZE", "module"),
]


def _owner_name(owner: Any) -> str:
    return str(getattr(owner, "__qualname__", None) or getattr(owner, "__name__", repr(owner)))


def self_check() -> None:
    """Fail fast, naming aiortc's version and the missing private attribute."""
    version = getattr(aiortc, "__version__", "unknown")
    for owner, name, how in _REQUIRED:
        if how == "init":
            init = owner.__dict__.get("__init__")
            present = init is not None and name in init.__code__.co_names
        elif how == "code":
            present = name in owner.__code__.co_names
        else:
            present = hasattr(owner, name)
        if not present:
            raise AiortcCompatibilityError(
                f"aiortc {version} is not compatible with the SFU hooks (tested with "
                f"{TESTED_AIORTC_VERSION}): {_owner_name(owner)}.{name} is missing"
            )
    if version != TESTED_AIORTC_VERSION:
        logger.warning(
            "aiortc %s differs from the tested %s; hooks self-check passed",
            version,
            TESTED_AIORTC_VERSION,
        )


# ---------------------------------------------------------------- process-wide patches

_installed = False
_decoders_started = 0
_host_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "sfu_ice_host_addresses", default=None
)
_host_sockets: contextvars.ContextVar[IceSockets | None] = contextvars.ContextVar(
    "sfu_ice_host_sockets", default=None
)


def install() -> None:
    """Apply the process-wide patches once (idempotent)."""
    global _installed
    if _installed:
        return
    self_check()
    _patch_rtx_registration()
    _patch_host_addresses()
    _patch_component_candidates()
    _patch_decoder_counter()
    _installed = True


def _patch_rtx_registration() -> None:
    """Register RTX SSRCs with the router too.

    aiortc registers only media SSRCs; with two or more video receivers on one transport the
    RTX payload type is ambiguous and `RtpRouter.route_rtp` drops every retransmission.
    """
    original = RTCDtlsTransport._register_rtp_receiver

    def register(self: RTCDtlsTransport, receiver: Any, parameters: Any) -> None:
        original(self, receiver, parameters)
        rtx_ssrcs = [e.rtx.ssrc for e in parameters.encodings if e.rtx is not None]
        if rtx_ssrcs:
            self._rtp_router.register_receiver(receiver, ssrcs=rtx_ssrcs, payload_types=[])

    register.__wrapped__ = original  # type: ignore[attr-defined]
    RTCDtlsTransport._register_rtp_receiver = register  # type: ignore[method-assign]


def _patch_host_addresses() -> None:
    """Let the caller choose ICE host addresses (aioice always drops 127.0.0.1)."""
    original = aioice.ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _host_addresses.get()
        if not chosen:
            return original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


def _patch_component_candidates() -> None:
    """Gather host candidates on the sockets of an `IceSockets` reservation, when one is set
    for this context (`ice_host_sockets`); otherwise aioice binds ephemeral ports as before."""
    original = aioice.ice.Connection.get_component_candidates

    async def get_component_candidates(
        self: aioice.ice.Connection, component: int, addresses: list[str], timeout: int = 5
    ) -> list[aioice.Candidate]:
        reserved = _host_sockets.get()
        if reserved is None:
            return await original(self, component, addresses, timeout)
        # Mirror of aioice 0.13's host part, on sockets already bound in the range.
        loop = asyncio.get_running_loop()
        hosts: list[aioice.ice.StunProtocol] = []
        for address in addresses:
            sock = reserved.take(address)
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE
                )
            _, protocol = await loop.create_datagram_endpoint(
                lambda: aioice.ice.StunProtocol(self), sock=sock
            )
            host, port = sock.getsockname()[:2]
            protocol.local_candidate = aioice.Candidate(
                foundation=aioice.candidate.candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=aioice.candidate.candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            hosts.append(protocol)
        self._protocols += hosts
        candidates = [protocol.local_candidate for protocol in hosts]
        # aioice itself for the relayed candidate (TURN): it binds no host socket when
        # given no addresses. Server-reflexive candidates (STUN) of the IPv4 host sockets.
        relayed = asyncio.ensure_future(original(self, component, [], timeout))
        reflexive = [
            asyncio.ensure_future(aioice.ice.server_reflexive_candidate(p, self.stun_server))
            for p in hosts
            if self.stun_server and ipaddress.ip_address(p.local_candidate.host).version == 4
        ]
        if reflexive:
            done, pending = await asyncio.wait(reflexive, timeout=timeout)
            for task in pending:
                task.cancel()
            candidates += [t.result()[0] for t in done if t.exception() is None]
        return candidates + await relayed

    get_component_candidates.__wrapped__ = original  # type: ignore[attr-defined]
    aioice.ice.Connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


def _patch_decoder_counter() -> None:
    """Count every aiortc decoder created in this process (an SFU must create none)."""
    original = aiortc.rtcrtpreceiver.get_decoder

    def get_decoder(codec: Any) -> Any:
        global _decoders_started
        _decoders_started += 1
        logger.warning("aiortc decoder created for %s", codec.mimeType)
        return original(codec)

    aiortc.rtcrtpreceiver.get_decoder = get_decoder


def decoders_started() -> int:
    """How many aiortc decoders were created in this process since install()."""
    return _decoders_started


@contextlib.contextmanager
def ice_host_addresses(addresses: tuple[str, ...]) -> Iterator[None]:
    """Gather ICE host candidates on exactly `addresses` within this context (task-local)."""
    token = _host_addresses.set(tuple(addresses) or None)
    try:
        yield
    finally:
        _host_addresses.reset(token)


class IcePortsExhausted(RuntimeError):
    """Every UDP port of the range is taken on an address: no host candidate can be bound."""

    def __init__(self, address: str, port_range: tuple[int, int]) -> None:
        super().__init__(
            f"no free UDP port in {port_range[0]}-{port_range[1]} on {address} for ICE"
        )
        self.address = address
        self.port_range = port_range


class IceSockets:
    """UDP sockets bound in a port range, one per ICE host address, reserved before a peer
    connection gathers (so a full range refuses the offer before anything changed) and
    taken by its gathering inside `ice_host_sockets(...)`. `close()` releases those not
    taken; the ones taken belong to aioice's connection and close with it."""

    def __init__(self, port_range: tuple[int, int], sockets: dict[str, socket.socket]) -> None:
        self.port_range = port_range
        self._sockets = sockets

    @classmethod
    def reserve(cls, addresses: tuple[str, ...], port_range: tuple[int, int]) -> IceSockets:
        """One socket in `port_range` on each of `addresses` (empty: the addresses aioice
        would gather on). Raises IcePortsExhausted (and keeps nothing) when the range is
        full on one of them; an address that cannot be bound at all is left out, as aioice
        leaves it out."""
        with ice_host_addresses(addresses):
            chosen = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
        sockets: dict[str, socket.socket] = {}
        try:
            for address in chosen:
                sock = bind_in_range(address, port_range)
                if sock is not None:
                    sockets[address] = sock
        except IcePortsExhausted:
            for sock in sockets.values():
                sock.close()
            raise
        return cls(port_range, sockets)

    @property
    def ports(self) -> dict[str, int]:
        return {address: sock.getsockname()[1] for address, sock in self._sockets.items()}

    def take(self, address: str) -> socket.socket | None:
        sock = self._sockets.pop(address, None)
        if sock is None:  # an interface that appeared since the reservation
            try:
                sock = bind_in_range(address, self.port_range)
            except IcePortsExhausted as exc:
                logger.warning("%s: no host candidate on %s", exc, address)
        return sock

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()


def bind_in_range(address: str, port_range: tuple[int, int]) -> socket.socket | None:
    """A non-blocking UDP socket bound to `address` on a free port of `port_range` (tried
    from a random place in the range, so processes sharing it rarely collide); None when
    the address itself cannot be bound; IcePortsExhausted when every port is taken."""
    low, high = port_range
    count = high - low + 1
    start = random.randrange(count)
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for step in range(count):
            port = low + (start + step) % count
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                logger.info("could not bind an ICE host candidate on %s: %s", address, exc)
                sock.close()
                return None
            sock.setblocking(False)
            return sock
    except BaseException:
        sock.close()
        raise
    sock.close()
    raise IcePortsExhausted(address, port_range)


@contextlib.contextmanager
def ice_host_sockets(reserved: IceSockets | None) -> Iterator[None]:
    """ICE gathering within this context (task-local) binds its host candidates on the
    reserved sockets; None: aioice's ephemeral ports."""
    token = _host_sockets.set(reserved)
    try:
        yield
    finally:
        _host_sockets.reset(token)


# ---------------------------------------------------------------- receiver tap


class _TapBuffer:
    """Stands in for the receiver's jitter buffer: hands each depayloaded packet on."""

    def __init__(self, sink: Callable[[RtpPacket], None]) -> None:
        self.sink = sink

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        try:
            self.sink(packet)
        except Exception:
            logger.exception("receive tap failed")
        return False, None


def tap_receiver(receiver: RTCRtpReceiver, sink: Callable[[RtpPacket], None]) -> None:
    """Route the receiver's depayloaded packets to `sink` and never start its decoder.

    Must run before `receive()` (e.g. in `pc.on("track")`). SRTP, RTX unwrap, NACK, REMB
    and receiver reports still run in aiortc. `packet._data` holds the depayloaded bytes.
    """
    if getattr(receiver, f"{_RX}started"):
        raise RuntimeError("tap_receiver() must run before the receiver starts")
    setattr(receiver, f"{_RX}jitter_buffer", _TapBuffer(sink))

    async def receive(parameters: Any) -> None:
        # Mirror of RTCRtpReceiver.receive (aiortc 1.16) minus the decoder thread.
        if getattr(receiver, f"{_RX}started"):
            return
        codecs = getattr(receiver, f"{_RX}codecs")
        for codec in parameters.codecs:
            codecs[codec.payloadType] = codec
        rtx_ssrc = getattr(receiver, f"{_RX}rtx_ssrc")
        for encoding in parameters.encodings:
            if encoding.rtx:
                rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc
        getattr(receiver, f"{_RX}transport")._register_rtp_receiver(receiver, parameters)
        setattr(receiver, f"{_RX}rtcp_task", asyncio.ensure_future(receiver._run_rtcp()))
        setattr(receiver, f"{_RX}started", True)

    receiver.receive = receive  # type: ignore[method-assign]


def skip_bandwidth_estimation(receiver: RTCRtpReceiver) -> None:
    """Switch off aiortc's receive-side bandwidth estimator (REMB) on a receiver.

    For load bots: it is their largest single cost (about a sixth of their CPU, in Python, on
    every video packet) and the server ignores subscribers' REMB anyway.
    """
    setattr(receiver, f"{_RX}remote_bitrate_estimator", None)


def set_tap_sink(receiver: RTCRtpReceiver, sink: Callable[[RtpPacket], None]) -> None:
    """Redirect an installed tap (a transceiver can be re-published later)."""
    buffer = getattr(receiver, f"{_RX}jitter_buffer")
    if not isinstance(buffer, _TapBuffer):
        raise RuntimeError("receiver is not tapped")
    buffer.sink = sink


def decoder_running(receiver: RTCRtpReceiver) -> bool:
    """Whether aiortc started a decoder thread for this receiver."""
    return getattr(receiver, f"{_RX}decoder_thread", None) is not None


def depayloaded(packet: RtpPacket) -> bytes:
    """The codec payload aiortc extracted from this RTP packet."""
    return packet._data  # type: ignore[attr-defined,no-any-return]


_DEPAYLOAD_CODECS = {
    "VP8": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000),
    "H264": RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000),
    "opus": RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2),
}


def set_depayloaded(packet: RtpPacket, codec: str) -> None:
    """Depayload a packet that did not come through an aiortc receiver (a pipe from another
    media server) the way the receiver does before its jitter buffer, so that `depayloaded`
    and the framers work on it. `codec`: "VP8", "H264" or "opus". Raises ValueError on a
    payload the codec cannot parse (the receiver drops those)."""
    if packet.payload:
        packet._data = aiortc.rtcrtpreceiver.depayload(_DEPAYLOAD_CODECS[codec], packet.payload)  # type: ignore[attr-defined]
    else:
        packet._data = b""  # type: ignore[attr-defined]


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> Awaitable[None]:
    """Ask the remote sender for a keyframe (RTCP PLI) through this receiver."""
    return receiver._send_rtcp_pli(media_ssrc)


# ---------------------------------------------------------------- sender hooks


def hook_sender(
    sender: RTCRtpSender,
    on_keyframe_request: Callable[[], None],
    audio_level: Callable[[], int | None] | None = None,
    on_loss: Callable[[int], None] | None = None,
) -> None:
    """Redirect PLI/FIR from the remote receiver, report its losses, carry the audio level.

    aiortc answers PLI/FIR by flagging its encoder, which does nothing for `pack()`; and
    `pack()` never sets ssrc-audio-level. `audio_level` returns the RFC 6464 level
    (0..127, i.e. -dBov) of the packet the track returned last. `on_loss` gets the
    fraction lost (0..255, in 256ths) of each receiver report block about this sender.
    """
    sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
    if on_loss is not None:
        _report_losses(sender, on_loss)
    if audio_level is None:
        return
    original = sender._next_encoded_frame

    async def next_encoded_frame(codec: Any) -> Any:
        frame = await original(codec)
        if frame is not None:
            level = audio_level()
            if level is not None:
                frame.audio_level = -level  # the sender writes (False, -audio_level)
        return frame

    sender._next_encoded_frame = next_encoded_frame  # type: ignore[method-assign]


def _report_losses(sender: RTCRtpSender, on_loss: Callable[[int], None]) -> None:
    original = sender._handle_rtcp_packet

    async def handle_rtcp_packet(packet: Any) -> None:
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    on_loss(report.fraction_lost)
        await original(packet)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


# ---------------------------------------------------------------- RTP-level sending

_RTP_HEADER = struct.Struct("!BBHII")
_NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)


def ntp_now() -> int:
    """64-bit NTP time, as aiortc's clock gives it, without going through datetime."""
    return int((time.time() + _NTP_EPOCH_OFFSET) * 4294967296)


def abs_send_time(ntp: int) -> bytes:
    """The 24-bit abs-send-time header extension value (6.18 fixed-point seconds)."""
    return ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")


class SenderPort:
    """Sends already-packetized RTP through a started sender's SRTP session and ICE pair.

    This is the SFU's hot path: one synchronous call per forwarded packet, no RtpPacket
    object, no coroutine and no task switch. The sender keeps running RTCP: its sender
    reports read the counters updated here, and its NACK handler is pointed at this port's
    history so retransmissions (over RTX when negotiated) still work.
    """

    __slots__ = (
        "_abs_id",
        "_dtls",
        "_history",
        "_ice",
        "_level_id",
        "_mid_element",
        "_repair",
        "_rtx_payload_type",
        "_rtx_seq",
        "_rtx_ssrc",
        "counters",
        "payload_type",
        "resends_refused",
        "resent",
        "sender",
        "ssrc",
    )

    def __init__(
        self, sender: RTCRtpSender, payload_type: int, counters: RepairCounters | None = None
    ) -> None:
        self.sender = sender
        self.counters = counters
        self.ssrc: int = sender._ssrc
        self.payload_type = payload_type
        self._dtls: RTCDtlsTransport = sender.transport
        self._ice = self._dtls.transport._connection  # aioice.Connection
        ids = getattr(sender, f"{_TX}rtp_header_extensions_map")._HeaderExtensionsMap__ids
        mid: str | None = getattr(sender, f"{_TX}mid")
        self._mid_element = (
            bytes([(ids.mid << 4) | (len(mid) - 1)]) + mid.encode() if ids.mid and mid else b""
        )
        self._abs_id: int | None = ids.abs_send_time
        self._level_id: int | None = ids.audio_level
        self._rtx_payload_type: int | None = getattr(sender, f"{_TX}rtx_payload_type")
        self._rtx_ssrc: int = sender._rtx_ssrc
        self._rtx_seq = random.randint(0, 0xFFFF)
        self._history: list[tuple[int, int, int, bytes, bytes] | None] = [None] * HISTORY_SIZE
        self._repair = RepairBudget()
        self.resent = 0  # retransmissions sent
        self.resends_refused = 0  # NACKed packets not resent (repair limits, or too old)
        sender._retransmit = self._retransmit  # type: ignore[method-assign,assignment]

    @classmethod
    def open(
        cls, sender: RTCRtpSender, payload_type: int, counters: RepairCounters | None = None
    ) -> SenderPort | None:
        """A port once the sender has started and its transport is connected, else None."""
        if not getattr(sender, f"{_TX}started"):
            return None
        if sender.transport._state is not DtlsState.CONNECTED:
            return None
        return cls(sender, payload_type, counters)

    @property
    def connected(self) -> bool:
        return self._dtls._state is DtlsState.CONNECTED

    def _extensions(self, abs_time: bytes | None, audio_level: int | None) -> bytes:
        elements = self._mid_element
        if abs_time is not None and self._abs_id:
            elements += bytes(((self._abs_id << 4) | 2,)) + abs_time
        if audio_level is not None and self._level_id:
            elements += bytes(((self._level_id << 4), audio_level))
        if not elements:
            return b""
        pad = -len(elements) % 4
        if pad:
            elements += b"\0" * pad
        return b"\xbe\xde" + (len(elements) // 4).to_bytes(2, "big") + elements

    def send(
        self,
        seq: int,
        timestamp: int,
        marker: int,
        payload: bytes,
        ntp: int,
        abs_time: bytes | None,
        audio_level: int | None = None,
    ) -> bool:
        """Send one RTP packet; `audio_level` is the RFC 6464 byte (V bit + level)."""
        extensions = self._extensions(abs_time, audio_level)
        header = _RTP_HEADER.pack(
            0x90 if extensions else 0x80,
            (marker << 7) | self.payload_type,
            seq,
            timestamp,
            self.ssrc,
        )
        if not self._transmit(header + extensions + payload):
            return False
        self._history[seq % HISTORY_SIZE] = (seq, timestamp, marker, extensions, payload)
        sender = self.sender
        sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += 1  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += len(payload)  # type: ignore[attr-defined]
        return True

    def _transmit(self, packet: bytes) -> bool:
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return False
        pair = self._ice._nominated.get(1)
        if pair is None:
            return False
        data = dtls._tx_srtp.protect(packet)
        protocol = pair.protocol
        if type(protocol).send_data is aioice.ice.StunProtocol.send_data:
            protocol.transport.sendto(data, pair.remote_addr)
        else:  # e.g. a TURN allocation wraps the datagram: go through its coroutine
            task = asyncio.ensure_future(protocol.send_data(data, pair.remote_addr))
            task.add_done_callback(_log_send_failure)
        return True

    async def _retransmit(self, seq: int) -> None:
        """NACK handler of the sender: resend from this port's history (RTX if negotiated)."""
        index = seq % HISTORY_SIZE
        entry = self._history[index]
        sent = self.sender._RTCRtpSender__packet_count  # type: ignore[attr-defined]
        if entry is None or entry[0] != seq or not self._repair.allow(seq, sent):
            self.resends_refused += 1
            if self.counters is not None:
                self.counters.retransmissions_refused += 1
            return
        _, timestamp, marker, extensions, payload = entry
        if self._rtx_payload_type is None:
            pt, ssrc, out_seq = self.payload_type, self.ssrc, seq
        else:
            pt, ssrc, out_seq = self._rtx_payload_type, self._rtx_ssrc, self._rtx_seq
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            payload = seq.to_bytes(2, "big") + payload
        header = _RTP_HEADER.pack(
            0x90 if extensions else 0x80, (marker << 7) | pt, out_seq, timestamp, ssrc
        )
        if self._transmit(header + extensions + payload):
            self.resent += 1
            if self.counters is not None:
                self.counters.retransmissions += 1


def open_sender_port(
    transceiver: RTCRtpTransceiver, counters: RepairCounters | None = None
) -> SenderPort | None:
    """The port of a transceiver's sender, once negotiated and connected (else None)."""
    codecs = transceiver._codecs
    if not codecs or codecs[0].payloadType is None:
        return None
    return SenderPort.open(transceiver.sender, codecs[0].payloadType, counters)


def _log_send_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("RTP send failed: %r", task.exception())


# ---------------------------------------------------------------- fault injection (tests)


def inject_rtp_loss(pc: RTCPeerConnection, rate: float, seed: int = 1) -> Callable[[], int]:
    """Drop `rate` of the RTP packets this PC receives (after SRTP); returns a drop counter.

    For tests and load bots that need loss on one path without touching the network.
    """
    rng = random.Random(seed)
    dropped = 0
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if id(transport) in seen:
            continue
        seen.add(id(transport))
        original = transport._handle_rtp_data

        async def handle(data: bytes, arrival_time_ms: int, _orig: Any = original) -> None:
            nonlocal dropped
            if rng.random() < rate:
                dropped += 1
                return
            await _orig(data, arrival_time_ms=arrival_time_ms)

        transport._handle_rtp_data = handle  # type: ignore[method-assign]
    return lambda: dropped
