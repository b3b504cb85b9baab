"""Moderation: muting, removing, locking, roles and raised hands, for REST and signaling.

Every use case asks the permission table (`signaling.permissions`) through `_authorize`, which
also writes refused attempts to the audit trail. A mute is enforced by the media server
(`MediaServer.block`: the track stops being forwarded and recorded in the same call), not by
the muted person's page; the person is told, and their media state is set off for everyone.
Whether they may turn it on again is the meeting's `allow_self_unmute`, or a moderator's
`allow-unmute`; until then `check_media_state` refuses it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from rtp.types import Source
from signaling.admission import WaitingRoom
from signaling.audit import Actor, AuditLog
from signaling.errors import ApiError
from signaling.meetings import MeetingService, authorize, load_meeting
from signaling.permissions import Action
from signaling.realtime.events import (
    HandChanged,
    Knock,
    Media,
    MediaStateChanged,
    Muted,
    Person,
    Removed,
    RoleChanged,
    UnmuteAllowed,
)
from signaling.realtime.live import LiveMeetings, LiveRoom, Peer
from signaling.realtime.protocol import CloseCode, ErrorCode, LeaveReason
from storage import access, meetings
from storage.database import Database
from storage.models import Meeting, ParticipantRole
from storage.types import utcnow

log = logging.getLogger(__name__)


def _person(actor: Actor) -> Person:
    return Person(user_id=actor.user.id, display_name=actor.user.display_name)


class Moderation:
    def __init__(
        self,
        database: Database,
        live: LiveMeetings,
        meetings_: MeetingService,
        waiting_room: WaitingRoom,
        audit: AuditLog,
    ) -> None:
        self.database = database
        self.live = live
        self.meetings = meetings_
        self.waiting_room = waiting_room
        self.audit = audit

    async def _authorize(
        self, room_id: str, actor: Actor, action: Action, audit_as: str, subject: Peer | None = None
    ) -> Meeting:
        async with self.audit.refusals(
            actor, audit_as, room_id=room_id, subject_user_id=subject.user_id if subject else None
        ):
            async with self.database.session() as db:
                return await authorize(db, room_id, actor.user, action)

    def _target(self, room_id: str, participant_id: str) -> tuple[LiveRoom, Peer]:
        room = self.live.rooms.get(room_id)
        peer = room.peers.get(participant_id) if room else None
        if room is None or peer is None:
            raise ApiError(404, "not-in-meeting", "nobody with this id is in the meeting")
        return room, peer

    async def _not_the_host(
        self, meeting: Meeting, actor: Actor, target: Peer, audit_as: str
    ) -> None:
        """Nobody mutes or removes the host but the host themself."""
        if target.user_id == meeting.host_id and actor.user.id != meeting.host_id:
            await self.audit.record(
                actor,
                audit_as,
                outcome="refused",
                room_id=meeting.room_id,
                subject_user_id=target.user_id,
                detail="cannot-moderate-host",
            )
            raise ApiError(403, "cannot-moderate-host", "the host cannot be moderated")

    # --- mute --------------------------------------------------------------------------------
    async def mute(
        self, room_id: str, actor: Actor, participant_id: str, sources: Iterable[Source]
    ) -> None:
        wanted = set(sources)
        room, target = self._target(room_id, participant_id)
        meeting = await self._authorize(room_id, actor, Action.MODERATE, "mute", target)
        await self._not_the_host(meeting, actor, target, "mute")
        await self._stop(meeting, room, target, wanted, actor)
        await self.audit.record(
            actor,
            "mute",
            room_id=room_id,
            subject_user_id=target.user_id,
            detail=",".join(sorted(wanted)),
        )

    async def mute_all(self, room_id: str, actor: Actor) -> int:
        """Every microphone but the asker's (and the host's, unless the host asks: nobody
        moderates the host)."""
        meeting = await self._authorize(room_id, actor, Action.MODERATE, "mute-all")
        room = self.live.rooms.get(room_id)
        muted = 0
        for target in list(room.peers.values()) if room else []:
            if target.user_id == actor.user.id or (
                target.user_id == meeting.host_id and actor.user.id != meeting.host_id
            ):
                continue
            assert room is not None
            await self._stop(meeting, room, target, {"microphone"}, actor)
            muted += 1
        await self.audit.record(actor, "mute-all", room_id=room_id, detail=f"{muted} people")
        return muted

    async def _stop(
        self, meeting: Meeting, room: LiveRoom, target: Peer, sources: set[Source], actor: Actor
    ) -> None:
        target.standing.held |= sources
        target.standing.blocked |= sources
        self.live.media.block(
            room.room_id, target.participant_id, frozenset(target.standing.blocked)
        )
        media = target.media.model_copy(update=dict.fromkeys(sources, False))
        await self._set_media(room, target, media)
        target.send(
            Muted(
                sources=sorted(sources),
                by=_person(actor),
                may_unmute=meeting.allow_self_unmute,
            )
        )

    async def _set_media(self, room: LiveRoom, peer: Peer, media: Media) -> None:
        peer.media = media
        async with self.database.session() as db:
            await meetings.set_media_state(db, peer.participation_id, **media.model_dump())
        self.live.announce(peer)
        room.broadcast(MediaStateChanged(participant_id=peer.participant_id, **media.model_dump()))

    async def allow_unmute(self, room_id: str, actor: Actor, participant_id: str) -> None:
        _room, target = self._target(room_id, participant_id)
        await self._authorize(room_id, actor, Action.MODERATE, "allow-unmute", target)
        target.standing.held.clear()
        target.send(UnmuteAllowed(by=_person(actor)))
        await self.audit.record(
            actor, "allow-unmute", room_id=room_id, subject_user_id=target.user_id
        )

    async def check_media_state(self, room: LiveRoom, peer: Peer, media: Media) -> None:
        """A person's own `media-state`: turning on a source a moderator stopped is refused
        while they may not unmute; otherwise it lifts the stop and forwarding resumes."""
        standing = peer.standing
        turned_on = {source for source in standing.blocked if getattr(media, source)}
        if not turned_on:
            return
        if standing.held & turned_on:
            async with self.database.session() as db:
                meeting = await load_meeting(db, room.room_id)
            if not meeting.allow_self_unmute:
                raise ApiError(
                    403,
                    ErrorCode.MUTED_BY_MODERATOR,
                    "a moderator muted you; ask them to let you unmute",
                )
            standing.held -= turned_on
        standing.blocked -= turned_on
        self.live.media.block(room.room_id, peer.participant_id, frozenset(standing.blocked))

    # --- remove ------------------------------------------------------------------------------
    async def remove(self, room_id: str, actor: Actor, participant_id: str, *, bar: bool) -> None:
        """Send the person away (4412); `bar`: for good. Their admission is taken back, so
        where there is a waiting room they must be admitted again."""
        _room, target = self._target(room_id, participant_id)
        meeting = await self._authorize(room_id, actor, Action.MODERATE, "remove", target)
        await self._not_the_host(meeting, actor, target, "remove")
        async with self.database.session() as db:
            await access.remove(db, meeting.id, target.user_id, bar=bar)
        target.send(Removed(by=_person(actor), barred=bar))
        target.close(CloseCode.REMOVED, LeaveReason.REMOVED)
        await self.audit.record(
            actor,
            "remove",
            room_id=room_id,
            subject_user_id=target.user_id,
            detail="barred" if bar else "",
        )

    # --- lock --------------------------------------------------------------------------------
    async def lock(self, room_id: str, actor: Actor, locked: bool) -> Meeting:
        """Nobody who was not admitted before gets in while locked (host, moderators and
        admins still do)."""
        action = "lock" if locked else "unlock"
        async with self.audit.refusals(actor, action, room_id=room_id):
            async with self.database.session() as db:
                meeting = await authorize(db, room_id, actor.user, Action.MODERATE)
                if meeting.status == "ended":
                    raise ApiError(409, "meeting-ended", "this meeting has ended")
                await meetings.update_meeting(db, meeting, locked=locked)
        await self.audit.record(actor, action, room_id=room_id)
        self.meetings.changed(meeting)
        return meeting

    # --- roles -------------------------------------------------------------------------------
    async def set_role(
        self, room_id: str, actor: Actor, user_id: int, role: ParticipantRole
    ) -> Meeting:
        """Promote or demote a moderator, or hand the host role over (the former host stays
        on as a moderator). 403 `not-host`; 409 `cannot-moderate-host` to demote the host;
        404 `user-not-found` for a host hand-over to someone never admitted."""
        async with self.audit.refusals(actor, "set-role", room_id=room_id, subject_user_id=user_id):
            async with self.database.session() as db:
                meeting = await authorize(db, room_id, actor.user, Action.SET_ROLE)
                if meeting.status == "ended":
                    raise ApiError(409, "meeting-ended", "this meeting has ended")
                if user_id == meeting.host_id:
                    if role != "host":
                        raise ApiError(
                            409,
                            "cannot-moderate-host",
                            "hand the host role to someone else instead",
                        )
                    return meeting
                if role == "host":
                    member = await access.get_member(db, meeting.id, user_id)
                    if member is None or member.barred:
                        raise ApiError(
                            404, "not-in-meeting", "the new host must have been in the meeting"
                        )
                    former = meeting.host_id
                    await access.set_role(db, meeting.id, former, "moderator")
                    await meetings.update_meeting(db, meeting, host_id=user_id)
                    changed: dict[int, ParticipantRole] = {former: "moderator", user_id: "host"}
                else:
                    await access.set_role(db, meeting.id, user_id, role)
                    changed = {user_id: role}
                await db.refresh(meeting, ["host"])
        await self.audit.record(
            actor, "set-role", room_id=room_id, subject_user_id=user_id, detail=role
        )
        self._roles_changed(meeting, changed)
        return meeting

    async def set_role_of(
        self, room_id: str, actor: Actor, participant_id: str, role: ParticipantRole
    ) -> None:
        _room, target = self._target(room_id, participant_id)
        await self.set_role(room_id, actor, target.user_id, role)

    def _roles_changed(self, meeting: Meeting, changed: dict[int, ParticipantRole]) -> None:
        room = self.live.rooms.get(meeting.room_id)
        if room is None:
            return
        was_present = room.host_present
        for peer in list(room.peers.values()):
            role = changed.get(peer.user_id)
            if role is None:
                continue
            could_admit, peer.role = peer.may_admit, role
            self.live.announce(peer)
            room.broadcast(
                RoleChanged(participant_id=peer.participant_id, user_id=peer.user_id, role=role)
            )
            if peer.may_admit and not could_admit:  # a new moderator sees the queue
                for waiter in room.waiting.values():
                    peer.send(Knock.of(waiter.knock))
        self.meetings.changed(meeting)
        room.refresh_waiting(was_present)

    # --- hands -------------------------------------------------------------------------------
    async def hand(
        self, room_id: str, actor: Actor, peer: Peer, raised: bool, participant_id: str | None
    ) -> None:
        """Raise or lower one's own hand; lowering someone else's is moderation."""
        room, target = self._target(room_id, participant_id or peer.participant_id)
        if target is not peer:
            if raised:
                raise ApiError(403, "not-your-participant", "only your own hand can be raised")
            await self._authorize(room_id, actor, Action.MODERATE, "lower-hand", target)
        standing = target.standing
        if raised == (standing.hand_raised_at is not None):
            return
        standing.hand_raised_at = utcnow() if raised else None
        self.live.announce(target)
        room.broadcast(
            HandChanged(
                participant_id=target.participant_id, raised=raised, at=standing.hand_raised_at
            )
        )
