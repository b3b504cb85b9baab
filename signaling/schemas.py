"""Request and response bodies of the REST API (pydantic v2).

Requests forbid unknown fields; lengths and ranges are declared here, once, and the
OpenAPI description is generated from these models.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    MISSING,
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from signaling.identifiers import MAX_ID

# Patterns keep the description exact: what a pattern refuses is refused, and the fuzz test
# (tests/test_api_fuzz.py) sends everything else a schema allows and expects it accepted.
# They are written with explicit ranges (no \s, whose meaning differs between Python, Rust
# and ECMAScript regular expressions), and values are not stripped: clients trim.
NO_NUL = r"^[^\x00]*$"  # PostgreSQL cannot store NUL; nothing legitimate sends one
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"  # C0, DEL, C1, line and paragraph separators
_SPACE = r"\x20\xa0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff"
# names and titles: one line, no control characters, no space at either end
ONE_LINE = rf"^[^{_CONTROL}{_SPACE}]([^{_CONTROL}]*[^{_CONTROL}{_SPACE}])?$"
# Deliberately loose: an organisation's own domains (.local, .internal, .test) are real.
EMAIL = rf"^[^@{_CONTROL}{_SPACE}]+@[^@{_CONTROL}{_SPACE}]+$"


# RFC 3339 date-times from 1970 to 9998: near year 1 or 9999 a zone offset would carry the
# instant outside what a datetime can hold once it is converted to UTC.
DATE_TIME = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}"
    r"[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_DATE_TIME = re.compile(DATE_TIME, re.ASCII)


def _date_time(value: Any) -> Any:
    """Only a date-time string as the description says (pydantic would also read a number,
    or a query string of digits, as a Unix timestamp)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
        raise ValueError(
            "must be an ISO 8601 date and time with a zone between the years 1970 and 9998, "
            "e.g. 2030-01-02T09:30:00Z"
        )
    return value.upper()


Title = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=ONE_LINE)]
Description = Annotated[str, StringConstraints(max_length=5000, pattern=NO_NUL)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=ONE_LINE)]
Email = Annotated[str, StringConstraints(min_length=3, max_length=320, pattern=EMAIL)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256, pattern=NO_NUL)]
# JSON body numbers and booleans are strict, as the description says: 5.0, "5", 0 or "true"
# are not what an integer or a boolean is (query strings stay lax: they are all text).
MaxParticipants = Annotated[int, Field(ge=2, le=500, strict=True)]
Duration = Annotated[int, Field(ge=1, le=1440, strict=True)]
Flag = Annotated[bool, Field(strict=True)]
# ISO 8601 with an explicit zone (a bare local time is ambiguous); kept in UTC.
UtcTime = Annotated[
    AwareDatetime,
    BeforeValidator(_date_time),
    AfterValidator(lambda value: value.astimezone(UTC)),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": DATE_TIME}),
]


class Request(BaseModel):
    """Every request body and query: unknown fields are refused. The NUL check is a net
    under the patterns, for a string field someone adds without one."""

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
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL)]


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
    email: Email
    display_name: DisplayName
    password: Password
    role: Literal["admin", "member"] = "member"


class RegisterRequest(Request):
    email: Email
    display_name: DisplayName
    password: Password


class UserPatch(Request):
    """Fields may be omitted, not null."""

    display_name: DisplayName | MISSING = MISSING
    role: Literal["admin", "member"] | MISSING = MISSING
    is_active: Flag | MISSING = MISSING


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
    require_approval: Flag = False  # the waiting room
    enable_recording: Flag = False
    enable_chat: Flag = True
    allow_self_unmute: Flag = True  # after a moderator's mute
    end_on_schedule: Flag = False  # end at scheduled_start + duration_minutes


class MeetingSettingsPatch(Request):
    max_participants: MaxParticipants | MISSING = MISSING
    require_approval: Flag | MISSING = MISSING
    enable_recording: Flag | MISSING = MISSING
    enable_chat: Flag | MISSING = MISSING
    allow_self_unmute: Flag | MISSING = MISSING
    end_on_schedule: Flag | MISSING = MISSING


class MeetingCreate(Request):
    title: Title
    description: Description = ""
    scheduled_start: UtcTime | None = None
    duration_minutes: Duration = 60
    settings: MeetingSettings = Field(default_factory=MeetingSettings)


class MeetingPatch(Request):
    """Fields may be omitted; only `scheduled_start` may be null (unscheduled)."""

    title: Title | MISSING = MISSING
    description: Description | MISSING = MISSING
    scheduled_start: UtcTime | MISSING | None = MISSING
    duration_minutes: Duration | MISSING = MISSING
    settings: MeetingSettingsPatch | MISSING = MISSING


class HostOut(Response):
    id: int
    display_name: str


class MeetingSettingsOut(BaseModel):
    max_participants: int
    require_approval: bool
    enable_recording: bool
    enable_chat: bool
    allow_self_unmute: bool
    end_on_schedule: bool
    locked: bool


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
    """`admitted`: a seat is held; `waiting`: the meeting has a waiting room and a moderator
    must let the person in (they connect the signaling WebSocket to knock); no seat."""

    status: Literal["admitted", "waiting"]
    meeting: MeetingOut
    participation_id: int | None
    role: Literal["host", "moderator", "participant"] | None
    joined_at: datetime | None
    # the seat is kept until then unless the signaling WebSocket joins (null: connected)
    held_until: datetime | None


# --- the waiting room and moderation ----------------------------------------------------

Source = Literal["microphone", "camera", "screen"]


class KnockOut(BaseModel):
    participant_id: str
    user_id: int
    display_name: str
    since: datetime


class WaitingList(BaseModel):
    items: list[KnockOut]


class AdmittedOut(BaseModel):
    admitted: list[KnockOut]


class Enabled(Request):
    enabled: Flag


class Locked(Request):
    locked: Flag


class MuteRequest(Request):
    sources: Annotated[list[Source], Field(min_length=1, max_length=3)]


class RemoveRequest(Request):
    bar: Flag = False


class RoleRequest(Request):
    role: Literal["host", "moderator", "participant"]


class MediaOut(BaseModel):
    microphone: bool
    camera: bool
    screen: bool


class ParticipantOut(BaseModel):
    participant_id: str
    user_id: int
    display_name: str
    role: Literal["host", "moderator", "participant"]
    media: MediaOut
    held: list[Source]
    hand_raised_at: datetime | None


class ParticipantList(BaseModel):
    items: list[ParticipantOut]


class MutedCount(BaseModel):
    muted: int


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
    bytes_received: int  # RTP payload bytes (headers not counted)
    bytes_forwarded: int
    keyframe_requests_sent: int
    retransmissions: int  # NACK repair sent
    retransmissions_refused: int  # NACKed packets not resent (repair limits, too old)
    decoders_started: int  # 0 while forwarding encoded media
    # pipes between workers (docs/sfu.md, "Pipes between workers")
    pipe_streams_out: int
    pipe_streams_in: int
    pipe_streams_idle: int  # of pipe_streams_out: video nobody on the far side uses now
    packets_piped_out: int
    packets_piped_in: int
    bytes_piped_out: int
    bytes_piped_in: int
    pipe_datagrams_dropped: int


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


class RecordingSpeakerOut(Response):
    at_seconds: float  # from the recording's start; dominant until the next entry
    participant_id: str
    user_id: int | None
    display_name: str


class RecordingDetail(RecordingOut):
    tracks: list[RecordingTrackOut]
    speakers: list[RecordingSpeakerOut]  # the dominant speaker's timeline


class RecordingPage(Page[RecordingOut]):
    pass


class RecordingListQuery(PageQuery):
    room_id: (
        Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")] | None
    ) = None
    started_from: UtcTime | None = None
    started_to: UtcTime | None = None
    q: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=ONE_LINE)] | None = (
        None
    )


class RecordingAccess(BaseModel):
    access: str
    expires_in: int
    file_url: str | None
    track_urls: dict[str, str]
