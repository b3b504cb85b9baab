"""One load bot: a `Participant` that publishes scheduled clip media and counts what it gets.

Besides counting, a bot keeps what a speaker-switch measurement needs: how long each
publisher's camera and microphone were assigned to one of its receive slots (the `tracks`
events), when `active-speaker` named whom, and, when told another bot starts speaking, when
the first frame of that bot's video arrived (`SwitchWatch`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpReceiver

from client.media import MIC_LEVEL, SOURCE_KIND
from client.participant import Participant
from rtp.probe import ReceiveProbe
from rtp.synthetic import Clip, ClipTrack
from rtp.types import Source

from .media import ClipIndex, ClipSchedule, KeyVariants, ScheduledClipTrack
from .probe import StreamProbe, Watches
from .stats import Histogram

log = logging.getLogger(__name__)
Stream = tuple[str, str]  # (publisher participant id, source)


@dataclass
class SwitchWatch:
    """One subscriber's view of one speaker switch (a turn): from the moment the turn
    started (`at`, wall clock), when the subscriber got the speaker named by
    `active-speaker`, the speaker's camera assigned to one of its slots, and its first
    video frame. `already`: the camera was on a slot when the turn started."""

    turn: int
    speaker: str
    at: float
    already: bool
    active_speaker_at: float | None = None
    remap_at: float | None = None
    first_frame_at: float | None = None

    def to_json(self, subscriber: str | None) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "subscriber": subscriber,
            "speaker": self.speaker,
            "at": self.at,
            "already": self.already,
            "active_speaker_at": self.active_speaker_at,
            "remap_at": self.remap_at,
            "first_frame_at": self.first_frame_at,
        }


class Bot:
    """Joins over the documented protocol, sends camera + microphone, receives what the
    server forwards (everyone, or what its `receive` message selects)."""

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
        variants: KeyVariants | None = None,
        last_n: int | None = None,
        audio_level: int = MIC_LEVEL,
    ) -> None:
        self.number = number
        self.clip = clip
        self.index = index
        self.variants = variants
        self.last_n = last_n
        self.owners: dict[str, tuple[str, str]] = {}  # mid -> (publisher, source)
        self.sent: dict[str, ScheduledClipTrack] = {}
        self.probes: list[StreamProbe] = []
        self.join_started_at: float | None = None
        self.joined_at: float | None = None
        # assignment time per (publisher, source): closed intervals, and the open ones
        self._assigned_s: dict[Stream, float] = {}
        self._assigned_since: dict[Stream, float] = {}
        self.remaps = 0  # streams newly assigned to a slot by a `tracks` event
        self.video_busy = 0  # video slots carrying someone now
        self.video_busy_max = 0  # most at once since `reset_window()`
        self.watches: Watches = {}  # speaker -> watches still waiting for a frame
        self.switches: list[SwitchWatch] = []
        self.raised: list[dict[str, Any]] = []  # turns this bot spoke: when its level rose
        self.active_speakers: list[tuple[float, str | None]] = []
        self.participant = Participant(
            base_url,
            room_id,
            token,
            clip,
            ice_host_addresses=ice_host_addresses,
            track_factory=self._make_track,
            probe_factory=self._make_probe,
            audio_level=audio_level,
        )
        self.participant.signaling.on("tracks", self._on_tracks)
        self.participant.signaling.on("active-speaker", self._on_active_speaker)

    @property
    def name(self) -> str:
        return f"bot-{self.number}"

    @property
    def participant_id(self) -> str | None:
        return self.participant.signaling.welcome.get("participant_id")

    @property
    def audio_streams_limit(self) -> int | None:
        """M, the loudest microphones the server forwards (welcome `limits.audio_streams`);
        None for a server that forwards every microphone."""
        value = self.participant.signaling.welcome.get("limits", {}).get("audio_streams")
        return int(value) if value is not None else None

    @property
    def receive_error(self) -> str | None:
        """The server's error code for our `receive` message (e.g. `unknown-type` from a
        server without it), or None."""
        ref = self.participant.receive_id
        if ref is None:
            return None
        for event in self.participant.signaling.events:
            if event.get("type") == "error" and event.get("ref") == ref:
                return str(event.get("code"))
        return None

    def _make_track(self, clip: Clip, source: Source) -> ClipTrack:
        schedule = ClipSchedule.for_participant(clip, self.participant.participant_id)
        track = ScheduledClipTrack(clip, SOURCE_KIND[source], schedule, self.variants)
        self.sent[source] = track
        return track

    def _make_probe(
        self, receiver: RTCRtpReceiver, mid: str, kind: str, _codec: str
    ) -> ReceiveProbe:
        probe = StreamProbe(receiver, mid, kind, self.clip, self.owners, self.index, self.watches)
        self.probes.append(probe)
        return probe

    # --- events -------------------------------------------------------------------------
    def _on_tracks(self, event: dict[str, Any]) -> None:
        now = time.time()
        owners = {
            slot["mid"]: (slot["participant_id"], slot["source"])
            for slot in event["slots"]
            if slot.get("participant_id")
        }
        before = set(self.owners.values())
        after = set(owners.values())
        for stream in before - after:
            since = self._assigned_since.pop(stream, now)
            self._assigned_s[stream] = self._assigned_s.get(stream, 0.0) + now - since
        for stream in after - before:
            self._assigned_since[stream] = now
            self.remaps += 1
            if SOURCE_KIND.get(stream[1]) != "video":
                continue
            for watch in self.switches:
                if watch.speaker == stream[0] and watch.remap_at is None:
                    watch.remap_at = now
        self.owners.clear()  # in place: the probes hold this dict
        self.owners.update(owners)
        self.video_busy = sum(1 for _, source in after if SOURCE_KIND.get(source) == "video")
        self.video_busy_max = max(self.video_busy_max, self.video_busy)

    def _on_active_speaker(self, event: dict[str, Any]) -> None:
        now = time.time()
        speaker = event.get("participant_id")
        self.active_speakers.append((now, speaker))
        for watch in self.switches:
            if watch.speaker == speaker and watch.active_speaker_at is None:
                watch.active_speaker_at = now

    def receiving_video_from(self, publisher: str) -> bool:
        return any(
            pub == publisher and SOURCE_KIND.get(source) == "video"
            for pub, source in self.owners.values()
        )

    # --- speaking -----------------------------------------------------------------------
    def set_level(self, level: int) -> None:
        self.participant.set_audio_level(level)

    def turn(self, turn: int, speaker: str | None, loud: int, quiet: int) -> None:
        """A speaking turn starts now: `speaker` talks (level `loud`), everyone else is
        quiet; every other bot watches for the speaker's video."""
        now = time.time()
        if speaker is not None and speaker == self.participant_id:
            self.set_level(loud)
            self.raised.append({"turn": turn, "speaker": speaker, "raised_at": now})
            return
        self.set_level(quiet)
        if speaker is None or self.participant_id is None:
            return
        watch = SwitchWatch(turn, speaker, now, self.receiving_video_from(speaker))
        self.switches.append(watch)
        self.watches.setdefault(speaker, []).append(watch)

    # --- joining and leaving ------------------------------------------------------------
    async def join(self) -> None:
        self.join_started_at = time.time()
        receive = None
        if self.last_n is not None:
            receive = {"last_n": self.last_n, "visible": None}
        await self.participant.join(("microphone", "camera"), receive=receive)
        self.joined_at = time.time()

    async def leave(self) -> None:
        try:
            await self.participant.leave()
        except Exception as exc:  # the server may be gone already
            log.debug("%s: leave failed: %s", self.name, exc)
            await self.participant.close()

    # --- figures ------------------------------------------------------------------------
    def reset_window(self) -> None:
        self.video_busy_max = self.video_busy

    def assigned_seconds(self, now: float) -> dict[Stream, float]:
        """Cumulative seconds each stream has been assigned to one of this bot's slots."""
        totals = dict(self._assigned_s)
        for stream, since in self._assigned_since.items():
            totals[stream] = totals.get(stream, 0.0) + now - since
        return totals

    def snapshot(self) -> dict[str, Any]:
        """Cumulative counters (histograms copied) to diff two snapshots by. A stream that
        was on several slots over time is summed over them."""
        video = self.sent.get("camera")
        audio = self.sent.get("microphone")
        streams: dict[Stream, dict[str, Any]] = {}
        for probe in self.probes:
            for counters in probe.streams.values():
                record = counters.snapshot()
                key = (record["publisher"], record["source"])
                if key not in streams:
                    streams[key] = record
                    continue
                merged = streams[key]
                for name, value in record.items():
                    if name == "latency":
                        merged[name] = merged[name].copy()
                        merged[name].merge(value)
                    elif name == "first_frame_at":
                        firsts = [t for t in (merged[name], value) if t is not None]
                        merged[name] = min(firsts, default=None)
                    elif isinstance(value, int):
                        merged[name] += value
        assigned = self.assigned_seconds(time.time())
        for key, record in streams.items():
            record["assigned_s"] = assigned.get(key, 0.0)
        for key, seconds in assigned.items():
            if key not in streams:
                kind = SOURCE_KIND.get(key[1], "video")
                streams[key] = _empty_stream(key, kind, seconds)
        return {
            "bot": self.number,
            "participant_id": self.participant_id,
            "video_frames_sent": video.frames_sent if video else 0,
            "audio_packets_sent": audio.frames_sent if audio else 0,
            "keyframes_answered": video.keyframes_answered if video else 0,
            "send_lag": video.send_lag.copy() if video else Histogram(),
            "remaps": self.remaps,
            "video_busy_max": self.video_busy_max,
            "streams": list(streams.values()),
        }

    def switch_records(self) -> list[dict[str, Any]]:
        return [watch.to_json(self.participant_id) for watch in self.switches]

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


def _empty_stream(key: Stream, kind: str, assigned: float) -> dict[str, Any]:
    """A stream assigned to a slot that has not delivered a packet yet."""
    return {
        "publisher": key[0],
        "source": key[1],
        "kind": kind,
        "packets": 0,
        "expected_packets": 0,
        "bytes": 0,
        "frames": 0,
        "keyframes": 0,
        "discontinuities": 0,
        "identified": 0,
        "first_frame_at": None,
        "runs": 0,
        "latency": Histogram(),
        "assigned_s": assigned,
    }
