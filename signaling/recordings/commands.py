"""What one worker asks of another about a recording, through the cluster's command channel.

A stop asked on any worker is carried out by the worker that records (it holds the files and
the recorder); a worker leaving offers its recordings to the workers that still hold people
of the meeting. Both arrive as JSON from Redis and are validated here as strictly as anything
a client sends: a malformed command is logged and dropped, never half carried out.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

log = logging.getLogger(__name__)


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StopRecording(_Command):
    """Stop this recording (decided, permitted and audited on the asking worker)."""

    act: Literal["stop-recording"] = "stop-recording"
    recording_id: int = Field(ge=1)
    user_id: int | None = Field(ge=1)  # who stopped it; None: the server (meeting ended, …)
    reason: str = Field(min_length=1, max_length=200)


class TakeOverRecording(_Command):
    """The worker recording the meeting is leaving and has stopped its recording: if you
    hold people of the meeting, record it from now on (the first worker to claim it does)."""

    act: Literal["take-over-recording"] = "take-over-recording"
    previous_id: int = Field(ge=1)  # the recording that was stopped
    started_by_id: int | None = Field(ge=1)  # who started that one


RecordingCommand = StopRecording | TakeOverRecording
ACTS = frozenset({"stop-recording", "take-over-recording"})
_COMMAND: TypeAdapter[RecordingCommand] = TypeAdapter(
    Annotated[RecordingCommand, Field(discriminator="act")]
)


def parse(room_id: str, raw: dict[str, Any]) -> RecordingCommand | None:
    """The command, or None (logged) when it is not one we accept."""
    try:
        return _COMMAND.validate_python(raw)
    except ValidationError as exc:
        log.warning("ignored a malformed recording command in %s: %s", room_id, exc.errors()[0])
        return None
