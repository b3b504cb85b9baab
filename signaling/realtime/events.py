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


class ParticipantInfo(BaseModel):
    participant_id: str
    user_id: int
    display_name: str
    role: Literal["host", "moderator", "participant"]
    media: Media


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
    def _utc_z(self, value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

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
    by: Person


class RecordingStopped(ServerEvent):
    type: Literal["recording-stopped"] = "recording-stopped"
    recording_id: int
    by: Person | None  # None: the server stopped it (see reason)
    reason: str


class ActiveSpeaker(ServerEvent):
    type: Literal["active-speaker"] = "active-speaker"
    participant_id: str | None
    recent: list[str]


class ErrorEvent(ServerEvent):
    type: Literal["error"] = "error"
    code: str  # an ErrorCode, or a refusal code shared with the REST API
    message: str
    ref: str | None = None
