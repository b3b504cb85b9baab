"""One participant's signaling session: the socket, the handshake, reading, dispatch, leaving.

Reading and handling are separate tasks: the reader keeps answering keep-alives and
enforcing limits while a slow negotiation is handled, and handlers run strictly in order.
Rules about meetings are not decided here but in `signaling.meetings` (admission, ending),
`signaling.recordings.control` and `signaling.permissions`, the same code the REST API uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from sfu import MAX_LAST_N, NegotiationError, ReceivePolicy
from signaling import logs
from signaling.addresses import client_address
from signaling.audit import Actor
from signaling.auth import user_for_token
from signaling.errors import ApiError, parse_json
from signaling.keys import (
    AUDIT,
    DATABASE,
    HANDSHAKES,
    LIVE,
    MEETINGS,
    MODERATION,
    RECORDINGS,
    SETTINGS,
    WAITING_ROOM,
)
from signaling.media_config import client_ice_servers
from signaling.meetings import Seat, Wait, settings_info
from storage import chat, meetings, users
from storage.models import Meeting

from .events import (
    Ack,
    Answer,
    ChatMessageOut,
    ChatPosted,
    Denied,
    ErrorEvent,
    Limits,
    Media,
    MediaStateChanged,
    MeetingInfo,
    ParticipantInfo,
    ParticipantJoined,
    Pong,
    Reconnect,
    ServerEvent,
    Speakers,
    Welcome,
)
from .limits import TokenBucket
from .live import LiveRoom, Peer, Waiter
from .messages import (
    CLIENT_MESSAGE,
    CLIENT_TYPES,
    AnswerApplied,
    Chat,
    ClientMessage,
    EndMeeting,
    Hand,
    Hello,
    Leave,
    MediaState,
    Offer,
    Ping,
    Receive,
    StartRecording,
    StopRecording,
)
from .moderating import MODERATION_MESSAGES, moderate
from .protocol import (
    CHAT_HISTORY,
    CHAT_MAX_CHARS,
    HELLO_TIMEOUT_SECONDS,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    CloseCode,
    ErrorCode,
    LeaveReason,
)

log = logging.getLogger(__name__)

MESSAGES_PER_SECOND = 20
MESSAGE_BURST = 60
FLOOD_STRIKES = 100  # rate-limited messages before the connection is closed
HEARTBEAT_SECONDS = 5.0  # a client missing a pong for half of this is disconnected


async def meeting_socket(request: web.Request) -> web.WebSocketResponse:
    """GET /api/meetings/{room_id}/ws — the signaling WebSocket (see docs/protocol.md).

    Before the upgrade: the page's `Origin` must be one of ours (403), and one address may
    hold only so many sockets that have not said hello yet (429). After it, `hello` must
    arrive within HELLO_TIMEOUT_SECONDS of the upgrade, however many pings are answered. A
    refused handshake gets an `error` event and close code 4000 + the refusal's HTTP status.
    """
    app = request.app
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in app[SETTINGS].origins:
        raise ApiError(403, "origin-not-allowed", "pages of this origin may not join meetings")
    address = client_address(request, app[SETTINGS].trusted_proxies)
    if not app[HANDSHAKES].enter(address):
        raise ApiError(429, "too-many-connections", "too many connections are waiting to say hello")
    try:
        ws = web.WebSocketResponse(
            heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_MESSAGE_BYTES, autoping=True
        )
        await ws.prepare(request)
        try:
            session = await _join(app, ws, request.match_info["room_id"], address)
        except _SentAway as gone:
            await ws.close(code=gone.code, message=gone.reason.encode())
            return ws
        except ApiError as refused:
            log.info("signaling refused: %s (%s)", refused.code, refused.message)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json(ErrorEvent(code=refused.code, message=refused.message).dump())
            await ws.close(code=4000 + refused.status, message=refused.code.encode())
            return ws
        except Exception:
            # never an HTTP 500 written into the upgraded stream: a close frame says it
            log.exception("signaling handshake failed")
            await ws.close(code=CloseCode.SERVER_ERROR, message=LeaveReason.SERVER_ERROR.encode())
            return ws
    finally:
        app[HANDSHAKES].leave(address)
    app[LIVE].sessions += 1  # until the socket is closed (a draining worker waits for it)
    try:
        await session.run()
    finally:
        app[LIVE].sessions -= 1
    return ws


async def _hello(ws: web.WebSocketResponse) -> Hello:
    """The `hello`, within an absolute deadline (each answered ping would re-arm a plain
    receive timeout). Refusals: 400 (close 4400), 401 without a token, 408 when late."""
    try:
        async with asyncio.timeout(HELLO_TIMEOUT_SECONDS):
            msg = await ws.receive()
    except TimeoutError:
        raise ApiError(408, ErrorCode.NOT_AUTHENTICATED, "send hello first") from None
    if msg.type != WSMsgType.TEXT:
        raise ApiError(400, ErrorCode.NOT_AUTHENTICATED, "send hello first")
    try:
        data = parse_json(msg.data)
    except ValueError:
        raise ApiError(400, ErrorCode.MALFORMED_JSON, "not JSON") from None
    if not isinstance(data, dict) or data.get("type") != "hello":
        raise ApiError(400, ErrorCode.NOT_AUTHENTICATED, "the first message must be hello")
    if data.get("version") != PROTOCOL_VERSION:
        raise ApiError(
            400,
            ErrorCode.UNSUPPORTED_VERSION,
            f"this server speaks protocol version {PROTOCOL_VERSION}",
        )
    if data.get("token") in (None, ""):
        raise ApiError(401, ErrorCode.MISSING_TOKEN, "hello needs the sign-in token")
    try:
        return Hello.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, ErrorCode.INVALID_MESSAGE, _validation_message(exc)) from None


class _SentAway(Exception):
    """The socket ends before admission (denied, replaced, the meeting ended, left)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


async def _join(
    app: web.Application, ws: web.WebSocketResponse, room_id: str, address: str
) -> Session:
    """Authenticate, admit (or hold in the waiting room until a moderator decides), take
    the person's place in the room (replacing an older connection of theirs), and send
    `welcome` to them and `participant-joined` to the rest."""
    hello = await _hello(ws)
    if app[LIVE].draining:  # this worker is leaving (signaling.drain): another one seats you
        raise ApiError(503, ErrorCode.SERVER_DRAINING, "this server is going away: connect again")
    actor = Actor(await user_for_token(app, hello.token, address), address)
    admission = await app[MEETINGS].admit(room_id, actor)
    while isinstance(admission, Wait):
        await _wait(app, ws, admission.meeting, actor)
        admission = await app[MEETINGS].admit(room_id, actor)
    return await _seat(app, ws, admission, actor)


async def _wait(
    app: web.Application, ws: web.WebSocketResponse, meeting: Meeting, actor: Actor
) -> None:
    """Hold the person in the waiting room: their socket gets `waiting` (again whenever
    someone who can admit comes or goes) and nothing else; it may only `ping` or `leave`.
    Returns once admitted; raises `_SentAway` for every other end."""
    room, waiter = await app[WAITING_ROOM].knock(meeting, actor)
    reader = asyncio.create_task(_read_while_waiting(app, ws, waiter, actor, meeting.room_id))
    try:
        while not isinstance(item := await waiter.outbox.get(), str):
            await ws.send_json(item.dump())
    except (ConnectionError, RuntimeError):
        item = "left"
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        app[WAITING_ROOM].withdraw(room, waiter)
    match item:
        case "admitted":
            return
        case "denied":
            retry = app[SETTINGS].knock_retry_seconds
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json(
                    Denied(reason="a moderator did not let you in", retry_after=retry).dump()
                )
            raise _SentAway(CloseCode.DENIED, LeaveReason.DENIED)
        case "ended":
            raise _SentAway(CloseCode.MEETING_ENDED, LeaveReason.MEETING_ENDED)
        case "replaced":
            raise _SentAway(CloseCode.REPLACED, LeaveReason.REPLACED)
        case "going-away":
            raise _SentAway(CloseCode.GOING_AWAY, LeaveReason.SERVER_SHUTDOWN)
        case "flood":
            raise _SentAway(CloseCode.FLOOD, LeaveReason.FLOOD)
        case _:
            raise _SentAway(CloseCode.NORMAL, LeaveReason.LEFT)


async def _read_while_waiting(
    app: web.Application, ws: web.WebSocketResponse, waiter: Waiter, actor: Actor, room_id: str
) -> None:
    """While waiting: `ping` is answered, `leave` ends the wait, anything else is refused
    (`not-admitted`; the first refusal of each type is audited). The same rate limit holds."""
    bucket, strikes = TokenBucket(MESSAGES_PER_SECOND, MESSAGE_BURST), 0
    refused: set[str] = set()
    try:
        async for msg in ws:
            if not bucket.take():
                strikes += 1
                if strikes >= FLOOD_STRIKES:
                    waiter.decide("flood")
                continue
            data = None
            if msg.type == WSMsgType.TEXT:
                with contextlib.suppress(ValueError):
                    data = parse_json(msg.data)
            kind = data.get("type") if isinstance(data, dict) else None
            ref = data.get("id") if isinstance(data, dict) else None
            ref = ref if isinstance(ref, str) and len(ref) <= 64 else None
            if kind == "ping":
                waiter.send(Pong(ref=ref))
            elif kind == "leave":
                waiter.decide("left")
            else:
                waiter.send(
                    ErrorEvent(
                        code=ErrorCode.NOT_ADMITTED,
                        message="you are in the waiting room: wait until you are let in",
                        ref=ref,
                    )
                )
                what = str(kind)[:40] if isinstance(kind, str) else "?"
                if what not in refused and len(refused) < 32:
                    refused.add(what)
                    await app[AUDIT].record(
                        actor,
                        "waiting-room-bypass",
                        outcome="refused",
                        room_id=room_id,
                        detail=f"sent {what!r} before admission",
                    )
    finally:
        waiter.decide("left")


async def _seat(
    app: web.Application, ws: web.WebSocketResponse, seat: Seat, actor: Actor
) -> Session:
    user, meeting = actor.user, seat.joined.meeting
    room_id = meeting.room_id
    async with app[DATABASE].session() as db:
        history = await chat.recent_messages(db, meeting.id, CHAT_HISTORY)
        chat_history = [ChatMessageOut.of(m) for m in history]
    live = app[LIVE]
    standing = await live.recall_standing(room_id, user.id)
    room = live.room(room_id, meeting.id, meeting.host_id, meeting.enable_chat)
    room.title, room.may_be_recorded = meeting.title, meeting.enable_recording
    previous = room.peer_of_user(user.id)
    if previous is not None:
        previous.close(CloseCode.REPLACED, LeaveReason.REPLACED)
        room.detach(previous)
    peer = Peer(
        room_id=room_id,
        user_id=user.id,
        display_name=user.display_name,
        role=seat.role,
        participation_id=seat.joined.participation.id,
        ws=ws,
        is_admin=user.role == "admin",
        address=actor.address,
        standing=standing,
    )
    was_present = room.host_present
    room.peers[peer.participant_id] = peer
    await live.entered(room, peer)
    await live.media.join(room_id, peer.participant_id, peer)
    if peer.standing.blocked:  # muted by a moderator before this connection
        live.media.block(room_id, peer.participant_id, frozenset(peer.standing.blocked))
    speakers = live.media.speakers(room_id)
    elsewhere: list[ParticipantInfo] = []
    for worker, info in await live.elsewhere(room_id):
        if info.user_id == user.id:  # their older connection, on another worker: replaced
            live.tell(worker, room_id, {"act": "replace", "participant_id": info.participant_id})
        else:
            elsewhere.append(info)
    peer.welcome(
        Welcome(
            participant_id=peer.participant_id,
            you=peer.describe(),
            meeting=MeetingInfo(
                room_id=room_id,
                title=meeting.title,
                host_id=meeting.host_id,
                settings=settings_info(meeting),
            ),
            participants=[p.describe() for p in room.peers.values() if p is not peer] + elsewhere,
            chat=chat_history,
            recording=await app[RECORDINGS].state(room_id),
            speakers=Speakers(participant_id=speakers.dominant, recent=list(speakers.recent)),
            ice_servers=client_ice_servers(app[SETTINGS], user.id),
            limits=Limits(
                max_message_bytes=MAX_MESSAGE_BYTES,
                chat_max_chars=CHAT_MAX_CHARS,
                max_last_n=MAX_LAST_N,
                audio_streams=app[SETTINGS].audio_streams,
            ),
            waiting=await app[WAITING_ROOM].queue(room_id) if peer.may_admit else [],
        )
    )
    room.broadcast(ParticipantJoined(participant=peer.describe()), skip=peer.participant_id)
    room.refresh_waiting(was_present)
    log.info("participant %s (user %s) joined %s", peer.participant_id, user.id, room_id)
    if live.draining:  # seated while the worker began to drain: sent on like everyone else
        peer.send(Reconnect(reason="this server is going away: connect again"))
        peer.close(CloseCode.GOING_AWAY, LeaveReason.SERVER_SHUTDOWN)
    return Session(app, room, peer)


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


class Session:
    def __init__(self, app: web.Application, room: LiveRoom, peer: Peer) -> None:
        self.app = app
        self.room = room
        self.peer = peer
        self.bucket = TokenBucket(MESSAGES_PER_SECOND, MESSAGE_BURST)
        self.strikes = 0
        self.inbox: asyncio.Queue[ClientMessage] = asyncio.Queue()

    async def run(self) -> None:
        logs.bind(room_id=self.room.room_id, participant_id=self.peer.participant_id)
        reader = asyncio.create_task(self._read(), name=f"ws-reader-{self.peer.participant_id}")
        handler = asyncio.create_task(self._handle(), name=f"ws-handler-{self.peer.participant_id}")
        try:
            await self.peer.closing.wait()
        finally:
            for task in (reader, handler):
                task.cancel()
            await asyncio.gather(reader, handler, return_exceptions=True)
            await asyncio.shield(self._leave())

    async def _read(self) -> None:
        ws = self.peer.ws
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._accept(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._error(ErrorCode.INVALID_MESSAGE, "send JSON text messages")
                if self.peer.closing.is_set():
                    return
        finally:
            if ws.close_code == CloseCode.MESSAGE_TOO_BIG:
                self.peer.close(CloseCode.MESSAGE_TOO_BIG, LeaveReason.MESSAGE_TOO_LARGE)
            elif isinstance(ws.exception(), TimeoutError):  # aiohttp: no pong in time
                self.peer.close(CloseCode.ABNORMAL, LeaveReason.TIMED_OUT)
            self.peer.close(ws.close_code or CloseCode.ABNORMAL, LeaveReason.DISCONNECTED)

    def _accept(self, raw: str) -> None:
        """Rate-limit and validate one message; valid ones go to the handler, in order."""
        if not self.bucket.take():
            self.strikes += 1
            if self.strikes >= FLOOD_STRIKES:
                self.peer.close(CloseCode.FLOOD, LeaveReason.FLOOD)
            elif self.strikes % 10 == 1:
                self._error(ErrorCode.RATE_LIMITED, "slow down: messages are being dropped")
            return
        try:
            data = parse_json(raw)
        except ValueError:
            self._error(ErrorCode.MALFORMED_JSON, "the message is not valid JSON")
            return
        ref = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self._error(ErrorCode.INVALID_MESSAGE, "a message is a JSON object with a type", ref)
        elif data["type"] not in CLIENT_TYPES:
            self._error(ErrorCode.UNKNOWN_TYPE, f"unknown message type {data['type'][:40]!r}", ref)
        elif data["type"] == "hello":
            self._error(ErrorCode.ALREADY_AUTHENTICATED, "hello was already accepted", ref)
        else:
            try:
                self.inbox.put_nowait(CLIENT_MESSAGE.validate_python(data))
            except ValidationError as exc:
                self._error(ErrorCode.INVALID_MESSAGE, _validation_message(exc), ref)

    def _send(self, event: ServerEvent) -> None:
        self.peer.send(event)

    def _error(self, code: str, message: str, ref: str | None = None) -> None:
        self._send(ErrorEvent(code=code, message=message, ref=ref))

    async def _handle(self) -> None:
        while True:
            message = await self.inbox.get()
            try:
                await self._dispatch(message)
            except ApiError as refused:  # the same refusals the REST API gives
                self._error(refused.code, refused.message, message.id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "error handling %s from %s", type(message).__name__, self.peer.participant_id
                )
                self._error(
                    "internal-error", "the server could not handle that message", message.id
                )

    async def _dispatch(self, message: ClientMessage) -> None:
        match message:
            case Offer():
                await self._offer(message)
            case AnswerApplied():
                self.app[LIVE].media.answer_applied(self.room.room_id, self.peer.participant_id)
            case MediaState():
                await self._media_state(message)
            case Receive():
                self._receive(message)
            case Chat():
                await self._chat(message)
            case Ping():
                self._send(Pong(ref=message.id))
            case EndMeeting():
                await self.app[MEETINGS].end(self.room.room_id, await self._actor())
            case Leave():
                self.peer.close(CloseCode.NORMAL, LeaveReason.LEFT)
            case StartRecording():
                actor = await self._actor()
                await self.app[RECORDINGS].start(self.room.room_id, actor.user, actor.address)
            case StopRecording():
                actor = await self._actor()
                await self.app[RECORDINGS].stop_by(self.room.room_id, actor.user, actor.address)
            case Hand():
                await self.app[MODERATION].hand(
                    self.room.room_id,
                    await self._actor(),
                    self.peer,
                    message.raised,
                    message.participant_id,
                )
                self._send(Ack(ref=message.id))
            case _ if isinstance(message, MODERATION_MESSAGES):
                await moderate(self.app, self.room.room_id, await self._actor(), message)
                self._send(Ack(ref=message.id))

    async def _actor(self) -> Actor:
        """The account as it is now (an admin may have changed it since the handshake)."""
        async with self.app[DATABASE].session() as db:
            user = await users.get_user(db, self.peer.user_id)
        if user is None or not user.is_active:
            raise ApiError(403, "account-disabled", "this account is disabled")
        self.peer.is_admin = user.role == "admin"
        return Actor(user, self.peer.address)

    async def _offer(self, offer: Offer) -> None:
        media = self.app[LIVE].media
        try:
            sdp = await media.negotiate(
                self.room.room_id, self.peer.participant_id, offer.sdp, offer.tracks
            )
        except NegotiationError as exc:
            self._error(exc.code, exc.message, offer.id)
            return
        except Exception:
            # The offer was valid but aiortc failed applying it: the peer connection may be
            # half-updated, so end this session; the client reconnects with a fresh one.
            log.exception("negotiation failed for %s", self.peer.participant_id)
            self._error(ErrorCode.MEDIA_FAILED, "the server could not apply the offer", offer.id)
            self.peer.close(CloseCode.MEDIA_FAILED, LeaveReason.MEDIA_FAILED)
            return
        self._send(Answer(sdp=sdp, ref=offer.id))
        await self.app[LIVE].published(
            self.room.room_id, self.peer.participant_id, set(offer.tracks.values())
        )

    def _receive(self, message: Receive) -> None:
        self.app[LIVE].media.set_receive(
            self.room.room_id,
            self.peer.participant_id,
            ReceivePolicy(
                last_n=message.last_n,
                visible=None if message.visible is None else tuple(message.visible),
                pinned=tuple(message.pinned),
                on_stage=tuple(message.on_stage),
                max_height=dict(message.max_height),
                default_max_height=message.default_max_height,
                screens=message.screens,
            ),
        )

    async def _media_state(self, state: MediaState) -> None:
        if state.participant_id not in (None, self.peer.participant_id):
            self._error(
                ErrorCode.NOT_YOUR_PARTICIPANT, "you can only change your own media state", state.id
            )
            return
        media = Media(microphone=state.microphone, camera=state.camera, screen=state.screen)
        await self.app[MODERATION].check_media_state(self.room, self.peer, media)
        self.peer.media = media
        async with self.app[DATABASE].session() as db:
            await meetings.set_media_state(db, self.peer.participation_id, **media.model_dump())
        self.app[LIVE].announce(self.peer)
        self.room.broadcast(
            MediaStateChanged(participant_id=self.peer.participant_id, **media.model_dump())
        )

    async def _chat(self, message: Chat) -> None:
        if len(message.text) > CHAT_MAX_CHARS:
            self._error(
                ErrorCode.CHAT_TOO_LONG,
                f"a chat message has at most {CHAT_MAX_CHARS} characters",
                message.id,
            )
            return
        async with self.app[DATABASE].session() as db:
            meeting = await meetings.get_meeting(db, self.room.room_id)
            if meeting is None or not meeting.enable_chat:
                self._error(ErrorCode.CHAT_DISABLED, "chat is off in this meeting", message.id)
                return
            stored = await chat.add_message(
                db, meeting_id=self.room.meeting_id, author_id=self.peer.user_id, text=message.text
            )
            event = ChatPosted(message=ChatMessageOut.of(stored), ref=message.id)
        self.room.broadcast(event)

    async def _leave(self) -> None:
        """Remove the participant everywhere: media, room, database; then close the socket."""
        peer, room, live = self.peer, self.room, self.app[LIVE]
        room.detach(peer)
        await live.departed(room, peer)
        try:
            await live.media.leave(room.room_id, peer.participant_id)
        finally:
            await self.app[MEETINGS].left(room.room_id)
            try:
                async with self.app[DATABASE].session() as db:
                    await meetings.leave_meeting(db, peer.participation_id)
            except Exception:
                log.exception("could not store left_at for %s", peer.participant_id)
            await peer.drain_and_stop_writer()
            await peer.ws.close(code=peer.close_code, message=peer.close_reason[:120].encode())
            log.info(
                "participant %s left %s (%s)", peer.participant_id, room.room_id, peer.close_reason
            )
