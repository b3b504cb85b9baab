"""The waiting room's queue as every worker of a deployment sees it (Redis; docs/scaling.md).

Each worker holds the sockets of the people waiting on it (`LiveRoom.waiting`); this module
keeps the queue that all workers share: `{prefix}:room:{room}:waiting`, a hash of participant
id → the knock and the worker holding the socket. A moderator on any worker sees it and may
decide on anyone in it.

Who decided first is settled by Redis, not by any worker: a decision takes the entry out in
one transaction (`HGET` + `HDEL` in `MULTI`), and only the decision whose `HDEL` removed it
goes on; every other one, on whatever worker, gets `not-waiting`. The deciding worker stores
the decision (PostgreSQL) and tells the knocker's worker, which lets the socket in or sends
it away. Entries of workers whose lease is gone are dropped when read: their sockets are gone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from signaling.cluster import Cluster
from signaling.realtime.events import KnockInfo

log = logging.getLogger(__name__)


class Knocks:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.redis: Any = cluster.redis

    def _key(self, room_id: str) -> str:
        return f"{self.cluster.prefix}:room:{room_id}:waiting"

    def _entry(self, knock: KnockInfo) -> str:
        return json.dumps(
            {"worker": self.cluster.worker_id, "knock": knock.model_dump(mode="json")}
        )

    async def add(self, room_id: str, knock: KnockInfo) -> None:
        """The person knocked on this worker (stored before anyone is told of the knock)."""
        await self.redis.hset(self._key(room_id), knock.participant_id, self._entry(knock))

    def remove(self, room_id: str, participant_id: str) -> None:
        """They stopped waiting (left, replaced, sent away): after the writes asked before."""
        key = self._key(room_id)
        self.cluster.write_later(lambda: self.redis.hdel(key, participant_id))

    async def take(self, room_id: str, participant_id: str) -> tuple[str, KnockInfo] | None:
        """Take the knock out of the queue to decide on it: (the knocker's worker, the
        knock), or None when someone decided first, the person left, or their worker died."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(self._key(room_id), participant_id)
            pipe.hdel(self._key(room_id), participant_id)
            raw, removed = await pipe.execute()
        if not removed or raw is None:
            return None
        parsed = _parse(raw)
        if parsed is None or not await self.cluster.alive(parsed[0]):
            return None
        return parsed

    async def queue(self, room_id: str) -> list[tuple[str, KnockInfo]]:
        """Everyone waiting, on any live worker, oldest knock first."""
        key = self._key(room_id)
        waiting: list[tuple[str, KnockInfo]] = []
        dead: list[str] = []
        alive: dict[str, bool] = {}  # one look per worker, not per person
        for participant_id, raw in (await self.redis.hgetall(key)).items():
            parsed = _parse(raw)
            if parsed is not None and parsed[0] not in alive:
                alive[parsed[0]] = await self.cluster.alive(parsed[0])
            if parsed is None or not alive[parsed[0]]:
                dead.append(participant_id)
            else:
                waiting.append(parsed)
        if dead:
            await self.redis.hdel(key, *dead)
        return sorted(waiting, key=lambda entry: entry[1].since)


def _parse(raw: str) -> tuple[str, KnockInfo] | None:
    try:
        entry = json.loads(raw)
        return str(entry["worker"]), KnockInfo.model_validate(entry["knock"])
    except (ValueError, KeyError, TypeError, ValidationError):
        log.warning("dropped a malformed waiting-room entry")
        return None
