"""One participant's signaling session: handshake, reading, dispatch, and clean leaving.

Reading and handling are separate tasks: the reader keeps answering keep-alives and
enforcing limits while a slow negotiation is handled, and handlers run strictly in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from sfu import NegotiationError
from signaling.addresses import client_address
from signaling.auth import user_for_token
from signaling.errors import ApiError, parse_json
from signaling.events import chat_event
from signaling.identifiers import is_room_id
from signaling.keys import DATABASE, HANDSHAKES, LIVE, RECORDINGS, SETTINGS
from signaling.live import LiveRoom, MediaFlags, Peer
from signaling.media_config import client_ice_servers
from signaling.protocol import (
    CHAT_HISTORY,
    CHAT_MAX_CHARS,
    CLIENT_MESSAGE,
    CLIENT_TYPES,
    HELLO_TIMEOUT_SECONDS,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Chat,
    ClientMessage,
    CloseCode,
    EndMeeting,
    ErrorCode,
    Hello,
    Leave,
    LeaveReason,
    MediaState,
    Offer,
    Ping,
    StartRecording,
    StopRecording,
    error_event,
)
from signaling.ratelimit import TokenBucket
from signaling.recording_control import RecordingRefused
from storage import chat, meetings, users

log = logging.getLogger(__name__)

MESSAGES_PER_SECOND = 20
MESSAGE_BURST = 60
FLOOD_STRIKES = 100  # rate-limited messages before the connection is closed
HEARTBEAT_SECONDS = 5.0  # a client missing a pong for half of this is disconnected


class Refused(Exception):
    """The handshake failed: send this error event, then close with this code."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code, self.code, self.message = close_code, code, message


async def meeting_socket(request: web.Request) -> web.WebSocketResponse:
    """GET /api/meetings/{room_id}/ws — the signaling WebSocket (see docs/protocol.md).

    Before the upgrade: the page's `Origin` must be one of ours (403), and one address may
    hold only so many sockets that have not said hello yet (429). After it, `hello` must
    arrive within HELLO_TIMEOUT_SECONDS of the upgrade, however many pings are answered.
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
            session = await _handshake(request, ws, request.match_info["room_id"])
        except Refused as refused:
            log.info("signaling refused: %s (%s)", refused.code, refused.message)
            await _send_quietly(ws, error_event(refused.code, refused.message))
            await ws.close(code=refused.close_code, message=refused.code.encode())
            return ws
        except Exception:
            # never an HTTP 500 written into the upgraded stream: a close frame says it
            log.exception("signaling handshake failed")
            await ws.close(code=CloseCode.SERVER_ERROR, message=LeaveReason.SERVER_ERROR.encode())
            return ws
    finally:
        app[HANDSHAKES].leave(address)
    await session.run()
    return ws


async def _send_quietly(ws: web.WebSocketResponse, event: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json(event)


async def _first_message(ws: web.WebSocketResponse) -> Hello:
    """The `hello`, within an absolute deadline (each answered ping would re-arm a plain
    receive timeout)."""
    try:
        async with asyncio.timeout(HELLO_TIMEOUT_SECONDS):
            msg = await ws.receive()
    except TimeoutError:
        raise Refused(
            CloseCode.HANDSHAKE_TIMEOUT, ErrorCode.NOT_AUTHENTICATED, "send hello first"
        ) from None
    if msg.type != WSMsgType.TEXT:
        raise Refused(CloseCode.PROTOCOL, ErrorCode.NOT_AUTHENTICATED, "send hello first")
    try:
        data = parse_json(msg.data)
    except ValueError:
        raise Refused(CloseCode.PROTOCOL, ErrorCode.MALFORMED_JSON, "not JSON") from None
    if not isinstance(data, dict) or data.get("type") != "hello":
        raise Refused(
            CloseCode.PROTOCOL, ErrorCode.NOT_AUTHENTICATED, "the first message must be hello"
        )
    if data.get("version") != PROTOCOL_VERSION:
        raise Refused(
            CloseCode.PROTOCOL,
            ErrorCode.UNSUPPORTED_VERSION,
            f"this server speaks protocol version {PROTOCOL_VERSION}",
        )
    if data.get("token") in (None, ""):
        raise Refused(
            CloseCode.UNAUTHORIZED, ErrorCode.MISSING_TOKEN, "hello needs the sign-in token"
        )
    try:
        return Hello.model_validate(data)
    except ValidationError as exc:
        raise Refused(
            CloseCode.PROTOCOL, ErrorCode.INVALID_MESSAGE, _validation_message(exc)
        ) from None


async def _handshake(request: web.Request, ws: web.WebSocketResponse, room_id: str) -> Session:
    hello = await _first_message(ws)
    app = request.app
    try:
        user = await user_for_token(app, hello.token)
    except ApiError as exc:
        close = CloseCode.FORBIDDEN if exc.status == 403 else CloseCode.UNAUTHORIZED
        raise Refused(close, exc.code, exc.message) from None
    if not is_room_id(room_id):
        raise Refused(CloseCode.NOT_FOUND, "meeting-not-found", "no meeting has this id")
    async with app[DATABASE].session() as db:
        meeting = await meetings.get_meeting(db, room_id)
        if meeting is None:
            raise Refused(CloseCode.NOT_FOUND, "meeting-not-found", "no meeting has this id")
        try:
            joined = await meetings.join_meeting(db, room_id, user.id)
        except meetings.MeetingEnded:
            raise Refused(CloseCode.CONFLICT, "meeting-ended", "this meeting has ended") from None
        except meetings.MeetingFull:
            raise Refused(CloseCode.CONFLICT, "meeting-full", "this meeting is full") from None
        history = await chat.recent_messages(db, joined.meeting.id, CHAT_HISTORY)
        meeting = joined.meeting
        history_events = [chat_event(m) for m in history]
    live = app[LIVE]
    room = live.room(room_id, meeting.id, meeting.host_id, meeting.enable_chat)
    previous = room.peer_of_user(user.id)
    if previous is not None:
        previous.close(CloseCode.REPLACED, LeaveReason.REPLACED)
        room.detach(previous)
    peer = Peer(
        room_id=room_id,
        user_id=user.id,
        display_name=user.display_name,
        role=joined.participation.role,
        participation_id=joined.participation.id,
        ws=ws,
    )
    room.peers[peer.participant_id] = peer
    await live.media.join(room_id, peer.participant_id, peer)
    others = [p.describe() for p in room.peers.values() if p is not peer]
    peer.send(
        {
            "type": "welcome",
            "protocol_version": PROTOCOL_VERSION,
            "participant_id": peer.participant_id,
            "you": peer.describe(),
            "meeting": {
                "room_id": room_id,
                "title": meeting.title,
                "host_id": meeting.host_id,
                "settings": {
                    "max_participants": meeting.max_participants,
                    "enable_chat": meeting.enable_chat,
                    "enable_recording": meeting.enable_recording,
                    "require_approval": meeting.require_approval,
                },
            },
            "participants": others,
            "chat": history_events,
            "recording": app[RECORDINGS].state(room_id),
            "ice_servers": client_ice_servers(app[SETTINGS]),
            "limits": {"max_message_bytes": MAX_MESSAGE_BYTES, "chat_max_chars": CHAT_MAX_CHARS},
        }
    )
    room.broadcast(
        {"type": "participant-joined", "participant": peer.describe()}, skip=peer.participant_id
    )
    log.info("participant %s (user %s) joined %s", peer.participant_id, user.id, room_id)
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

    def _error(self, code: str, message: str, ref: str | None = None) -> None:
        self.peer.send(error_event(code, message, ref))

    async def _handle(self) -> None:
        while True:
            message = await self.inbox.get()
            try:
                await self._dispatch(message)
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
            case MediaState():
                await self._media_state(message)
            case Chat():
                await self._chat(message)
            case Ping():
                self.peer.send({"type": "pong", "ref": message.id})
            case EndMeeting():
                await self._end_meeting(message)
            case Leave():
                self.peer.close(CloseCode.NORMAL, LeaveReason.LEFT)
            case StartRecording() | StopRecording():
                await self._recording(message)

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
        self.peer.send({"type": "answer", "sdp": sdp, "ref": offer.id})

    async def _media_state(self, state: MediaState) -> None:
        if state.participant_id not in (None, self.peer.participant_id):
            self._error(
                ErrorCode.NOT_YOUR_PARTICIPANT, "you can only change your own media state", state.id
            )
            return
        flags = MediaFlags(state.microphone, state.camera, state.screen)
        self.peer.media = flags
        async with self.app[DATABASE].session() as db:
            await meetings.set_media_state(db, self.peer.participation_id, **asdict(flags))
        self.room.broadcast(
            {"type": "media-state", "participant_id": self.peer.participant_id, **asdict(flags)}
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
            event = chat_event(stored)
        self.room.broadcast({"type": "chat", "message": event, "ref": message.id})

    async def _end_meeting(self, message: EndMeeting) -> None:
        if self.peer.user_id != self.room.host_id:
            self._error(ErrorCode.NOT_HOST, "only the host can end the meeting", message.id)
            return
        async with self.app[DATABASE].session() as db:
            meeting = await meetings.get_meeting(db, self.room.room_id)
            if meeting is not None and meeting.status != "ended":
                await meetings.end_meeting(db, meeting)
        await self.app[LIVE].meeting_ended(self.room.room_id)

    async def _recording(self, message: StartRecording | StopRecording) -> None:
        control = self.app[RECORDINGS]
        async with self.app[DATABASE].session() as db:
            user = await users.get_user(db, self.peer.user_id)
        assert user is not None
        try:
            if isinstance(message, StartRecording):
                await control.start(self.room.room_id, user)
            else:
                await control.stop_by(self.room.room_id, user)
        except RecordingRefused as refused:
            self._error(refused.code, refused.message, message.id)

    async def _leave(self) -> None:
        """Remove the participant everywhere: media, room, database; then close the socket."""
        peer, room, live = self.peer, self.room, self.app[LIVE]
        room.detach(peer)
        try:
            await live.media.leave(room.room_id, peer.participant_id)
        finally:
            await live.release(room.room_id)
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
