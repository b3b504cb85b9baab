"""The waiting room's queue: knocking, admitting, denying, and switching the room off.

Who must wait is decided in `MeetingService.admit` from stored state only. This module keeps
the live queue of each meeting (`LiveRoom.waiting`, in order of knocking) and the decisions
on it. Decisions are taken out of the queue synchronously, before any `await`, so when
several moderators act on the same person at once the first decision wins and the others
get `not-waiting`. An admission is stored (`storage.access`) before the waiting socket is
told, so a reconnect or a second tab after it finds the person admitted.

With workers (docs/scaling.md) the queue everyone sees is in Redis (`signaling.knocks`),
which also settles who decided first; the decision travels to the knocker's worker as a
`waiting-decision` command, carried out by `decided_elsewhere`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from signaling.audit import Actor, AuditLog
from signaling.errors import ApiError
from signaling.knocks import Knocks
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


@dataclass(frozen=True)
class _Taken:
    """A knock taken out of the queue to decide on: the socket, when this worker holds it,
    else the worker that does."""

    knock: KnockInfo
    waiter: Waiter | None
    worker: str | None


NOT_WAITING = ApiError(404, "not-waiting", "nobody with this id is waiting (any more)")


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
        self.knocks = Knocks(live.cluster) if live.cluster is not None else None

    # --- the person waiting ------------------------------------------------------------------
    async def knock(self, meeting: Meeting, actor: Actor) -> tuple[LiveRoom, Waiter]:
        """Put the person in the queue (replacing an older socket of theirs in it) and tell
        whoever may admit. 429 `waiting-room-full` when too many are waiting already."""
        queued = await self.knocks.queue(meeting.room_id) if self.knocks is not None else []
        room = self.live.room(meeting.room_id, meeting.id, meeting.host_id, meeting.enable_chat)
        room.title, room.may_be_recorded = meeting.title, meeting.enable_recording
        previous = room.waiter_of_user(actor.user.id)
        if previous is not None:
            room.waiting.pop(previous.participant_id, None)
            previous.decide("replaced")
            if self.knocks is not None:
                self.knocks.remove(meeting.room_id, previous.participant_id)
            room.tell_moderators(
                KnockResolved(participant_id=previous.participant_id, outcome="left", by=None)
            )
        elif max(len(room.waiting), len(queued)) >= self.limit:
            self.live.forget_if_empty(meeting.room_id)
            raise ApiError(429, "waiting-room-full", "too many people are waiting already")
        for worker, earlier in queued:  # their socket waiting on another worker
            if earlier.user_id == actor.user.id and worker != self.live.worker_id:
                await self._replace_elsewhere(room, worker, earlier)
        knock = KnockInfo(
            participant_id="p-" + secrets.token_urlsafe(8),
            user_id=actor.user.id,
            display_name=actor.user.display_name,
            since=utcnow(),
        )
        waiter = Waiter(knock)
        room.waiting[knock.participant_id] = waiter
        if self.knocks is not None:  # in the shared queue before anyone hears of the knock
            await self.knocks.add(meeting.room_id, knock)
            await self.live.waiting_here(room)
        waiter.send(room.waiting_status())
        room.tell_moderators(KnockEvent.of(knock))
        await self.audit.record(actor, "knock", room_id=meeting.room_id)
        return room, waiter

    async def _replace_elsewhere(self, room: LiveRoom, worker: str, earlier: KnockInfo) -> None:
        assert self.knocks is not None
        if await self.knocks.take(room.room_id, earlier.participant_id) is None:
            return  # decided on, or gone, meanwhile
        command = {
            "act": "waiting-decision",
            "participant_id": earlier.participant_id,
            "outcome": "replaced",
        }
        self.live.tell(worker, room.room_id, command)
        room.tell_moderators(
            KnockResolved(participant_id=earlier.participant_id, outcome="left", by=None)
        )

    def withdraw(self, room: LiveRoom, waiter: Waiter) -> None:
        """The person stopped waiting (closed the page, sent `leave`)."""
        if room.waiting.get(waiter.participant_id) is waiter:
            del room.waiting[waiter.participant_id]
            if self.knocks is not None:
                self.knocks.remove(room.room_id, waiter.participant_id)
            room.tell_moderators(
                KnockResolved(participant_id=waiter.participant_id, outcome="left", by=None)
            )
        self.live.forget_if_empty(room.room_id)

    # --- moderators' decisions ---------------------------------------------------------------
    async def queue(self, room_id: str) -> list[KnockInfo]:
        """Everyone waiting, oldest knock first (on every worker)."""
        if self.knocks is not None:
            return [knock for _, knock in await self.knocks.queue(room_id)]
        room = self.live.rooms.get(room_id)
        return [w.knock for w in room.waiting.values()] if room else []

    async def authorize(self, room_id: str, actor: Actor, action: str) -> Meeting:
        async with self.audit.refusals(actor, action, room_id=room_id):
            async with self.database.session() as db:
                return await authorize(db, room_id, actor.user, Action.ADMIT)

    async def _take(self, room_id: str, participant_id: str) -> _Taken:
        """Take the knock out of the queue: the first decision wins (404 `not-waiting` for
        the others). One process: before any `await`. Workers: Redis decides."""
        if self.knocks is None:
            room = self.live.rooms.get(room_id)
            waiter = room.waiting.pop(participant_id, None) if room else None
            if waiter is None:
                raise NOT_WAITING
            return _Taken(waiter.knock, waiter, None)
        taken = await self.knocks.take(room_id, participant_id)
        if taken is None:
            raise NOT_WAITING
        worker, knock = taken
        room = self.live.rooms.get(room_id)
        waiter = room.waiting.pop(participant_id, None) if room else None
        return _Taken(knock, waiter, None if worker == self.live.worker_id else worker)

    async def _take_all(self, room_id: str) -> list[_Taken]:
        if self.knocks is None:
            room = self.live.rooms.get(room_id)
            waiters = list(room.waiting.values()) if room else []
            if room is not None:
                room.waiting.clear()
            return [_Taken(w.knock, w, None) for w in waiters]
        taken: list[_Taken] = []
        for _, knock in await self.knocks.queue(room_id):
            try:
                taken.append(await self._take(room_id, knock.participant_id))
            except ApiError:
                continue  # someone else decided on this one meanwhile
        return taken

    def _tell(self, room_id: str, taken: _Taken, outcome: Literal["admitted", "denied"]) -> None:
        """The knocker's socket learns the decision, here or on its worker."""
        if taken.waiter is not None:
            taken.waiter.decide(outcome)
        elif taken.worker is not None:
            command = {
                "act": "waiting-decision",
                "participant_id": taken.knock.participant_id,
                "outcome": outcome,
            }
            self.live.tell(taken.worker, room_id, command)

    def decided_elsewhere(self, room_id: str, act: dict[str, Any]) -> None:
        """Another worker decided on someone waiting here (its `_tell`)."""
        room = self.live.rooms.get(room_id)
        waiter = room.waiting.pop(str(act.get("participant_id")), None) if room else None
        outcome = act.get("outcome")
        if waiter is not None and outcome in ("admitted", "denied", "replaced"):
            waiter.decide(outcome)  # (its session's `withdraw` forgets an empty room)

    def _tell_moderators(self, room_id: str, event: KnockResolved) -> None:
        """Those who may admit, on every worker (this one may hold nobody: a REST call)."""
        room = self.live.rooms.get(room_id)
        if room is not None:
            room.tell_moderators(event)
        elif self.live.cluster is not None:
            self.live.cluster.publish(room_id, event.dump(), "moderators")

    async def admit(self, room_id: str, actor: Actor, participant_id: str) -> KnockInfo:
        """404 `not-waiting` when someone decided first or the person left."""
        meeting = await self.authorize(room_id, actor, "admit")
        taken = await self._take(room_id, participant_id)
        await self._admit(meeting, taken, actor)
        return taken.knock

    async def admit_all(self, room_id: str, actor: Actor) -> list[KnockInfo]:
        meeting = await self.authorize(room_id, actor, "admit-all")
        taken = await self._take_all(room_id)
        for each in taken:
            await self._admit(meeting, each, actor)
        return [t.knock for t in taken]

    async def _admit(self, meeting: Meeting, taken: _Taken, actor: Actor) -> None:
        knock = taken.knock
        async with self.database.session() as db:
            await access.admit(db, meeting.id, knock.user_id)
        resolved = KnockResolved(
            participant_id=knock.participant_id, outcome="admitted", by=_person(actor)
        )
        self._tell_moderators(meeting.room_id, resolved)
        self._tell(meeting.room_id, taken, "admitted")
        await self.audit.record(
            actor, "admit", room_id=meeting.room_id, subject_user_id=knock.user_id
        )

    async def deny(self, room_id: str, actor: Actor, participant_id: str) -> KnockInfo:
        """The person is told, and may not knock again for `knock_retry_seconds`."""
        meeting = await self.authorize(room_id, actor, "deny")
        taken = await self._take(room_id, participant_id)
        knock = taken.knock
        async with self.database.session() as db:
            await access.deny(db, meeting.id, knock.user_id, utcnow() + self.knock_retry)
        self._tell_moderators(
            room_id,
            KnockResolved(participant_id=participant_id, outcome="denied", by=_person(actor)),
        )
        self._tell(room_id, taken, "denied")
        await self.audit.record(actor, "deny", room_id=room_id, subject_user_id=knock.user_id)
        self.live.forget_if_empty(room_id)
        return knock

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
        if not meeting.require_approval:
            for taken in await self._take_all(meeting.room_id):
                await self._admit(meeting, taken, actor)
