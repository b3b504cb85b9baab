"""What the server sends: every server event of the protocol as a typed model.

`docs/protocol.md`, section 4, is the prose form. Events are built here and nowhere else, so
a field cannot be misspelt in one place and a new event has one obvious home; `dump()` gives
the JSON object a client receives (`ref` only when it answers a request that had an `id`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_serializer

from rtp.types import Kind, SlotAssignment, Source
from storage.models import ChatMessage

from .protocol import PROTOCOL_VERSION


class ServerEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    def dump(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if data.get("ref", "") is None:
            del data["ref"]
        return data


# --- parts ----------------------------------------------------------------------------------


class Media(BaseModel):
    microphone: bool = False
    camera: bool = False
    screen: bool = False


def _utc_z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class ParticipantInfo(BaseModel):
    participant_id: str
    user_id: int
    display_name: str
    role: Literal["host", "moderator", "participant"]
    media: Media
    hand_raised_at: datetime | None = None
    held: list[Source] = []  # sources a moderator stopped that they may not turn on yet

    @field_serializer("hand_raised_at")
    def _hand_z(self, value: datetime | None) -> str | None:
        return None if value is None else _utc_z(value)


class Person(BaseModel):
    """Who did something (started recording, wrote a message)."""

    user_id: int
    display_name: str


class ChatMessageOut(BaseModel):
    id: int
    author: Person | None  # None: a system message
    text: str
    kind: Literal["text", "system", "file"]
    created_at: datetime

    @field_serializer("created_at")
    def _created_z(self, value: datetime) -> str:
        return _utc_z(value)

    @classmethod
    def of(cls, message: ChatMessage) -> ChatMessageOut:
        author = message.author
        return cls(
            id=message.id,
            author=Person(user_id=author.id, display_name=author.display_name) if author else None,
            text=message.text,
            kind=message.kind,  # type: ignore[arg-type]
            created_at=message.created_at,
        )


class MeetingSettingsInfo(BaseModel):
    max_participants: int
    enable_chat: bool
    enable_recording: bool
    require_approval: bool
    allow_self_unmute: bool
    locked: bool
    end_on_schedule: bool


class KnockInfo(BaseModel):
    """Someone waiting to be let in."""

    participant_id: str
    user_id: int
    display_name: str
    since: datetime

    @field_serializer("since")
    def _since_z(self, value: datetime) -> str:
        return _utc_z(value)


class WaitingMeeting(BaseModel):
    room_id: str
    title: str


class MeetingInfo(BaseModel):
    room_id: str
    title: str
    host_id: int
    settings: MeetingSettingsInfo


class RecordingState(BaseModel):
    active: bool
    recording_id: int | None


class Limits(BaseModel):
    max_message_bytes: int
    chat_max_chars: int
    max_last_n: int
    audio_streams: int  # M: how many of the loudest microphones a receiver hears


class Speakers(BaseModel):
    participant_id: str | None  # the dominant speaker
    recent: list[str]  # most recent first


class Slot(BaseModel):
    mid: str
    kind: Kind
    participant_id: str | None
    source: Source | None

    @classmethod
    def of(cls, slot: SlotAssignment) -> Slot:
        return cls(
            mid=slot.mid, kind=slot.kind, participant_id=slot.participant_id, source=slot.source
        )


# --- events ---------------------------------------------------------------------------------


class Welcome(ServerEvent):
    type: Literal["welcome"] = "welcome"
    protocol_version: int = PROTOCOL_VERSION
    participant_id: str
    you: ParticipantInfo
    meeting: MeetingInfo
    participants: list[ParticipantInfo]
    chat: list[ChatMessageOut]
    recording: RecordingState
    speakers: Speakers
    ice_servers: list[dict[str, Any]]
    limits: Limits
    waiting: list[KnockInfo]  # the waiting room's queue; empty unless you may admit


class Answer(ServerEvent):
    type: Literal["answer"] = "answer"
    sdp: str
    ref: str | None = None


class Tracks(ServerEvent):
    type: Literal["tracks"] = "tracks"
    slots: list[Slot]


class Renegotiate(ServerEvent):
    type: Literal["renegotiate"] = "renegotiate"
    audio_slots: int
    video_slots: int
    audio_total: int
    video_total: int


class ParticipantJoined(ServerEvent):
    type: Literal["participant-joined"] = "participant-joined"
    participant: ParticipantInfo


class ParticipantLeft(ServerEvent):
    type: Literal["participant-left"] = "participant-left"
    participant_id: str
    reason: str  # a LeaveReason


class MediaStateChanged(ServerEvent):
    type: Literal["media-state"] = "media-state"
    participant_id: str
    microphone: bool
    camera: bool
    screen: bool


class ChatPosted(ServerEvent):
    type: Literal["chat"] = "chat"
    message: ChatMessageOut
    ref: str | None = None


class MeetingEnded(ServerEvent):
    type: Literal["meeting-ended"] = "meeting-ended"
    reason: str


class Pong(ServerEvent):
    type: Literal["pong"] = "pong"
    ref: str | None = None


class RecordingStarted(ServerEvent):
    type: Literal["recording-started"] = "recording-started"
    recording_id: int
    by: Person | None  # None: the server started it (a hand-over from a worker leaving)


class RecordingStopped(ServerEvent):
    type: Literal["recording-stopped"] = "recording-stopped"
    recording_id: int
    by: Person | None  # None: the server stopped it (see reason)
    reason: str


class Reconnect(ServerEvent):
    """This server is leaving (a worker or node drained): connect again now, without the
    back-off a dropped connection gets; the new connection lands on another worker."""

    type: Literal["reconnect"] = "reconnect"
    reason: str


class ActiveSpeaker(ServerEvent):
    type: Literal["active-speaker"] = "active-speaker"
    participant_id: str | None
    recent: list[str]


# --- the waiting room and moderation -------------------------------------------------------


class Waiting(ServerEvent):
    type: Literal["waiting"] = "waiting"
    meeting: WaitingMeeting
    host_present: bool
    may_be_recorded: bool


class Denied(ServerEvent):
    type: Literal["denied"] = "denied"
    reason: str
    retry_after: int


class Knock(ServerEvent, KnockInfo):
    """Someone knocked (the fields of `KnockInfo`)."""

    type: Literal["knock"] = "knock"

    @classmethod
    def of(cls, knock: KnockInfo) -> Knock:
        return cls(**knock.model_dump())


class KnockResolved(ServerEvent):
    type: Literal["knock-resolved"] = "knock-resolved"
    participant_id: str
    outcome: Literal["admitted", "denied", "left"]
    by: Person | None


class Muted(ServerEvent):
    type: Literal["muted"] = "muted"
    sources: list[Source]
    by: Person
    may_unmute: bool


class UnmuteAllowed(ServerEvent):
    type: Literal["unmute-allowed"] = "unmute-allowed"
    by: Person


class Removed(ServerEvent):
    type: Literal["removed"] = "removed"
    by: Person
    barred: bool


class RoleChanged(ServerEvent):
    type: Literal["role-changed"] = "role-changed"
    participant_id: str
    user_id: int
    role: Literal["host", "moderator", "participant"]


class MeetingUpdated(ServerEvent):
    type: Literal["meeting-updated"] = "meeting-updated"
    host_id: int
    settings: MeetingSettingsInfo


class HandChanged(ServerEvent):
    type: Literal["hand"] = "hand"
    participant_id: str
    raised: bool
    at: datetime | None

    @field_serializer("at")
    def _at_z(self, value: datetime | None) -> str | None:
        return None if value is None else _utc_z(value)


class MeetingEnding(ServerEvent):
    type: Literal["meeting-ending"] = "meeting-ending"
    at: datetime
    seconds: int

    @field_serializer("at")
    def _at_z(self, value: datetime) -> str:
        return _utc_z(value)


class Ack(ServerEvent):
    """A moderation message (or `hand`) with an `id` was carried out."""

    type: Literal["ack"] = "ack"
    ref: str | None = None


class ErrorEvent(ServerEvent):
    type: Literal["error"] = "error"
    code: str  # an ErrorCode, or a refusal code shared with the REST API
    message: str
    ref: str | None = None
