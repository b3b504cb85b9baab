"""Who may do what: every permission decision of the server, in one table.

A decision takes the account (admins have organisation-wide rights: whatever a host may do,
an admin may) and the person's role in the meeting concerned (`host`, `moderator`,
`participant`, or None when they are not in it) and an action. REST handlers, signaling
messages and the waiting room call `require()` or `may()` with the same action, so they can
never disagree; `meeting_role` is the one place a role is worked out from what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from signaling.errors import ApiError
from storage.models import Meeting, MeetingMember, User
from storage.models import ParticipantRole as MeetingRole

HOST = frozenset[MeetingRole]({"host"})
MODERATORS = frozenset[MeetingRole]({"host", "moderator"})
INSIDE = frozenset[MeetingRole]({"host", "moderator", "participant"})


class Action(StrEnum):
    EDIT_MEETING = "edit-meeting"  # change or delete it
    END_MEETING = "end-meeting"
    START_RECORDING = "start-recording"
    STOP_RECORDING = "stop-recording"
    SEE_RECORDINGS = "see-recordings"  # a meeting's recordings: list, play, download, delete
    MANAGE_USERS = "manage-users"
    SEE_MEDIA_STATS = "see-media-stats"
    SKIP_WAITING_ROOM = "skip-waiting-room"  # enter without being admitted, even when locked
    ADMIT = "admit"  # see the waiting room's queue, admit or deny
    MODERATE = "moderate"  # mute, remove, lock, lower someone's hand
    SET_WAITING_ROOM = "set-waiting-room"
    SET_ROLE = "set-role"  # promote or demote moderators, hand over the host role
    SEE_PARTICIPANTS = "see-participants"  # who is inside, over REST
    SEE_AUDIT = "see-audit"  # read and export the audit trail


@dataclass(frozen=True)
class Rule:
    roles: frozenset[MeetingRole]  # meeting roles that may
    admins: bool  # whether an administrator may, whatever their role
    code: str  # the refusal (403) code and message
    message: str


_NOT_MODERATOR = "only the host, a moderator or an admin may do this"
RULES: dict[Action, Rule] = {
    Action.EDIT_MEETING: Rule(
        HOST, True, "not-host", "only the meeting's host or an administrator may do this"
    ),
    Action.END_MEETING: Rule(
        MODERATORS, True, "not-moderator", "only the host, a moderator or an admin may end it"
    ),
    Action.START_RECORDING: Rule(
        MODERATORS, True, "not-moderator", "only the host, a moderator or an admin can record"
    ),
    Action.STOP_RECORDING: Rule(
        MODERATORS,
        True,
        "not-moderator",
        "only the host, a moderator or an admin can stop recording",
    ),
    Action.SEE_RECORDINGS: Rule(
        HOST, True, "not-allowed", "only admins and the meeting's host see recordings"
    ),
    Action.MANAGE_USERS: Rule(frozenset(), True, "admin-only", "only an administrator may do this"),
    Action.SEE_MEDIA_STATS: Rule(
        frozenset(), True, "admin-only", "only an administrator may do this"
    ),
    Action.SKIP_WAITING_ROOM: Rule(
        MODERATORS, True, "not-admitted", "wait until a moderator lets you in"
    ),
    Action.ADMIT: Rule(MODERATORS, True, "not-moderator", _NOT_MODERATOR),
    Action.MODERATE: Rule(MODERATORS, True, "not-moderator", _NOT_MODERATOR),
    Action.SET_WAITING_ROOM: Rule(
        HOST, True, "not-host", "only the host or an admin may switch the waiting room"
    ),
    Action.SET_ROLE: Rule(
        HOST, True, "not-host", "only the host or an admin may change people's roles"
    ),
    Action.SEE_PARTICIPANTS: Rule(
        INSIDE, True, "not-in-meeting", "only people in the meeting see who is in it"
    ),
    Action.SEE_AUDIT: Rule(frozenset(), True, "admin-only", "only an administrator may do this"),
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


def meeting_role(meeting: Meeting, member: MeetingMember | None, user: User) -> MeetingRole | None:
    """The user's role from what is stored: the meeting's host; a moderator the host made;
    a participant once admitted; None for strangers, the removed and the barred."""
    if meeting.host_id == user.id:
        return "host"
    if member is None or member.barred:
        return None
    if member.role == "moderator":
        return "moderator"
    return "participant" if member.admitted_at is not None else None
