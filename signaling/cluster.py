"""This worker's link to the other workers of a deployment, through Redis (docs/scaling.md).

What travels here (the waiting room's queue is `signaling.knocks`, publications and pipes
`signaling.piping`, on this same connection):
- **liveness**: `{prefix}:worker:{id}` exists while the worker lives (a key with a TTL it renews
  every third of the lease); a worker that dies simply stops renewing it;
- **presence**: `{prefix}:room:{room}:people`, a hash of participant id → what `welcome` says
  of them and which worker holds their socket; entries of dead workers are dropped by whoever
  notices first, and their people are announced gone to the local peers;
- **standing**: `{prefix}:room:{room}:standing`, what moderation decided about each person
  (sources held or blocked, a raised hand), so a reconnect to another worker stays muted;
- **events**: `{prefix}:room:{room}` carries every meeting-wide event a worker sends to its own
  peers, so the other workers relay it to theirs. Events are published in the order they were
  broadcast (one publisher task, one queue), and a worker ignores its own.

With no `TERTULIA_REDIS_URL` there is no cluster and no Redis: one process, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import redis.asyncio as aioredis

log = logging.getLogger(__name__)
PUBLISH_QUEUE = 10_000  # events waiting to go out; beyond that Redis is not keeping up
STANDING_TTL_SECONDS = 24 * 3600

Audience = Literal["all", "moderators", "workers"]  # workers: for the workers, not people
RemoteEvent = Callable[[str, dict[str, Any], Audience], None]
WorkerLost = Callable[[str, str, list[str]], None]  # room id, worker id, participant ids
Command = Callable[[str, dict[str, Any]], None]  # room id, what to do (docs/scaling.md)


class Cluster:
    def __init__(
        self,
        url: str,
        worker_id: str,
        *,
        prefix: str = "tertulia",
        lease_seconds: float = 10.0,
    ) -> None:
        self.worker_id = worker_id
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        # Any: redis-py types its commands `Awaitable[T] | T` (one class for sync and async)
        self.redis: Any = aioredis.from_url(url, decode_responses=True)
        self.on_event: RemoteEvent = lambda room_id, event, audience: None
        self.on_worker_lost: WorkerLost = lambda room_id, worker_id, people: None
        self.on_command: Command = lambda room_id, command: None
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self._rooms: set[str] = set()
        # writes to Redis, in the order they were asked for (presence and events alike)
        self._outbox: asyncio.Queue[Callable[[], Awaitable[Any]]] = asyncio.Queue(PUBLISH_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []

    # --- keys -----------------------------------------------------------------------------
    def _worker_key(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def _people_key(self, room_id: str) -> str:
        return f"{self.prefix}:room:{room_id}:people"

    def _standings_key(self, room_id: str) -> str:
        return f"{self.prefix}:room:{room_id}:standing"

    def _channel(self, room_id: str) -> str:
        return f"{self.prefix}:room:{room_id}"

    # --- life -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self._renew()
        # a channel that nobody publishes to, so the listener has a subscription from the start
        await self._pubsub.subscribe(self._worker_key(self.worker_id))
        self._tasks = [
            asyncio.create_task(self._keep_alive(), name="cluster-lease"),
            asyncio.create_task(self._publish(), name="cluster-publish"),
            asyncio.create_task(self._listen(), name="cluster-listen"),
        ]

    async def close(self) -> None:
        """Leave cleanly: our people leave presence and our lease ends at once."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            for room_id in list(self._rooms):
                await self._forget_worker(room_id, self.worker_id)
            await self.redis.delete(self._worker_key(self.worker_id))
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        await self.redis.aclose()

    async def _renew(self) -> None:
        await self.redis.set(
            self._worker_key(self.worker_id), "1", px=int(self.lease_seconds * 1000)
        )

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self._renew()
                for room_id in list(self._rooms):
                    await self.others(room_id)  # notices (and announces) dead workers
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not renew this worker's lease in Redis")

    async def alive(self, worker_id: str) -> bool:
        return worker_id == self.worker_id or bool(
            await self.redis.exists(self._worker_key(worker_id))
        )

    # --- presence -------------------------------------------------------------------------
    async def follow(self, room_id: str) -> None:
        """This worker has people in the meeting: relay its events from now on."""
        if room_id not in self._rooms:
            self._rooms.add(room_id)
            await self._pubsub.subscribe(self._channel(room_id))

    async def unfollow(self, room_id: str) -> None:
        if room_id in self._rooms:
            self._rooms.discard(room_id)
            await self._pubsub.unsubscribe(self._channel(room_id))

    def enter(
        self, room_id: str, participant_id: str, info: dict[str, Any], may_admit: bool = False
    ) -> None:
        """Say (again) who this participant is — they are held by this worker, and whether
        they may let people in from the waiting room — after the writes already asked for."""
        entry = json.dumps({"worker": self.worker_id, "info": info, "may_admit": may_admit})
        self._write(lambda: self.redis.hset(self._people_key(room_id), participant_id, entry))

    def leave(self, room_id: str, participant_id: str) -> None:
        self._write(lambda: self.redis.hdel(self._people_key(room_id), participant_id))

    # --- standing (what moderation decided about a person: holds, blocks, a raised hand) ----
    def keep_standing(self, room_id: str, user_id: int, standing: dict[str, Any]) -> None:
        """Remember it for the person's next connection, on whatever worker (the hash lives
        a day after its last change at most)."""
        key = self._standings_key(room_id)
        entry = json.dumps(standing)

        async def write() -> None:
            await self.redis.hset(key, str(user_id), entry)
            await self.redis.expire(key, STANDING_TTL_SECONDS)

        self._write(write)

    async def standing(self, room_id: str, user_id: int) -> dict[str, Any] | None:
        raw = await self.redis.hget(self._standings_key(room_id), str(user_id))
        try:
            entry = json.loads(raw) if raw else None
        except ValueError:
            return None
        return entry if isinstance(entry, dict) else None

    def forget_standings(self, room_id: str) -> None:
        """The meeting ended."""
        key = self._standings_key(room_id)
        self._write(lambda: self.redis.delete(key))

    async def flush(self) -> None:
        """Wait until every write asked for so far has reached Redis."""
        done = asyncio.get_running_loop().create_future()

        async def mark() -> None:
            done.set_result(None)

        self._write(mark)
        await done

    async def others(self, room_id: str) -> list[dict[str, Any]]:
        """What `welcome` says of the participants other live workers hold here."""
        return [info for _, info in await self.elsewhere(room_id)]

    async def whereabouts(
        self, room_id: str, participant_id: str
    ) -> tuple[str, dict[str, Any]] | None:
        """The live worker that holds this participant, and what it says of them."""
        raw = await self.redis.hget(self._people_key(room_id), participant_id)
        worker = _worker_of(raw) if raw else None
        if worker is None or worker == self.worker_id:
            return None
        if not await self.redis.exists(self._worker_key(worker)):
            await self.others(room_id)  # forget the dead worker's people, and say so
            return None
        return worker, dict(json.loads(raw)["info"])

    async def admitters_elsewhere(self, room_id: str, besides: str | None = None) -> bool:
        """Whether another live worker holds someone here who may let people in (`besides`:
        a participant already announced gone whose entry may not be deleted yet)."""
        entries = await self.redis.hgetall(self._people_key(room_id))
        workers = set()
        for participant_id, raw in entries.items():
            try:
                entry = json.loads(raw)
                if entry.get("may_admit") is True and participant_id != besides:
                    workers.add(str(entry["worker"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        workers.discard(self.worker_id)
        for worker_id in workers:
            if await self.redis.exists(self._worker_key(worker_id)):
                return True
        return False

    async def elsewhere(self, room_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The participants other live workers hold in this meeting, with their worker.
        Entries of workers whose lease is gone are removed here, and their people
        announced lost."""
        entries = await self.redis.hgetall(self._people_key(room_id))
        by_worker: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for participant_id, raw in entries.items():
            try:
                entry = json.loads(raw)
                by_worker.setdefault(str(entry["worker"]), []).append(
                    (participant_id, dict(entry["info"]))
                )
            except (ValueError, KeyError, TypeError):
                await self.redis.hdel(self._people_key(room_id), participant_id)
        people: list[tuple[str, dict[str, Any]]] = []
        for worker_id, held in by_worker.items():
            if worker_id == self.worker_id:
                continue
            if await self.redis.exists(self._worker_key(worker_id)):
                people.extend((worker_id, info) for _, info in held)
            else:
                await self._forget_worker(room_id, worker_id, [pid for pid, _ in held])
        return people

    async def _forget_worker(
        self, room_id: str, worker_id: str, held: list[str] | None = None
    ) -> None:
        if held is None:
            entries = await self.redis.hgetall(self._people_key(room_id))
            held = [pid for pid, raw in entries.items() if _worker_of(raw) == worker_id]
        if held and await self.redis.hdel(self._people_key(room_id), *held):
            if worker_id != self.worker_id:
                log.warning(
                    "worker %s is gone; %d people of %s with it", worker_id, len(held), room_id
                )
                self.on_worker_lost(room_id, worker_id, held)

    # --- events ---------------------------------------------------------------------------
    def publish(self, room_id: str, event: dict[str, Any], audience: Audience = "all") -> None:
        """Relay a meeting-wide event to the other workers (in order, without waiting)."""
        message = json.dumps({"from": self.worker_id, "audience": audience, "event": event})
        channel = self._channel(room_id)
        self._write(lambda: self.redis.publish(channel, message))

    def tell(self, worker_id: str, room_id: str, command: dict[str, Any]) -> None:
        """Ask another worker to do something to a person it holds (in order, no reply)."""
        message = json.dumps({"from": self.worker_id, "room": room_id, "command": command})
        channel = self._worker_key(worker_id)
        self._write(lambda: self.redis.publish(channel, message))

    def write_later(self, write: Callable[[], Awaitable[Any]]) -> None:
        """A write of another module, in order with this one's (no waiting for it)."""
        self._write(write)

    def _write(self, write: Callable[[], Awaitable[Any]]) -> None:
        try:
            self._outbox.put_nowait(write)
        except asyncio.QueueFull:
            log.error("Redis is not keeping up: a write was dropped")

    async def _publish(self) -> None:
        while True:
            write = await self._outbox.get()
            try:
                await write()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("a write to Redis failed")

    async def _listen(self) -> None:
        room_prefix = f"{self.prefix}:room:"
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Redis subscription failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = str(message["channel"])
            if channel == self._worker_key(self.worker_id):
                self._command(message["data"])
                continue
            if not channel.startswith(room_prefix):
                continue
            try:
                envelope = json.loads(message["data"])
                origin, event = envelope["from"], envelope["event"]
                said = envelope.get("audience")
                audience: Audience = said if said in ("moderators", "workers") else "all"
            except (ValueError, KeyError, TypeError):
                log.warning("ignored a malformed cluster message on %s", channel)
                continue
            if origin != self.worker_id and isinstance(event, dict):
                self.on_event(channel[len(room_prefix) :], event, audience)

    def _command(self, data: str) -> None:
        try:
            envelope = json.loads(data)
            room_id, command = str(envelope["room"]), envelope["command"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed command")
            return
        if isinstance(command, dict):
            self.on_command(room_id, command)


def _worker_of(raw: str) -> str | None:
    try:
        return str(json.loads(raw)["worker"])
    except (ValueError, KeyError, TypeError):
        return None
