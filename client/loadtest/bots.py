"""One load bot: a `Participant` that publishes scheduled clip media and counts what it gets."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiortc import RTCRtpReceiver

from client.media import SOURCE_KIND
from client.participant import Participant
from rtp.probe import ReceiveProbe
from rtp.synthetic import Clip, ClipTrack
from rtp.types import Source

from .media import ClipIndex, ClipSchedule, ScheduledClipTrack
from .probe import StreamProbe
from .stats import Histogram

log = logging.getLogger(__name__)


class Bot:
    """Joins over the documented protocol, sends camera + microphone, receives everyone."""

    def __init__(
        self,
        number: int,
        base_url: str,
        room_id: str,
        token: str,
        clip: Clip,
        index: ClipIndex,
        *,
        ice_host_addresses: tuple[str, ...] = (),
    ) -> None:
        self.number = number
        self.clip = clip
        self.index = index
        self.owners: dict[str, tuple[str, str]] = {}  # mid -> (publisher, source)
        self.sent: dict[str, ScheduledClipTrack] = {}
        self.probes: list[StreamProbe] = []
        self.join_started_at: float | None = None
        self.joined_at: float | None = None
        self.participant = Participant(
            base_url,
            room_id,
            token,
            clip,
            ice_host_addresses=ice_host_addresses,
            track_factory=self._make_track,
            probe_factory=self._make_probe,
        )
        self.participant.signaling.on("tracks", self._on_tracks)

    @property
    def name(self) -> str:
        return f"bot-{self.number}"

    @property
    def participant_id(self) -> str | None:
        return self.participant.signaling.welcome.get("participant_id")

    def _make_track(self, clip: Clip, source: Source) -> ClipTrack:
        schedule = ClipSchedule.for_participant(clip, self.participant.participant_id)
        track = ScheduledClipTrack(clip, SOURCE_KIND[source], schedule)
        self.sent[source] = track
        return track

    def _make_probe(
        self, receiver: RTCRtpReceiver, mid: str, kind: str, _codec: str
    ) -> ReceiveProbe:
        probe = StreamProbe(receiver, mid, kind, self.clip, self.owners, self.index)
        self.probes.append(probe)
        return probe

    def _on_tracks(self, event: dict[str, Any]) -> None:
        owners = {
            slot["mid"]: (slot["participant_id"], slot["source"])
            for slot in event["slots"]
            if slot.get("participant_id")
        }
        self.owners.clear()  # in place: the probes hold this dict
        self.owners.update(owners)

    async def join(self) -> None:
        self.join_started_at = time.time()
        await self.participant.join(("microphone", "camera"))
        self.joined_at = time.time()

    async def leave(self) -> None:
        try:
            await self.participant.leave()
        except Exception as exc:  # the server may be gone already
            log.debug("%s: leave failed: %s", self.name, exc)
            await self.participant.close()

    # --- figures ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Cumulative counters (histograms copied) to diff two snapshots by."""
        video = self.sent.get("camera")
        audio = self.sent.get("microphone")
        return {
            "bot": self.number,
            "participant_id": self.participant_id,
            "video_frames_sent": video.frames_sent if video else 0,
            "audio_packets_sent": audio.frames_sent if audio else 0,
            "send_lag": video.send_lag.copy() if video else Histogram(),
            "streams": [
                stream.snapshot() for probe in self.probes for stream in probe.streams.values()
            ],
        }

    def decode_samples(self) -> list[dict[str, Any]]:
        """Decode the kept frames of each video slot with PyAV (proves valid video)."""
        results = []
        for probe in self.probes:
            if probe.kind != "video":
                continue
            owner = self.owners.get(probe.mid)
            sample = probe.decode_sample()
            if owner is None or sample is None:
                continue
            results.append(
                {
                    "subscriber": self.participant_id,
                    "publisher": owner[0],
                    "source": owner[1],
                    "frames": sample.frames,
                    "width": sample.width,
                    "height": sample.height,
                }
            )
        return results
