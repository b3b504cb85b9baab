"""The audit API's query strings and bodies (beside `signaling/schemas.py`, in the same
style: strict requests, patterns that say exactly what is refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from signaling.identifiers import MAX_ID
from signaling.schemas import Email, Page, PageQuery, Request, UtcTime

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
ActionName = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9-]*$")
]
RoomId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class AuditFilterQuery(Request):
    """Which events: every filter given must match. `from` is inclusive, `to` exclusive."""

    actor: Id | None = None  # the user id of who acted
    actor_email: Email | None = None  # or their e-mail (compared case-insensitively)
    action: ActionName | None = None
    outcome: Literal["ok", "refused"] | None = None
    room_id: RoomId | None = None  # the meeting's public id
    recording_id: Id | None = None
    created_from: UtcTime | None = Field(default=None, alias="from")
    created_to: UtcTime | None = Field(default=None, alias="to")


class AuditListQuery(AuditFilterQuery, PageQuery):
    pass


class AuditEventOut(BaseModel):
    """One event; the actor's and subject's e-mail and name are the accounts' as they are
    now (null once an account is deleted, or for someone who had none)."""

    id: int
    created_at: datetime
    actor_id: int | None
    actor_email: str | None
    actor_name: str | None
    action: str
    outcome: Literal["ok", "refused"]
    room_id: str | None
    recording_id: int | None
    subject_user_id: int | None
    subject_email: str | None
    subject_name: str | None
    address: str | None
    detail: str


class AuditPage(Page[AuditEventOut]):
    pass
