"""Request and response bodies of the REST API (pydantic v2).

Requests forbid unknown fields; lengths and ranges are declared here, once, and the
OpenAPI description is generated from these models.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from signaling.identifiers import MAX_ID

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _single_line(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 lies before year 1 in UTC
        raise ValueError("is out of the supported range of dates") from None


def _waiting_room_unavailable(value: bool) -> bool:
    if value:
        raise ValueError("the waiting room is not available yet; approval cannot be required")
    return value


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_single_line),
]
Description = Annotated[str, StringConstraints(max_length=5000)]
DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_single_line),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
MaxParticipants = Annotated[int, Field(ge=2, le=500)]
Duration = Annotated[int, Field(ge=1, le=1440)]
# ISO 8601 with an explicit zone (a bare local time is ambiguous); kept in UTC.
UtcTime = Annotated[AwareDatetime, AfterValidator(_utc)]
RequireApproval = Annotated[bool, AfterValidator(_waiting_room_unavailable)]


class Request(BaseModel):
    """Every request body and query: unknown fields are refused, and no string may carry a
    NUL character (PostgreSQL cannot store one; nothing legitimate sends one)."""

    model_config = ConfigDict(extra="forbid", strict=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, str]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- accounts ---------------------------------------------------------------------------


class LoginRequest(Request):
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class UserOut(Response):
    id: int
    email: str
    display_name: str
    role: Literal["admin", "member"]
    is_active: bool
    created_at: datetime


class LoginResponse(BaseModel):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    user: UserOut


class UserCreate(Request):
    email: EmailStr
    display_name: DisplayName
    password: Password
    role: Literal["admin", "member"] = "member"


class RegisterRequest(Request):
    email: EmailStr
    display_name: DisplayName
    password: Password


class UserPatch(Request):
    display_name: DisplayName | None = None
    role: Literal["admin", "member"] | None = None
    is_active: bool | None = None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class UserPage(Page[UserOut]):
    pass


# --- meetings ---------------------------------------------------------------------------


class MeetingSettings(Request):
    max_participants: MaxParticipants = 50
    require_approval: RequireApproval = False
    enable_recording: bool = False
    enable_chat: bool = True


class MeetingSettingsPatch(Request):
    max_participants: MaxParticipants | None = None
    require_approval: RequireApproval | None = None
    enable_recording: bool | None = None
    enable_chat: bool | None = None


class MeetingCreate(Request):
    title: Title
    description: Description = ""
    scheduled_start: UtcTime | None = None
    duration_minutes: Duration = 60
    settings: MeetingSettings = Field(default_factory=MeetingSettings)


class MeetingPatch(Request):
    title: Title | None = None
    description: Description | None = None
    scheduled_start: UtcTime | None = None
    duration_minutes: Duration | None = None
    settings: MeetingSettingsPatch | None = None


class HostOut(Response):
    id: int
    display_name: str


class MeetingSettingsOut(BaseModel):
    max_participants: int
    require_approval: bool
    enable_recording: bool
    enable_chat: bool


class MeetingOut(BaseModel):
    room_id: str
    title: str
    description: str
    host: HostOut
    scheduled_start: datetime | None
    duration_minutes: int
    settings: MeetingSettingsOut
    status: Literal["scheduled", "active", "ended"]
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime
    join_url: str
    is_host: bool


class MeetingPage(Page[MeetingOut]):
    pass


class JoinResponse(BaseModel):
    meeting: MeetingOut
    participation_id: int
    role: Literal["host", "moderator", "participant"]
    joined_at: datetime
    # the seat is kept until then unless the signaling WebSocket joins (null: connected)
    held_until: datetime | None


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable"]
    version: str


class MediaStats(BaseModel):
    """Counters of this process's media server (cumulative since start unless noted)."""

    rooms: int
    participants: int
    peer_connections: int
    publications: int
    slots: int
    forwarded_streams: int  # slots currently carrying someone's track
    packets_received: int
    frames_received: int
    packets_forwarded: int
    frames_forwarded: int
    keyframe_requests_sent: int
    retransmissions: int  # NACK repair sent
    retransmissions_refused: int  # NACKed packets not resent (repair limits, too old)
    decoders_started: int  # 0 while forwarding encoded media


class PageQuery(Request):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    offset: Annotated[int, Field(ge=0, le=MAX_ID)] = 0


class MeetingListQuery(PageQuery):
    when: Literal["upcoming", "past", "all"] = "all"


# --- recordings -------------------------------------------------------------------------


class RecordingStarted(BaseModel):
    recording_id: int


class RecordingMeetingOut(BaseModel):
    room_id: str
    title: str


class RecordingTrackOut(BaseModel):
    id: int
    participant_id: str
    user_id: int | None
    display_name: str
    kind: Literal["audio", "video"]
    source: Literal["microphone", "camera", "screen"]
    codec: str
    start_offset: float
    duration_seconds: float
    size_bytes: int


class RecordingOut(BaseModel):
    id: int
    meeting: RecordingMeetingOut
    started_at: datetime
    stopped_at: datetime | None
    started_by: HostOut | None
    state: Literal["recording", "processing", "ready", "failed", "interrupted"]
    failure_reason: str | None
    duration_seconds: float
    size_bytes: int
    composed_size_bytes: int
    progress: float
    participants: list[str]


class RecordingDetail(RecordingOut):
    tracks: list[RecordingTrackOut]


class RecordingPage(Page[RecordingOut]):
    pass


class RecordingListQuery(PageQuery):
    room_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    started_from: UtcTime | None = None
    started_to: UtcTime | None = None
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None


class RecordingAccess(BaseModel):
    access: str
    expires_in: int
    file_url: str | None
    track_urls: dict[str, str]
