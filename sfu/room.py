"""A room of the media server: its participants and, while recorded, its recorder."""

from __future__ import annotations

from dataclasses import dataclass, field

from .forwarding import Publication
from .participant import Participant
from .recording import RoomRecording


@dataclass
class Room:
    room_id: str
    participants: dict[str, Participant] = field(default_factory=dict)
    recording: RoomRecording | None = None

    def live(self) -> list[Participant]:
        return [p for p in self.participants.values() if not p.closed]

    def publications(self) -> list[Publication]:
        return [pub for p in self.live() for pub in p.publications.values() if not pub.closed]

    def reconcile(self) -> None:
        """After anything changed (an offer, someone leaving): the recorder records every
        publication, and every participant receives everyone else's."""
        publications = self.publications()
        if self.recording is not None:
            self.recording.sync(publications)
        for subscriber in self.live():
            subscriber.receive([p for p in publications if p.participant_id != subscriber.id])
