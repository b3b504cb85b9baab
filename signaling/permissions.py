"""Who may do what: every permission decision of the server, in one table.

A decision takes the account (admins have organisation-wide rights) and the person's role in
the meeting concerned (`host`, `moderator`, `participant`, or None when they are not in it)
and an action. REST handlers and signaling messages call `require()` with the same action,
so the two can never disagree. The waiting room and moderation add their actions here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from signaling.errors import ApiError
from storage.models import ParticipantRole as MeetingRole
from storage.models import User


class Action(StrEnum):
    EDIT_MEETING = "edit-meeting"  # change or delete it
    END_MEETING = "end-meeting"
    START_RECORDING = "start-recording"
    STOP_RECORDING = "stop-recording"
    SEE_RECORDINGS = "see-recordings"  # a meeting's recordings: list, play, download, delete
    MANAGE_USERS = "manage-users"
    SEE_MEDIA_STATS = "see-media-stats"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[MeetingRole]  # meeting roles that may
    admins: bool  # whether an administrator may, whatever their role
    code: str  # the refusal (403) code and message
    message: str


RULES: dict[Action, Rule] = {
    Action.EDIT_MEETING: Rule(
        frozenset({"host"}),
        True,
        "not-host",
        "only the meeting's host or an administrator may do this",
    ),
    Action.END_MEETING: Rule(
        frozenset({"host"}), False, "not-host", "only the meeting's host may end it"
    ),
    Action.START_RECORDING: Rule(
        frozenset({"host", "moderator"}),
        False,
        "not-moderator",
        "only the host or a moderator can start recording",
    ),
    Action.STOP_RECORDING: Rule(
        frozenset({"host", "moderator"}),
        True,
        "not-moderator",
        "only the host, a moderator or an admin can stop recording",
    ),
    Action.SEE_RECORDINGS: Rule(
        frozenset({"host"}),
        True,
        "not-allowed",
        "only admins and the meeting's host see recordings",
    ),
    Action.MANAGE_USERS: Rule(frozenset(), True, "admin-only", "only an administrator may do this"),
    Action.SEE_MEDIA_STATS: Rule(
        frozenset(), True, "admin-only", "only an administrator may do this"
    ),
}


def may(user: User, role: MeetingRole | None, action: Action) -> bool:
    rule = RULES[action]
    return (rule.admins and user.role == "admin") or (role is not None and role in rule.roles)


def require(user: User, role: MeetingRole | None, action: Action) -> None:
    """`may`, or a 403 with the action's refusal code."""
    if not may(user, role, action):
        rule = RULES[action]
        raise ApiError(403, rule.code, rule.message)


def host_role(host_id: int, user: User) -> MeetingRole | None:
    """The role that hosting gives, for decisions that need no visit (editing, recordings)."""
    return "host" if host_id == user.id else None
