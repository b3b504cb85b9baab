"""The signaling half of a client: WebSocket, hello/welcome, requests and events."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

PROTOCOL_VERSION = 1
log = logging.getLogger(__name__)

Event = dict[str, Any]


class SignalingError(Exception):
    """An `error` event in reply to a request, or a refused handshake."""

    def __init__(self, code: str, message: str, close_code: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.close_code = close_code


class SignalingClient:
    """One participant's signaling connection.

    Every event the server sends is appended to `events` and offered to waiters; handlers
    registered with `on(type, callback)` run for each event of that type, in order.
    """

    def __init__(self, base_url: str, room_id: str, token: str) -> None:
        self.url = base_url.rstrip("/").replace("http", "ws", 1) + f"/api/meetings/{room_id}/ws"
        self.token = token
        self.welcome: Event = {}
        self.events: list[Event] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []
        self._handlers: dict[str, list[Callable[[Event], Any]]] = {}
        self._taken: set[int] = set()  # ids of events wait_for already returned

    @property
    def participant_id(self) -> str:
        return str(self.welcome["participant_id"])

    async def connect(self, *, allow_waiting: bool = False) -> Event:
        """Open the socket, authenticate, and return the welcome event — or, with
        `allow_waiting`, the `waiting` event of a meeting's waiting room (then `admitted()`
        waits for the welcome that follows a moderator's decision)."""
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url, heartbeat=None, max_msg_size=0)
        await self._ws.send_json(
            {"type": "hello", "version": PROTOCOL_VERSION, "token": self.token}
        )
        first = await self._ws.receive(timeout=15)
        if first.type != aiohttp.WSMsgType.TEXT:
            await self._fail_handshake(None)
        event = first.json()
        if event.get("type") == "waiting" and allow_waiting:
            self.events.append(event)
            self._reader = asyncio.create_task(self._read())
            return event
        if event.get("type") != "welcome":
            await self._fail_handshake(event)
        self.welcome = event
        self._reader = asyncio.create_task(self._read())
        return event

    async def admitted(self, timeout: float = 15) -> Event:
        """After a `waiting` connect: the welcome, once a moderator let us in."""
        self.welcome = await self.wait_for("welcome", timeout=timeout)
        return self.welcome

    async def _fail_handshake(self, event: Event | None) -> None:
        assert self._ws is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await self._ws.receive(timeout=5)  # the close frame
        close_code = self._ws.close_code
        await self.close()
        code = (event or {}).get("code", "closed")
        raise SignalingError(code, (event or {}).get("message", "handshake failed"), close_code)

    def on(self, event_type: str, callback: Callable[[Event], Any]) -> None:
        self._handlers.setdefault(event_type, []).append(callback)

    async def send(self, message: Event) -> str:
        """Send a message, adding a fresh `id` unless it has one; returns the id."""
        assert self._ws is not None
        message = {"id": f"r{next(self._ids)}", **message}
        await self._ws.send_json(message)
        return str(message["id"])

    async def send_raw(self, data: str | bytes) -> None:
        assert self._ws is not None
        if isinstance(data, bytes):
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data)

    async def request(self, message: Event, reply_type: str, timeout: float = 15) -> Event:
        """Send and wait for the reply (or error) that names this request in `ref`."""
        message = {"id": f"r{next(self._ids)}", **message}
        reply = self._expect(lambda e: e.get("ref") == message["id"])
        await self.send(message)
        event = await asyncio.wait_for(reply, timeout)
        self._taken.add(id(event))
        if event["type"] == "error":
            raise SignalingError(event["code"], event["message"])
        if event["type"] != reply_type:
            raise SignalingError("unexpected-reply", f"expected {reply_type}, got {event['type']}")
        return event

    async def wait_for(
        self,
        event_type: str,
        predicate: Callable[[Event], bool] = lambda e: True,
        timeout: float = 15,
    ) -> Event:
        """The oldest event of this type matching the predicate that no earlier wait_for
        returned: already received, or the next to arrive. Each event is returned once."""

        def wanted(event: Event) -> bool:
            return event["type"] == event_type and id(event) not in self._taken and predicate(event)

        event = next((e for e in self.events if wanted(e)), None)
        if event is None:
            event = await asyncio.wait_for(self._expect(wanted), timeout)
        self._taken.add(id(event))
        return event

    def _expect(self, predicate: Callable[[Event], bool]) -> asyncio.Future[Event]:
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return future

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = msg.json()
                self.events.append(event)
                for predicate, future in list(self._waiters):
                    if not future.done() and predicate(event):
                        future.set_result(event)
                self._waiters = [(p, f) for p, f in self._waiters if not f.done()]
                for handler in self._handlers.get(event.get("type", ""), []):
                    result = handler(event)
                    if asyncio.iscoroutine(result):
                        await result
        finally:
            self.close_code = self._ws.close_code
            self.closed.set()
            for _, future in self._waiters:
                if not future.done():
                    future.set_exception(ConnectionError(f"closed ({self.close_code})"))

    async def wait_closed(self, timeout: float = 15) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._reader
        if self._session is not None:
            await self._session.close()
        self.closed.set()
