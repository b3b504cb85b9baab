"""The waiting room's queue: knocking, admitting, denying, and switching the room off.

Who must wait is decided in `MeetingService.admit` from stored state only. This module keeps
the live queue of each meeting (`LiveRoom.waiting`, in order of knocking) and the decisions
on it. Decisions are taken out of the queue synchronously, before any `await`, so when
several moderators act on the same person at once the first decision wins and the others
get `not-waiting`. An admission is stored (`storage.access`) before the waiting socket is
told, so a reconnect or a second tab after it finds the person admitted.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from signaling.audit import Actor, AuditLog
from signaling.errors import ApiError
from signaling.meetings import MeetingService, authorize
from signaling.permissions import Action
from signaling.realtime.events import Knock as KnockEvent
from signaling.realtime.events import KnockInfo, KnockResolved, Person
from signaling.realtime.live import LiveMeetings, LiveRoom, Waiter
from storage import access, meetings
from storage.database import Database
from storage.models import Meeting
from storage.types import utcnow


def _person(actor: Actor) -> Person:
    return Person(user_id=actor.user.id, display_name=actor.user.display_name)


class WaitingRoom:
    def __init__(
        self,
        database: Database,
        live: LiveMeetings,
        meetings_: MeetingService,
        audit: AuditLog,
        *,
        limit: int = 100,
        knock_retry_seconds: int = 600,
    ) -> None:
        self.database = database
        self.live = live
        self.meetings = meetings_
        self.audit = audit
        self.limit = limit
        self.knock_retry = timedelta(seconds=knock_retry_seconds)

    # --- the person waiting ------------------------------------------------------------------
    async def knock(self, meeting: Meeting, actor: Actor) -> tuple[LiveRoom, Waiter]:
        """Put the person in the queue (replacing an older socket of theirs in it) and tell
        whoever may admit. 429 `waiting-room-full` when too many are waiting already."""
        room = self.live.room(meeting.room_id, meeting.id, meeting.host_id, meeting.enable_chat)
        room.title, room.may_be_recorded = meeting.title, meeting.enable_recording
        previous = room.waiter_of_user(actor.user.id)
        if previous is not None:
            room.waiting.pop(previous.participant_id, None)
            previous.decide("replaced")
            room.tell_moderators(
                KnockResolved(participant_id=previous.participant_id, outcome="left", by=None)
            )
        elif len(room.waiting) >= self.limit:
            self.live.forget_if_empty(meeting.room_id)
            raise ApiError(429, "waiting-room-full", "too many people are waiting already")
        knock = KnockInfo(
            participant_id="p-" + secrets.token_urlsafe(8),
            user_id=actor.user.id,
            display_name=actor.user.display_name,
            since=utcnow(),
        )
        waiter = Waiter(knock)
        room.waiting[knock.participant_id] = waiter
        waiter.send(room.waiting_status())
        room.tell_moderators(KnockEvent.of(knock))
        await self.audit.record(actor, "knock", room_id=meeting.room_id)
        return room, waiter

    def withdraw(self, room: LiveRoom, waiter: Waiter) -> None:
        """The person stopped waiting (closed the page, sent `leave`)."""
        if room.waiting.get(waiter.participant_id) is waiter:
            del room.waiting[waiter.participant_id]
            room.tell_moderators(
                KnockResolved(participant_id=waiter.participant_id, outcome="left", by=None)
            )
        self.live.forget_if_empty(room.room_id)

    # --- moderators' decisions ---------------------------------------------------------------
    def queue(self, room_id: str) -> list[KnockInfo]:
        room = self.live.rooms.get(room_id)
        return [w.knock for w in room.waiting.values()] if room else []

    async def authorize(self, room_id: str, actor: Actor, action: str) -> Meeting:
        async with self.audit.refusals(actor, action, room_id=room_id):
            async with self.database.session() as db:
                return await authorize(db, room_id, actor.user, Action.ADMIT)

    def _take(self, room_id: str, participant_id: str) -> tuple[LiveRoom, Waiter]:
        room = self.live.rooms.get(room_id)
        waiter = room.waiting.pop(participant_id, None) if room else None
        if room is None or waiter is None:
            raise ApiError(404, "not-waiting", "nobody with this id is waiting (any more)")
        return room, waiter

    async def admit(self, room_id: str, actor: Actor, participant_id: str) -> KnockInfo:
        """404 `not-waiting` when someone decided first or the person left."""
        meeting = await self.authorize(room_id, actor, "admit")
        room, waiter = self._take(room_id, participant_id)
        await self._admit(meeting, room, waiter, actor)
        return waiter.knock

    async def admit_all(self, room_id: str, actor: Actor) -> list[KnockInfo]:
        meeting = await self.authorize(room_id, actor, "admit-all")
        room = self.live.rooms.get(room_id)
        taken = list(room.waiting.values()) if room else []
        if room is not None:
            room.waiting.clear()
            for waiter in taken:
                await self._admit(meeting, room, waiter, actor)
        return [w.knock for w in taken]

    async def _admit(self, meeting: Meeting, room: LiveRoom, waiter: Waiter, actor: Actor) -> None:
        async with self.database.session() as db:
            await access.admit(db, meeting.id, waiter.knock.user_id)
        room.tell_moderators(
            KnockResolved(
                participant_id=waiter.participant_id, outcome="admitted", by=_person(actor)
            )
        )
        waiter.decide("admitted")
        await self.audit.record(
            actor, "admit", room_id=room.room_id, subject_user_id=waiter.knock.user_id
        )

    async def deny(self, room_id: str, actor: Actor, participant_id: str) -> KnockInfo:
        """The person is told, and may not knock again for `knock_retry_seconds`."""
        meeting = await self.authorize(room_id, actor, "deny")
        room, waiter = self._take(room_id, participant_id)
        async with self.database.session() as db:
            await access.deny(db, meeting.id, waiter.knock.user_id, utcnow() + self.knock_retry)
        room.tell_moderators(
            KnockResolved(participant_id=participant_id, outcome="denied", by=_person(actor))
        )
        waiter.decide("denied")
        await self.audit.record(
            actor, "deny", room_id=room_id, subject_user_id=waiter.knock.user_id
        )
        self.live.forget_if_empty(room_id)
        return waiter.knock

    async def set_enabled(self, room_id: str, actor: Actor, enabled: bool) -> Meeting:
        """Switch the waiting room on or off (host, admins); off admits everyone waiting."""
        async with self.audit.refusals(actor, "waiting-room", room_id=room_id):
            async with self.database.session() as db:
                meeting = await authorize(db, room_id, actor.user, Action.SET_WAITING_ROOM)
                if meeting.status == "ended":
                    raise ApiError(409, "meeting-ended", "this meeting has ended")
                await meetings.update_meeting(db, meeting, require_approval=enabled)
        await self.audit.record(
            actor, "waiting-room", room_id=room_id, detail="on" if enabled else "off"
        )
        await self.settings_changed(meeting, actor)
        return meeting

    async def settings_changed(self, meeting: Meeting, actor: Actor) -> None:
        """After any change of the meeting's settings (here or `PATCH`): tell everyone, and
        when the waiting room is off, let everyone waiting in."""
        self.meetings.changed(meeting)
        room = self.live.rooms.get(meeting.room_id)
        if room is not None and not meeting.require_approval and room.waiting:
            taken = list(room.waiting.values())
            room.waiting.clear()
            for waiter in taken:
                await self._admit(meeting, room, waiter, actor)
