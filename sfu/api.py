"""Public data types of the media server: the only vocabulary signaling needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from rtp.aiortc_hooks import AiortcCompatibilityError
from rtp.types import SOURCE_KIND, Kind, SlotAssignment, Source

__all__ = [
    "SOURCE_KIND",
    "AiortcCompatibilityError",
    "IceServer",
    "Kind",
    "MediaEvents",
    "MediaSettings",
    "NegotiationError",
    "PipeError",
    "ReceivePolicy",
    "RecordingError",
    "SlotAssignment",
    "Source",
]


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server handed to aiortc (none by default: no network in tests)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class MediaSettings:
    """Process-wide media settings; ICE host addresses matter for loopback tests and NAT."""

    ice_host_addresses: tuple[str, ...] = ()  # empty = aioice default interfaces
    announced_address: str | None = None  # public IP put into candidates (NAT)
    # (min, max): host candidates bind UDP ports in this range only (firewalls, containers);
    # one port per participant and address. None: ephemeral ports, as aioice picks them.
    ice_port_range: tuple[int, int] | None = None
    ice_servers: tuple[IceServer, ...] = ()
    video_codec: Literal["VP8", "H264"] = "VP8"
    # "relay" replaces forwarding with aiortc's MediaRelay (decode + re-encode per
    # subscriber): a baseline for the capacity benchmark only, never for real meetings.
    forwarding: Literal["encoded", "relay"] = "encoded"
    default_last_n: int = 20  # video streams a receiver gets until it says otherwise
    audio_streams: int = 3  # M: microphones forwarded to a receiver (the loudest), + pinned
    # Pipes between media servers (a meeting across workers and nodes, `sfu.pipe`): one UDP
    # socket, bound on first use (`MediaServer.pipe_address()`); port 0 = any free port. The
    # announced address is what other servers send to when it is not the bound one (a
    # wildcard bind, or an address translated on the way).
    pipe_bind_address: str = "127.0.0.1"
    pipe_port: int = 0
    pipe_announced_address: str | None = None


MAX_LAST_N = 25
MAX_PINNED = 25


@dataclass(frozen=True)
class ReceivePolicy:
    """What one receiver wants forwarded (the protocol's `receive` message; see
    docs/protocol.md). `visible` None: anyone may be forwarded, picked by who speaks."""

    last_n: int = 20
    visible: tuple[str, ...] | None = None
    pinned: tuple[str, ...] = ()
    on_stage: tuple[str, ...] = ()
    max_height: Mapping[str, int] = field(default_factory=dict)
    default_max_height: int = 2160
    screens: bool = True

    def height(self, participant_id: str) -> int:
        return self.max_height.get(participant_id, self.default_max_height)

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for policies that want the same (receivers with one key share a ranking)."""
        return (
            self.last_n,
            self.visible,
            self.pinned,
            self.on_stage,
            tuple(sorted(self.max_height.items())),
            self.default_max_height,
            self.screens,
        )


class MediaEvents(Protocol):
    """Callbacks into signaling, one object per participant; called in order, never inline."""

    async def renegotiate(
        self, audio_slots: int, video_slots: int, audio_total: int, video_total: int
    ) -> None:
        """Ask the client to add this many MORE recvonly transceivers and send a new offer,
        so that its receive slots number `audio_total` and `video_total`. Slots asked for
        once are not asked for again until an offer has added them."""

    async def slots_changed(self, slots: list[SlotAssignment]) -> None:
        """The full current mid -> publisher map of this subscriber."""

    async def connection_lost(self, reason: str) -> None:
        """ICE/DTLS failed or was closed by the remote side."""

    async def speakers_changed(self, dominant: str | None, recent: list[str]) -> None:
        """The room's dominant speaker, or the order of its recent speakers, changed."""


class NegotiationError(Exception):
    """An offer the server cannot answer; `code` is stable, the message is for humans."""

    CODES = ("bad-sdp", "no-common-codec", "bad-track-map", "not-joined", "no-media-ports")

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PipeError(Exception):
    """A pipe between media servers cannot be opened; `code` is stable."""

    CODES = ("no-publication", "pipe-id-in-use", "bad-pipe", "bad-address", "codec-mismatch")

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RecordingError(Exception):
    """Recording cannot start (already recording, unsupported codec)."""
