"""Moderation: muting, removing, locking, roles and raised hands, for REST and signaling.

Every use case asks the permission table (`signaling.permissions`) through `_authorize`, which
also writes refused attempts to the audit trail. A mute is enforced by the media server
(`MediaServer.block`: the track stops being forwarded and recorded in the same call), not by
the muted person's page; the person is told, and their media state is set off for everyone.
Whether they may turn it on again is the meeting's `allow_self_unmute`, or a moderator's
`allow-unmute`; until then `check_media_state` refuses it.

Across workers (docs/scaling.md): the decision — permission, audit, the database — is taken
on the worker that was asked; what it does to the person (`apply`: stop their tracks, tell
them, close their socket) runs on the worker that holds their socket, reached through the
cluster when that is another one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rtp.types import SOURCE_KIND, Source
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
SOURCES = frozenset(SOURCE_KIND)


def _person(actor: Actor) -> Person:
    return Person(user_id=actor.user.id, display_name=actor.user.display_name)


@dataclass(frozen=True)
class Target:
    """Someone in the meeting, on this worker (`peer`) or on another (`worker`)."""

    participant_id: str
    user_id: int
    peer: Peer | None
    worker: str | None = None


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
        self,
        room_id: str,
        actor: Actor,
        action: Action,
        audit_as: str,
        subject: Target | None = None,
    ) -> Meeting:
        async with self.audit.refusals(
            actor, audit_as, room_id=room_id, subject_user_id=subject.user_id if subject else None
        ):
            async with self.database.session() as db:
                return await authorize(db, room_id, actor.user, action)

    async def _target(self, room_id: str, participant_id: str) -> Target:
        room = self.live.rooms.get(room_id)
        peer = room.peers.get(participant_id) if room else None
        if peer is not None:
            return Target(participant_id, peer.user_id, peer)
        found = await self.live.whereabouts(room_id, participant_id)
        if found is None:
            raise ApiError(404, "not-in-meeting", "nobody with this id is in the meeting")
        worker, info = found
        return Target(participant_id, info.user_id, None, worker)

    async def _carry_out(self, room_id: str, target: Target, act: dict[str, Any]) -> None:
        """Do `act` to the target: here, or on the worker that holds them."""
        act = act | {"participant_id": target.participant_id}
        if target.peer is not None:
            await self.apply(room_id, act)
        elif target.worker is not None:
            self.live.tell(target.worker, room_id, act)

    async def apply(self, room_id: str, act: dict[str, Any]) -> None:
        """What a decision does to a person whose socket this worker holds (decided and
        audited already, here or on another worker); also the waiting room's decisions and
        a connection replaced by the same person's newer one on another worker."""
        if act.get("act") == "waiting-decision":  # someone waiting here, not inside
            self.waiting_room.decided_elsewhere(room_id, act)
            return
        room = self.live.rooms.get(room_id)
        peer = room.peers.get(str(act.get("participant_id"))) if room else None
        if room is None or peer is None:
            return  # they left meanwhile
        by = Person.model_validate(act["by"]) if "by" in act else None
        match act.get("act"):
            case "mute":
                sources: set[Source] = {s for s in act["sources"] if s in SOURCES}
                await self._stop(room, peer, sources)
                assert by is not None
                peer.send(Muted(sources=sorted(sources), by=by, may_unmute=bool(act["may_unmute"])))
            case "allow-unmute":
                assert by is not None
                peer.standing.held.clear()
                self.live.announce(peer)
                peer.send(UnmuteAllowed(by=by))
            case "remove":
                assert by is not None
                peer.send(Removed(by=by, barred=bool(act["barred"])))
                peer.close(CloseCode.REMOVED, LeaveReason.REMOVED)
            case "lower-hand":
                self._set_hand(room, peer, raised=False)
            case "replace":  # the same person connected again, on another worker
                peer.close(CloseCode.REPLACED, LeaveReason.REPLACED)
            case other:
                log.warning("ignored an unknown moderation act %r", other)

    async def _not_the_host(
        self, meeting: Meeting, actor: Actor, target: Target, audit_as: str
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
        target = await self._target(room_id, participant_id)
        meeting = await self._authorize(room_id, actor, Action.MODERATE, "mute", target)
        await self._not_the_host(meeting, actor, target, "mute")
        await self._carry_out(room_id, target, self._mute_act(meeting, actor, wanted))
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
        here = [Target(p.participant_id, p.user_id, p) for p in room.peers.values()] if room else []
        elsewhere = [
            Target(info.participant_id, info.user_id, None, worker)
            for worker, info in await self.live.elsewhere(room_id)
        ]
        muted = 0
        act = self._mute_act(meeting, actor, {"microphone"})
        for target in here + elsewhere:
            if target.user_id == actor.user.id or (
                target.user_id == meeting.host_id and actor.user.id != meeting.host_id
            ):
                continue
            await self._carry_out(room_id, target, act)
            muted += 1
        await self.audit.record(actor, "mute-all", room_id=room_id, detail=f"{muted} people")
        return muted

    @staticmethod
    def _mute_act(meeting: Meeting, actor: Actor, sources: set[Source]) -> dict[str, Any]:
        return {
            "act": "mute",
            "sources": sorted(sources),
            "by": _person(actor).model_dump(),
            "may_unmute": meeting.allow_self_unmute,
        }

    async def _stop(self, room: LiveRoom, target: Peer, sources: set[Source]) -> None:
        target.standing.held |= sources
        target.standing.blocked |= sources
        self.live.media.block(
            room.room_id, target.participant_id, frozenset(target.standing.blocked)
        )
        media = target.media.model_copy(update=dict.fromkeys(sources, False))
        await self._set_media(room, target, media)

    async def _set_media(self, room: LiveRoom, peer: Peer, media: Media) -> None:
        peer.media = media
        async with self.database.session() as db:
            await meetings.set_media_state(db, peer.participation_id, **media.model_dump())
        self.live.announce(peer)
        room.broadcast(MediaStateChanged(participant_id=peer.participant_id, **media.model_dump()))

    async def allow_unmute(self, room_id: str, actor: Actor, participant_id: str) -> None:
        target = await self._target(room_id, participant_id)
        await self._authorize(room_id, actor, Action.MODERATE, "allow-unmute", target)
        act = {"act": "allow-unmute", "by": _person(actor).model_dump()}
        await self._carry_out(room_id, target, act)
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
        target = await self._target(room_id, participant_id)
        meeting = await self._authorize(room_id, actor, Action.MODERATE, "remove", target)
        await self._not_the_host(meeting, actor, target, "remove")
        async with self.database.session() as db:
            await access.remove(db, meeting.id, target.user_id, bar=bar)
        act = {"act": "remove", "by": _person(actor).model_dump(), "barred": bar}
        await self._carry_out(room_id, target, act)
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
        await self._roles_changed(meeting, changed)
        return meeting

    async def set_role_of(
        self, room_id: str, actor: Actor, participant_id: str, role: ParticipantRole
    ) -> None:
        target = await self._target(room_id, participant_id)
        await self.set_role(room_id, actor, target.user_id, role)

    async def _roles_changed(self, meeting: Meeting, changed: dict[int, ParticipantRole]) -> None:
        room = self.live.rooms.get(meeting.room_id)
        if room is None:
            return
        for _worker, info in await self.live.elsewhere(meeting.room_id):
            if (role := changed.get(info.user_id)) is not None:  # their worker updates them
                room.broadcast(
                    RoleChanged(participant_id=info.participant_id, user_id=info.user_id, role=role)
                )
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
                for knock in await self.waiting_room.queue(room.room_id):
                    peer.send(Knock.of(knock))
        self.meetings.changed(meeting)
        room.refresh_waiting(was_present)

    # --- hands -------------------------------------------------------------------------------
    async def hand(
        self, room_id: str, actor: Actor, peer: Peer, raised: bool, participant_id: str | None
    ) -> None:
        """Raise or lower one's own hand; lowering someone else's is moderation."""
        if participant_id in (None, peer.participant_id):
            room = self.live.rooms.get(room_id)
            if room is not None:
                self._set_hand(room, peer, raised=raised)
            return
        if raised:
            raise ApiError(403, "not-your-participant", "only your own hand can be raised")
        assert participant_id is not None
        target = await self._target(room_id, participant_id)
        await self._authorize(room_id, actor, Action.MODERATE, "lower-hand", target)
        await self._carry_out(room_id, target, {"act": "lower-hand"})

    def _set_hand(self, room: LiveRoom, peer: Peer, *, raised: bool) -> None:
        standing = peer.standing
        if raised == (standing.hand_raised_at is not None):
            return
        standing.hand_raised_at = utcnow() if raised else None
        self.live.announce(peer)
        room.broadcast(
            HandChanged(
                participant_id=peer.participant_id, raised=raised, at=standing.hand_raised_at
            )
        )
