"""What a client may send: the protocol's client messages as strict pydantic models.

Unknown fields and unknown types are errors, and types are strict ("yes" or 1 is not a
boolean). `docs/protocol.md`, section 3, is the prose form.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from rtp.types import Source
from sfu import MAX_LAST_N, MAX_PINNED

from .protocol import MAX_SDP_CHARS

NO_NUL = r"^[^\x00]*$"  # PostgreSQL cannot store NUL; nothing legitimate sends one
Mid = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")]
RequestId = Annotated[str, StringConstraints(max_length=64, pattern=NO_NUL)]


class ClientMessage(BaseModel):
    # strict: "yes" or 1 is not a boolean, "1" is not a version (docs/protocol.md, section 3)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    id: RequestId | None = None  # echoed as `ref` in the reply or error


class Hello(ClientMessage):
    type: Literal["hello"]
    version: int
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=NO_NUL)]


class Offer(ClientMessage):
    type: Literal["offer"]
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]
    tracks: dict[Mid, Source] = Field(default_factory=dict, max_length=8)


class AnswerApplied(ClientMessage):
    """The client applied the last `answer`: its new receive slots may start sending."""

    type: Literal["answer-applied"]


class MediaState(ClientMessage):
    type: Literal["media-state"]
    participant_id: Annotated[str, StringConstraints(max_length=64)] | None = None  # own only
    microphone: bool
    camera: bool
    screen: bool


class Chat(ClientMessage):
    type: Literal["chat"]
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, pattern=NO_NUL)]


ParticipantId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
Height = Annotated[int, Field(ge=0, le=2160)]


class Receive(ClientMessage):
    """What the client wants forwarded; absolute, resent at will (docs/protocol.md)."""

    type: Literal["receive"]
    last_n: Annotated[int, Field(ge=0, le=MAX_LAST_N)] = 20
    visible: Annotated[list[ParticipantId], Field(max_length=500)] | None = None
    pinned: Annotated[list[ParticipantId], Field(max_length=MAX_PINNED)] = Field(
        default_factory=list
    )
    on_stage: Annotated[list[ParticipantId], Field(max_length=500)] = Field(default_factory=list)
    max_height: Annotated[dict[ParticipantId, Height], Field(max_length=500)] = Field(
        default_factory=dict
    )
    default_max_height: Height = 2160
    screens: bool = True


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


# --- the waiting room and moderation (docs/protocol.md, "Moderation") ------------------------


class Admit(ClientMessage):
    type: Literal["admit"]
    participant_id: ParticipantId


class Deny(ClientMessage):
    type: Literal["deny"]
    participant_id: ParticipantId


class AdmitAll(ClientMessage):
    type: Literal["admit-all"]


class WaitingRoom(ClientMessage):
    type: Literal["waiting-room"]
    enabled: bool


class Lock(ClientMessage):
    type: Literal["lock"]
    locked: bool


Sources = Annotated[list[Source], Field(min_length=1, max_length=3)]


class Mute(ClientMessage):
    type: Literal["mute"]
    participant_id: ParticipantId
    sources: Sources


class MuteAll(ClientMessage):
    type: Literal["mute-all"]


class AllowUnmute(ClientMessage):
    type: Literal["allow-unmute"]
    participant_id: ParticipantId


class Remove(ClientMessage):
    type: Literal["remove"]
    participant_id: ParticipantId
    bar: bool = False


class SetRole(ClientMessage):
    type: Literal["set-role"]
    participant_id: ParticipantId
    role: Literal["host", "moderator", "participant"]


class Hand(ClientMessage):
    type: Literal["hand"]
    raised: bool
    participant_id: ParticipantId | None = None  # someone else's: lowering, by a moderator


ModerationMessage = (
    Admit | Deny | AdmitAll | WaitingRoom | Lock | Mute | MuteAll | AllowUnmute | Remove | SetRole
)


AnyClientMessage = Annotated[
    Hello
    | Offer
    | AnswerApplied
    | MediaState
    | Receive
    | Chat
    | Ping
    | EndMeeting
    | Leave
    | StartRecording
    | StopRecording
    | Admit
    | Deny
    | AdmitAll
    | WaitingRoom
    | Lock
    | Mute
    | MuteAll
    | AllowUnmute
    | Remove
    | SetRole
    | Hand,
    Field(discriminator="type"),
]
CLIENT_MESSAGE = TypeAdapter(AnyClientMessage)
# every `type` the union accepts, read from the models themselves (a list kept by hand
# once missed one, and the server answered a valid message `unknown-type`)
CLIENT_TYPES = tuple(
    get_args(model.model_fields["type"].annotation)[0]
    for model in get_args(get_args(AnyClientMessage)[0])
)
