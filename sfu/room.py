"""A room of the media server: its participants, who is speaking, and its recorder.

In a meeting that spans media servers, a room also holds the publications piped in from
other servers (`remote`, fed by `sfu.pipe.PipeIn`: to everything here they are publications
like the local ones) and the pipes that carry its own publications to other servers
(`pipes`, paused while a moderator blocks their source).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from .api import MediaSettings, Source
from .assignment import Offer, Ranking, rank
from .forwarding import Publication
from .participant import Participant
from .pipe import PipeIn, PipeOut
from .recording import RoomRecording
from .speakers import SpeakerDetector, SpeakerState

logger = logging.getLogger(__name__)


@dataclass
class Room:
    room_id: str
    settings: MediaSettings = field(default_factory=MediaSettings)
    participants: dict[str, Participant] = field(default_factory=dict)
    recording: RoomRecording | None = None
    # publications of other servers' participants, piped here: (participant, source) -> pipe
    remote: dict[tuple[str, Source], PipeIn] = field(default_factory=dict)
    # sources of remote participants a moderator blocked (as Participant.blocked)
    remote_blocked: dict[str, frozenset[Source]] = field(default_factory=dict)
    # pipes carrying this room's publications to other servers, by pipe id
    pipes: dict[int, PipeOut] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.speakers: SpeakerDetector[str] = SpeakerDetector(self._speakers_changed)
        self._reconcile_soon: asyncio.Handle | None = None
        self._announced: tuple[str | None, tuple[str, ...]] = (None, ())

    def live(self) -> list[Participant]:
        return [p for p in self.participants.values() if not p.closed]

    def publications(self) -> list[Publication]:
        """What may be forwarded and recorded: open publications a moderator has not stopped,
        local and piped in alike."""
        local = [
            pub
            for p in self.live()
            for pub in p.publications.values()
            if not pub.closed and pub.source not in p.blocked
        ]
        return local + [
            pipe.publication
            for (participant_id, source), pipe in self.remote.items()
            if not pipe.publication.closed
            and source not in self.remote_blocked.get(participant_id, ())
        ]

    def reconcile(self) -> None:
        """After anything changed (an offer, someone leaving or speaking, a receive policy):
        the recorder records every publication, and each participant gets what its receive
        policy and the room's speakers choose (`sfu.assignment.choose`)."""
        self._reconcile_soon = None
        for participant in self.live():
            for stopped in participant.blocked & participant.publications.keys():
                participant.publications[stopped].level_sink = None  # a muted mic never speaks
        for out in self.pipes.values():  # nothing of a blocked source leaves for other servers
            owner = self.participants.get(out.publication.participant_id)
            out.set_paused(owner is None or out.publication.source in owner.blocked)
        for (participant_id, source), pipe in self.remote.items():
            if source in self.remote_blocked.get(participant_id, ()):
                pipe.publication.level_sink = None
        publications = self.publications()
        for publication in publications:
            publication.level_sink = self.speakers.level if publication.kind == "audio" else None
        if self.recording is not None:
            self.recording.sync(publications)
        offered = [Offer(p, p.participant_id, p.source) for p in publications]
        state = self.speakers.state
        # a microphone without audio levels (a client that sends none, or the relay baseline,
        # which does not read packets) cannot be ranked: it is heard after those that can
        unmeasured = tuple(
            p.participant_id
            for p in publications
            if p.kind == "audio" and not self.speakers.measured(p.participant_id)
        )
        rankings: dict[tuple[object, ...], Ranking[Publication]] = {}
        for subscriber in self.live():
            policy = subscriber.policy
            ranking = rankings.get(policy.key)
            if ranking is None:
                ranking = rankings[policy.key] = rank(
                    policy,
                    offered,
                    recent=state.recent,
                    audible=state.audible + unmeasured,
                    audio_streams=self.settings.audio_streams,
                )
            subscriber.receive([publication for publication, _ in ranking.pick(subscriber.id)])

    def forget_speaker(self, participant_id: str) -> None:
        self.speakers.forget(participant_id)

    def _speakers_changed(self, state: SpeakerState[str]) -> None:
        """From the packet path: tell everyone and the recorder when the dominant speaker
        or the recent ones change; re-plan who gets what once this packet is through."""
        announced = (state.dominant, state.recent)
        if announced != self._announced:
            if state.dominant != self._announced[0]:
                logger.debug("room %s: dominant speaker %s", self.room_id, state.dominant)
            self._announced = announced
            for participant in self.live():
                participant.emit("speakers_changed", state.dominant, list(state.recent))
            if self.recording is not None:
                self.recording.speaker_changed(state.dominant)
        if self._reconcile_soon is None:
            self._reconcile_soon = asyncio.get_running_loop().call_soon(self.reconcile)
