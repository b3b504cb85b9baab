"""A meeting participant: the signaling client and the media peer, wired together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from client.media import MIC_LEVEL, MediaPeer, ProbeFactory, TrackFactory
from client.signaling import Event, SignalingClient
from rtp.synthetic import Clip
from rtp.types import SlotAssignment, Source


class Participant:
    """Joins a meeting over the documented protocol and publishes synthetic media."""

    def __init__(
        self,
        base_url: str,
        room_id: str,
        token: str,
        clip: Clip,
        *,
        ice_host_addresses: tuple[str, ...] = (),
        track_factory: TrackFactory | None = None,
        probe_factory: ProbeFactory | None = None,
        clips: Mapping[Source, Clip] | None = None,
        audio_level: int = MIC_LEVEL,
    ) -> None:
        self.signaling = SignalingClient(base_url, room_id, token)
        self.clip = clip
        self.clips = dict(clips or {})  # per-source clips (MediaPeer)
        self.audio_level = audio_level
        self.ice_host_addresses = ice_host_addresses
        self._track_factory = track_factory
        self._probe_factory = probe_factory
        self.media: MediaPeer | None = None
        self.receive_id: str | None = None

    @property
    def participant_id(self) -> str:
        return self.signaling.participant_id

    @property
    def peer(self) -> MediaPeer:
        assert self.media is not None, "join() first"
        return self.media

    async def join(
        self,
        sources: tuple[Source, ...] = ("microphone", "camera"),
        receive: Mapping[str, Any] | None = None,
    ) -> Event:
        """Connect, publish `sources`, and announce the media state. `receive` (the fields
        of a `receive` message, docs/protocol.md) is sent right after the welcome, before
        the first offer, so the server sizes the receive slots for it from the start; its
        id is `receive_id` (an `error` naming it means the server refused it)."""
        welcome = await self.signaling.connect()
        if receive is not None:
            self.receive_id = await self.signaling.send({"type": "receive", **receive})
        self.media = MediaPeer(
            self.clip,
            self._negotiate,
            ice_host_addresses=self.ice_host_addresses,
            ice_servers=[],
            track_factory=self._track_factory,
            probe_factory=self._probe_factory,
            clips=self.clips,
            audio_level=self.audio_level,
            answer_applied=lambda: self.signaling.send({"type": "answer-applied"}),
        )
        self.signaling.on("renegotiate", self._on_renegotiate)
        self.signaling.on("tracks", self._on_tracks)
        for source in sources:
            self.media.add_source(source)
        await self.media.offer()
        await self.set_media_state()
        return welcome

    async def _negotiate(self, sdp: str, tracks: Mapping[str, Source]) -> str:
        reply = await self.signaling.request(
            {"type": "offer", "sdp": sdp, "tracks": dict(tracks)}, "answer"
        )
        return str(reply["sdp"])

    def _on_renegotiate(self, event: Event) -> None:
        self.peer.request_slots(event["audio_slots"], event["video_slots"])

    def _on_tracks(self, event: Event) -> None:
        self.peer.set_slots([SlotAssignment(**slot) for slot in event["slots"]])

    def set_audio_level(self, level: int) -> None:
        """The RFC 6464 level (0 loudest … 127 silence, -dBov) the microphone announces from
        its next packet on: 20 is someone talking, 90 a quiet room. Works before and after
        joining."""
        self.audio_level = level
        if self.media is not None:
            self.media.audio_level = level

    async def set_media_state(self) -> None:
        on = set(self.peer.tracks)
        await self.signaling.send(
            {
                "type": "media-state",
                "microphone": "microphone" in on,
                "camera": "camera" in on,
                "screen": "screen" in on,
            }
        )

    async def start_screen(self) -> None:
        self.peer.add_source("screen")
        await self.peer.offer()
        await self.set_media_state()

    async def stop_screen(self) -> None:
        self.peer.remove_source("screen")
        await self.peer.offer()
        await self.set_media_state()

    async def leave(self) -> None:
        if not self.signaling.closed.is_set():
            await self.signaling.send({"type": "leave"})
        await self.close()

    async def close(self) -> None:
        if self.media is not None:
            await self.media.close()
        await self.signaling.close()
