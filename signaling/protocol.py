"""The WebSocket signaling protocol, version 1: message models and error codes.

`docs/protocol.md` is the written contract; these models are its executable form. Client
messages are validated strictly (unknown fields and unknown types are errors).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 512 * 1024  # an SDP with many receive slots runs to a few hundred KiB
MAX_SDP_CHARS = 400_000
CHAT_MAX_CHARS = 2000
CHAT_HISTORY = 50
HELLO_TIMEOUT_SECONDS = 10.0

Source = Literal["microphone", "camera", "screen"]
Mid = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")]
RequestId = Annotated[str, StringConstraints(max_length=64)]


class ClientMessage(BaseModel):
    # strict: "yes" or 1 is not a boolean, "1" is not a version (docs/protocol.md, section 3)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    id: RequestId | None = None  # echoed as `ref` in the reply or error


class Hello(ClientMessage):
    type: Literal["hello"]
    version: int
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class Offer(ClientMessage):
    type: Literal["offer"]
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]
    tracks: dict[Mid, Source] = Field(default_factory=dict, max_length=8)


class MediaState(ClientMessage):
    type: Literal["media-state"]
    participant_id: str | None = None  # optional; must be the sender's own when given
    microphone: bool
    camera: bool
    screen: bool


class Chat(ClientMessage):
    type: Literal["chat"]
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Ping(ClientMessage):
    type: Literal["ping"]


class EndMeeting(ClientMessage):
    type: Literal["end-meeting"]


class Leave(ClientMessage):
    type: Literal["leave"]


class StartRecording(ClientMessage):
    type: Literal["start-recording"]


class StopRecording(ClientMessage):
    type: Literal["stop-recording"]


AnyClientMessage = Annotated[
    Hello | Offer | MediaState | Chat | Ping | EndMeeting | Leave | StartRecording | StopRecording,
    Field(discriminator="type"),
]
CLIENT_MESSAGE = TypeAdapter(AnyClientMessage)
CLIENT_TYPES = (
    "hello",
    "offer",
    "media-state",
    "chat",
    "ping",
    "end-meeting",
    "leave",
    "start-recording",
    "stop-recording",
)


class ErrorCode:
    """Error codes sent in `error` events and close reasons; each is listed in protocol.md."""

    MALFORMED_JSON = "malformed-json"
    UNKNOWN_TYPE = "unknown-type"
    INVALID_MESSAGE = "invalid-message"
    NOT_AUTHENTICATED = "not-authenticated"
    MISSING_TOKEN = "missing-token"
    ALREADY_AUTHENTICATED = "already-authenticated"
    UNSUPPORTED_VERSION = "unsupported-version"
    MESSAGE_TOO_LARGE = "message-too-large"
    RATE_LIMITED = "rate-limited"
    NOT_YOUR_PARTICIPANT = "not-your-participant"
    CHAT_DISABLED = "chat-disabled"
    CHAT_TOO_LONG = "chat-too-long"
    NOT_HOST = "not-host"
    BAD_SDP = "bad-sdp"
    NO_COMMON_CODEC = "no-common-codec"
    BAD_TRACK_MAP = "bad-track-map"
    MEDIA_FAILED = "media-failed"


class LeaveReason:
    """`participant-left.reason` and the close frame's reason: why someone left."""

    LEFT = "left"  # sent `leave`
    DISCONNECTED = "disconnected"  # the socket closed without `leave`
    TIMED_OUT = "timed-out"  # missed the server's keep-alive pings
    REPLACED = "replaced"  # the same person joined again from another connection
    MEDIA_FAILED = "media-failed"  # ICE/DTLS failed, or an offer could not be applied
    FLOOD = "flood"  # too many messages, or too slow to read events
    MESSAGE_TOO_LARGE = "message-too-large"
    MEETING_ENDED = "meeting-ended"
    SERVER_SHUTDOWN = "server-shutdown"
    SERVER_ERROR = "server-error"


class CloseCode:
    """WebSocket close codes (4000-4999 are the application's)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down: reconnect
    ABNORMAL = 1006  # no close frame: the keep-alive timed out or the network dropped
    MESSAGE_TOO_BIG = 1009
    PROTOCOL = 4400  # first message was not a valid hello, or wrong version
    UNAUTHORIZED = 4401  # missing, invalid or expired token
    FORBIDDEN = 4403  # account disabled
    NOT_FOUND = 4404  # no such meeting
    HANDSHAKE_TIMEOUT = 4408
    CONFLICT = 4409  # meeting ended or full
    REPLACED = 4410  # the same person joined again from another connection
    MEETING_ENDED = 4411  # the host ended the meeting while you were in it
    FLOOD = 4429  # too many messages
    MEDIA_FAILED = 4502  # the media connection (ICE/DTLS) failed
    SERVER_ERROR = 1011


def error_event(code: str, message: str, ref: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        event["ref"] = ref
    return event
