"""Who is connected to which meeting right now, and how events reach them.

A `Peer` is one participant's WebSocket. Events are queued per peer and written by the
peer's own writer task, so a slow or stuck client never delays the others. This module
knows rooms and sockets only: what happens to a meeting (ending it, recording it, the last
person leaving) is decided in `signaling.meetings` and `signaling.recordings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web

from rtp.types import SOURCE_KIND, SlotAssignment, Source
from sfu import MediaServer
from signaling.cluster import Audience, Cluster
from signaling.piping import MEDIA_CHANGED, Piping

from .events import (
    ActiveSpeaker,
    KnockInfo,
    Media,
    MeetingEnded,
    ParticipantInfo,
    ParticipantLeft,
    Reconnect,
    Renegotiate,
    ServerEvent,
    Slot,
    Tracks,
    Waiting,
    WaitingMeeting,
)
from .protocol import CloseCode, LeaveReason

log = logging.getLogger(__name__)
SEND_QUEUE_LIMIT = 512


@dataclass
class Standing:
    """What moderation decided about a person in a meeting, kept across their connections
    (a reconnect or a second tab must not lift a moderator's mute, nor drop a raised hand)."""

    held: set[Source] = field(default_factory=set)  # stopped by a moderator, not allowed back
    blocked: set[Source] = field(default_factory=set)  # not forwarded until turned on again
    hand_raised_at: datetime | None = None

    def dump(self) -> dict[str, Any]:
        """As kept in Redis for the person's next connection, on any worker."""
        at = self.hand_raised_at
        return {
            "held": sorted(self.held),
            "blocked": sorted(self.blocked),
            "hand_raised_at": at.isoformat() if at else None,
        }

    def load(self, kept: dict[str, Any]) -> None:
        """What `dump` wrote (another worker's): anything malformed is left out."""
        for name in ("held", "blocked"):
            values = kept.get(name)
            if isinstance(values, list):
                setattr(self, name, {v for v in values if v in SOURCE_KIND})
        at = kept.get("hand_raised_at")
        try:
            self.hand_raised_at = datetime.fromisoformat(at) if isinstance(at, str) else None
        except ValueError:
            self.hand_raised_at = None


@dataclass
class Peer:
    """One connected participant; also the media server's event sink for that participant."""

    room_id: str
    user_id: int
    display_name: str
    role: str
    participation_id: int
    ws: web.WebSocketResponse
    participant_id: str = field(default_factory=lambda: "p-" + secrets.token_urlsafe(8))
    is_admin: bool = False
    address: str | None = None
    media: Media = field(default_factory=Media)
    standing: Standing = field(default_factory=Standing)
    slots: list[SlotAssignment] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = CloseCode.NORMAL
    close_reason: str = ""

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SEND_QUEUE_LIMIT)
        # What is raised while the person is being seated (the media server asking for
        # slots, events relayed from other workers) waits here: `welcome` goes out first.
        self._before_welcome: list[dict[str, Any]] | None = []
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.participant_id}")

    def describe(self) -> ParticipantInfo:
        return ParticipantInfo(
            participant_id=self.participant_id,
            user_id=self.user_id,
            display_name=self.display_name,
            role=self.role,  # type: ignore[arg-type]
            media=self.media,
            hand_raised_at=self.standing.hand_raised_at,
            held=sorted(self.standing.held),
        )

    @property
    def may_admit(self) -> bool:
        """Whether this person may act on the waiting room (kept in step with the role)."""
        return self.is_admin or self.role in ("host", "moderator")

    def send(self, event: ServerEvent) -> None:
        self.send_dumped(event.dump())

    def welcome(self, event: ServerEvent) -> None:
        """Send `welcome`, then what was raised while seating (in order)."""
        held, self._before_welcome = self._before_welcome or [], None
        self.send(event)
        for dumped in held:
            self.send_dumped(dumped)

    def send_dumped(self, event: dict[str, Any]) -> None:
        """Queue an event; a client that cannot keep up is disconnected, not waited for."""
        if self.closing.is_set():
            return
        if self._before_welcome is not None:
            self._before_welcome.append(event)
            if len(self._before_welcome) > SEND_QUEUE_LIMIT:
                self.close(CloseCode.FLOOD, LeaveReason.FLOOD)
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("participant %s is not reading its events; closing", self.participant_id)
            self.close(CloseCode.FLOOD, LeaveReason.FLOOD)

    def close(self, code: int, reason: str) -> None:
        """Ask the session to end with this close code and `LeaveReason` (first one wins)."""
        if self.closing.is_set():
            return
        self.close_code, self.close_reason = code, reason
        self.closing.set()

    async def drain_and_stop_writer(self) -> None:
        """Flush queued events (e.g. `meeting-ended`) before the socket is closed."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), timeout=2)
        except (TimeoutError, asyncio.CancelledError):
            self._writer.cancel()

    async def _write(self) -> None:
        while (event := await self._queue.get()) is not None:
            if self.ws.closed:
                return
            try:
                await self.ws.send_json(event)
            except (ConnectionError, RuntimeError):
                self.close(CloseCode.ABNORMAL, LeaveReason.DISCONNECTED)
                return

    # --- sfu.MediaEvents ------------------------------------------------------------------
    async def renegotiate(
        self, audio_slots: int, video_slots: int, audio_total: int, video_total: int
    ) -> None:
        self.send(
            Renegotiate(
                audio_slots=audio_slots,
                video_slots=video_slots,
                audio_total=audio_total,
                video_total=video_total,
            )
        )

    async def slots_changed(self, slots: list[SlotAssignment]) -> None:
        self.slots = slots
        self.send(Tracks(slots=[Slot.of(slot) for slot in slots]))

    async def connection_lost(self, reason: str) -> None:
        log.info("participant %s lost its media connection: %s", self.participant_id, reason)
        self.close(CloseCode.MEDIA_FAILED, LeaveReason.MEDIA_FAILED)

    async def speakers_changed(self, dominant: str | None, recent: list[str]) -> None:
        self.send(ActiveSpeaker(participant_id=dominant, recent=recent))


Decision = Literal["admitted", "denied", "ended", "replaced", "left", "going-away", "flood"]


@dataclass
class Waiter:
    """One person held in the waiting room: their socket gets `waiting` and nothing else
    until a decision arrives (`signaling.realtime.session` waits for it)."""

    knock: KnockInfo
    outbox: asyncio.Queue[ServerEvent | Decision] = field(default_factory=asyncio.Queue)
    decided: Decision | None = None

    @property
    def participant_id(self) -> str:
        return self.knock.participant_id

    def send(self, event: ServerEvent) -> None:
        if self.decided is None:
            self.outbox.put_nowait(event)

    def decide(self, decision: Decision) -> None:
        """The first decision wins; later ones are ignored."""
        if self.decided is None:
            self.decided = decision
            self.outbox.put_nowait(decision)


@dataclass
class LiveRoom:
    room_id: str
    meeting_id: int
    host_id: int
    enable_chat: bool
    peers: dict[str, Peer] = field(default_factory=dict)
    waiting: dict[str, Waiter] = field(default_factory=dict)  # in order of knocking
    title: str = ""
    may_be_recorded: bool = False
    # someone who may let people in is inside on another worker (Redis presence; kept up to
    # date only while people wait here, which is when it matters)
    admitters_elsewhere: bool = False
    # relays what is broadcast here to the meeting's people on other workers (docs/scaling.md)
    relay: Callable[[str, dict[str, Any], Audience], None] | None = None

    def broadcast(self, event: ServerEvent, *, skip: str | None = None) -> None:
        dumped = event.dump()
        self.deliver(dumped, "all", skip=skip)
        if self.relay is not None:
            self.relay(self.room_id, dumped, "all")

    def tell_moderators(self, event: ServerEvent) -> None:
        """Send to those who may act on the waiting room (host, moderators, admins)."""
        dumped = event.dump()
        self.deliver(dumped, "moderators")
        if self.relay is not None:
            self.relay(self.room_id, dumped, "moderators")

    def deliver(self, dumped: dict[str, Any], audience: Audience, skip: str | None = None) -> None:
        """To the people of this worker only."""
        for peer in list(self.peers.values()):
            if peer.participant_id != skip and (audience == "all" or peer.may_admit):
                peer.send_dumped(dumped)

    @property
    def host_present(self) -> bool:
        return self.admitters_elsewhere or any(peer.may_admit for peer in self.peers.values())

    def waiting_status(self) -> Waiting:
        return Waiting(
            meeting=WaitingMeeting(room_id=self.room_id, title=self.title),
            host_present=self.host_present,
            may_be_recorded=self.may_be_recorded,
        )

    def refresh_waiting(self, was_present: bool) -> None:
        """Tell the waiting whether someone who can let them in is inside, when that changed."""
        if self.waiting and self.host_present != was_present:
            status = self.waiting_status()
            for waiter in list(self.waiting.values()):
                waiter.send(status)

    def waiter_of_user(self, user_id: int) -> Waiter | None:
        return next((w for w in self.waiting.values() if w.knock.user_id == user_id), None)

    def detach(self, peer: Peer) -> None:
        """Take the peer out of the room and tell the others (once, however it left)."""
        if self.peers.get(peer.participant_id) is peer:
            was_present = self.host_present
            del self.peers[peer.participant_id]
            self.broadcast(
                ParticipantLeft(participant_id=peer.participant_id, reason=peer.close_reason)
            )
            self.refresh_waiting(was_present)

    def peer_of_user(self, user_id: int) -> Peer | None:
        return next((p for p in self.peers.values() if p.user_id == user_id), None)


class LiveMeetings:
    """The rooms with people in them on this worker; with a `Cluster`, also what the other
    workers of the deployment say about the same meetings."""

    def __init__(
        self, media: MediaServer, cluster: Cluster | None = None, video_codec: str = "VP8"
    ) -> None:
        self.media = media
        self.cluster = cluster
        # media across workers: which publications each worker pipes to which
        self.piping = Piping(media, cluster, video_codec) if cluster is not None else None
        self._syncs: set[asyncio.Task[None]] = set()
        self.rooms: dict[str, LiveRoom] = {}
        self._standings: dict[tuple[str, int], Standing] = {}
        # what another worker asks this one to do to a person it holds (moderation.apply)
        self.on_command: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
        self._commands: set[asyncio.Task[None]] = set()
        # meetings this worker records: it follows them and pipes their media in while it
        # does, whether or not it holds anyone's socket there (signaling.recordings)
        self.recorded: set[str] = set()
        # the worker is leaving (SIGTERM, signaling.drain): nobody new is seated here
        self.draining = False
        self.sessions = 0  # seated sockets not closed yet (signaling.realtime.session)
        if cluster is not None:
            cluster.on_event = self._relayed
            cluster.on_worker_lost = self._worker_lost
            cluster.on_command = self._commanded

    # --- the other workers ----------------------------------------------------------------
    @property
    def worker_id(self) -> str | None:
        """This worker among the deployment's (None: one process, no cluster)."""
        return self.cluster.worker_id if self.cluster is not None else None

    async def entered(self, room: LiveRoom, peer: Peer) -> None:
        """The peer is in: the other workers' people see them (presence) and this worker
        relays the meeting's events from now on."""
        if self.cluster is not None:
            await self.cluster.follow(room.room_id)
            self.announce(peer)
        if self.piping is not None:
            await self.piping.sync(room.room_id, here=True)

    def announce(self, peer: Peer) -> None:
        """What `welcome` says of the peer changed (media, role, hand): tell presence."""
        if self.cluster is not None:
            info = peer.describe().model_dump(mode="json")
            self.cluster.enter(peer.room_id, peer.participant_id, info, peer.may_admit)
            self.cluster.keep_standing(peer.room_id, peer.user_id, peer.standing.dump())

    async def departed(self, room: LiveRoom, peer: Peer) -> None:
        if self.cluster is not None:
            self.cluster.leave(room.room_id, peer.participant_id)
            if not self.keeps(room.room_id) and not room.waiting:
                await self.cluster.unfollow(room.room_id)
        if self.piping is not None:
            await self.piping.left(room.room_id, peer.participant_id)
            if not self.keeps(room.room_id):
                await self.piping.sync(room.room_id, here=False)

    def keeps(self, room_id: str) -> bool:
        """Whether this worker takes part in the meeting: people here, or recording it."""
        room = self.rooms.get(room_id)
        return bool(room and room.peers) or room_id in self.recorded

    async def record(self, room_id: str, recording: bool) -> None:
        """This worker starts (or stopped) recording the meeting: while it records it
        follows the meeting's events and receives every publication of the other workers,
        even once its own people have all left."""
        if recording:
            self.recorded.add(room_id)
        else:
            self.recorded.discard(room_id)
        here = self.keeps(room_id)
        if self.cluster is not None:
            await (self.cluster.follow(room_id) if here else self.cluster.unfollow(room_id))
        if self.piping is not None:
            await self.piping.sync(room_id, here=here)

    def broadcast(self, room_id: str, event: ServerEvent) -> None:
        """To everyone in the meeting, on every worker, whether or not this one holds
        anyone there (a recording worker whose people have left)."""
        room = self.rooms.get(room_id)
        if room is not None:
            room.broadcast(event)
        elif self.cluster is not None:
            self.cluster.publish(room_id, event.dump(), "all")

    async def published(self, room_id: str, participant_id: str, sources: set[Source]) -> None:
        """After an offer: what the participant publishes now (for the other workers)."""
        if self.piping is not None:
            await self.piping.published(room_id, participant_id, sources)

    def _resync(self, room_id: str) -> None:
        """Pipes to match the meeting's publications again (in the background, in order)."""
        if self.piping is None:
            return
        task = asyncio.ensure_future(self.piping.sync(room_id, here=self.keeps(room_id)))
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    async def waiting_here(self, room: LiveRoom) -> None:
        """Someone waits on this worker: relay the meeting's events (its end, who comes and
        goes) and know whether someone who may let them in is inside elsewhere."""
        if self.cluster is not None:
            await self.cluster.follow(room.room_id)
            room.admitters_elsewhere = await self.cluster.admitters_elsewhere(room.room_id)

    def _recount_admitters(self, room_id: str, besides: str | None = None) -> None:
        """Presence changed elsewhere: tell this worker's waiting people whether someone
        who may let them in is inside now (in the background)."""
        room = self.rooms.get(room_id)
        if self.cluster is None or room is None or not room.waiting:
            return
        cluster = self.cluster

        async def recount() -> None:
            present = await cluster.admitters_elsewhere(room_id, besides)
            was_present = room.host_present
            room.admitters_elsewhere = present
            room.refresh_waiting(was_present)

        task = asyncio.ensure_future(recount())
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    async def remote_people(self, room_id: str) -> list[ParticipantInfo]:
        """Who the other workers hold in the meeting (empty without a cluster)."""
        return [info for _, info in await self.elsewhere(room_id)]

    async def elsewhere(self, room_id: str) -> list[tuple[str, ParticipantInfo]]:
        """Who the other workers hold in the meeting, with the worker holding each."""
        if self.cluster is None:
            return []
        return [
            (worker, ParticipantInfo.model_validate(info))
            for worker, info in await self.cluster.elsewhere(room_id)
        ]

    async def whereabouts(
        self, room_id: str, participant_id: str
    ) -> tuple[str, ParticipantInfo] | None:
        """The other worker that holds this participant (None: nobody, or no cluster)."""
        found = await self.cluster.whereabouts(room_id, participant_id) if self.cluster else None
        return None if found is None else (found[0], ParticipantInfo.model_validate(found[1]))

    def tell(self, worker_id: str, room_id: str, command: dict[str, Any]) -> None:
        if self.cluster is not None:
            self.cluster.tell(worker_id, room_id, command)

    def _commanded(self, room_id: str, command: dict[str, Any]) -> None:
        if self.piping is not None and command.get("act") in ("pipe", "unpipe"):
            self.piping.command(room_id, command)
            return
        if self.on_command is None:
            return
        task = asyncio.ensure_future(self.on_command(room_id, command))
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    def _relayed(self, room_id: str, event: dict[str, Any], audience: Audience) -> None:
        """An event another worker broadcast in a meeting this worker has people in."""
        if audience == "workers":
            if event.get("type") == MEDIA_CHANGED:
                self._resync(room_id)
            return
        room = self.rooms.get(room_id)
        if room is None:
            return
        room.deliver(event, audience)
        match event.get("type"):
            case "participant-joined":
                self._recount_admitters(room_id)
            case "participant-left":  # (its presence entry may still be there)
                self._recount_admitters(room_id, besides=str(event.get("participant_id")))
            case "meeting-ended":  # every worker sends its own people away
                self._send_away(room, str(event.get("reason", "the meeting has ended")))
            case "role-changed":  # decided on another worker about someone held here
                peer = room.peers.get(str(event.get("participant_id")))
                if peer is not None and event.get("role") in ("host", "moderator", "participant"):
                    was_present = room.host_present
                    peer.role = str(event["role"])
                    self.announce(peer)
                    room.refresh_waiting(was_present)
                else:
                    self._recount_admitters(room_id)
            case "meeting-updated":
                if isinstance(event.get("host_id"), int):
                    room.host_id = event["host_id"]
                settings = event.get("settings")
                if isinstance(settings, dict) and isinstance(settings.get("enable_chat"), bool):
                    room.enable_chat = settings["enable_chat"]

    def _worker_lost(self, room_id: str, worker_id: str, participant_ids: list[str]) -> None:
        if self.piping is not None:
            self.piping.worker_lost(worker_id)
            self._resync(room_id)
        room = self.rooms.get(room_id)
        for participant_id in participant_ids if room else []:
            assert room is not None
            left = ParticipantLeft(participant_id=participant_id, reason=LeaveReason.DISCONNECTED)
            room.deliver(left.dump(), "all")
        self._recount_admitters(room_id)

    def standing(self, room_id: str, user_id: int) -> Standing:
        """The person's standing in the meeting, the same object for all their connections."""
        return self._standings.setdefault((room_id, user_id), Standing())

    async def recall_standing(self, room_id: str, user_id: int) -> Standing:
        """`standing`, for a connection being seated: with workers, as the last worker that
        held the person left it (a reconnect elsewhere stays muted, keeps its hand up),
        unless this worker holds them already (then its own is the current one)."""
        standing = self.standing(room_id, user_id)
        room = self.rooms.get(room_id)
        if self.cluster is None or (room is not None and room.peer_of_user(user_id)):
            return standing
        kept = await self.cluster.standing(room_id, user_id)
        if kept is not None:
            standing.load(kept)
        return standing

    def room(self, room_id: str, meeting_id: int, host_id: int, enable_chat: bool) -> LiveRoom:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = LiveRoom(room_id, meeting_id, host_id, enable_chat)
            room.relay = self.cluster.publish if self.cluster is not None else None
        room.enable_chat = enable_chat
        room.host_id = host_id
        return room

    def forget_if_empty(self, room_id: str) -> None:
        room = self.rooms.get(room_id)
        if room is not None and not room.peers and not room.waiting:
            del self.rooms[room_id]
            if self.cluster is not None:
                task = asyncio.ensure_future(self._unfollow_if_gone(room_id))
                self._syncs.add(task)
                task.add_done_callback(self._syncs.discard)

    async def _unfollow_if_gone(self, room_id: str) -> None:
        """(Checked when it runs: someone may have come back meanwhile.)"""
        if self.cluster is not None and not self.keeps(room_id) and room_id not in self.rooms:
            await self.cluster.unfollow(room_id)

    def end(self, room_id: str, reason: str) -> None:
        """Tell everyone the meeting ended, then disconnect them (their sessions close
        their media)."""
        self._standings = {k: v for k, v in self._standings.items() if k[0] != room_id}
        if self.cluster is not None:
            self.cluster.forget_standings(room_id)
        room = self.rooms.get(room_id)
        if room is None:
            return
        room.broadcast(MeetingEnded(reason=reason))
        self._send_away(room, reason)

    @staticmethod
    def _send_away(room: LiveRoom, reason: str) -> None:
        """The meeting ended: close every socket of this worker's people, waiting ones too."""
        for peer in list(room.peers.values()):
            peer.close(CloseCode.MEETING_ENDED, LeaveReason.MEETING_ENDED)
        for waiter in list(room.waiting.values()):
            waiter.send(MeetingEnded(reason=reason))
            waiter.decide("ended")

    def send_everyone_away(self) -> None:
        """The server is stopping: tell every client to `reconnect` and close its socket
        with 1001, so it connects again at once (to another worker or node, or to this
        server once it is back)."""
        told = Reconnect(reason="this server is going away: connect again")
        for room in list(self.rooms.values()):
            for peer in list(room.peers.values()):
                peer.send(told)
                peer.close(CloseCode.GOING_AWAY, LeaveReason.SERVER_SHUTDOWN)
            for waiter in list(room.waiting.values()):
                waiter.send(told)
                waiter.decide("going-away")
