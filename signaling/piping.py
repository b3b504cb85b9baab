"""Media across workers: which publications each worker pipes to which (docs/scaling.md).

Each worker writes what its participants publish to the meeting's media hash in Redis
(`{prefix}:room:{room}:media`: "participant/source" → worker, kind, codec and that worker's
pipe address) and tells the others something changed. A worker that takes part in the meeting
— it holds people of it, or it records it (`LiveMeetings.keeps`: the recorder must have every
track, whichever worker it comes from, even after its own people left) — keeps one incoming
pipe for every publication of every other live worker: it opens the
receiving end (`MediaServer.add_remote_publication`) and asks the origin, through the origin's
command channel, to send (`MediaServer.start_pipe`). Each stream therefore crosses to a worker
once, however many of that worker's people receive it, and every worker hears every microphone,
so all speaker detectors agree. Video is piped whether or not a receiver shows it; piping on
demand is the next step.

`sync` is idempotent and is what every trigger calls: this worker's first person entering,
its last one leaving, a recording starting or stopping here, another worker's publications
changing, a worker dying.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from rtp.types import SOURCE_KIND, Source
from sfu import MediaServer, PipeError
from signaling.cluster import Cluster

log = logging.getLogger(__name__)
MEDIA_CHANGED = "media-changed"  # an event between workers, never sent to a browser


@dataclass
class _Room:
    published: dict[str, set[Source]] = field(default_factory=dict)  # ours, by participant
    incoming: dict[tuple[str, Source], tuple[str, int]] = field(default_factory=dict)
    # (participant, source) -> (origin worker, pipe id) of what we receive
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one sync at a time


class Piping:
    def __init__(self, media: MediaServer, cluster: Cluster, video_codec: str) -> None:
        self.media = media
        self.cluster = cluster
        self.video_codec = video_codec
        self.rooms: dict[str, _Room] = {}
        self.outgoing: dict[int, str] = {}  # pipe id -> the worker it goes to

    def _media_key(self, room_id: str) -> str:
        return f"{self.cluster.prefix}:room:{room_id}:media"

    # --- what this worker's people publish ---------------------------------------------------
    async def published(self, room_id: str, participant_id: str, sources: set[Source]) -> None:
        """After an offer: the participant publishes exactly `sources` now."""
        room = self.rooms.setdefault(room_id, _Room())
        before = room.published.get(participant_id, set())
        if sources == before:
            return
        room.published[participant_id] = set(sources)
        key = self._media_key(room_id)
        host, port = self.media.pipe_address()
        for source in sources - before:
            kind = SOURCE_KIND[source]
            entry = {
                "worker": self.cluster.worker_id,
                "kind": kind,
                "codec": self.video_codec if kind == "video" else "opus",
                "pipe": [host, port],
            }
            await self.cluster.redis.hset(key, f"{participant_id}/{source}", json.dumps(entry))
        for source in before - sources:
            await self.cluster.redis.hdel(key, f"{participant_id}/{source}")
        self.cluster.publish(room_id, {"type": MEDIA_CHANGED}, "workers")

    async def left(self, room_id: str, participant_id: str) -> None:
        """The participant left this worker: their publications are gone (their pipes end
        by themselves, the far ends are told by the pipe)."""
        await self.published(room_id, participant_id, set())
        room = self.rooms.get(room_id)
        if room is not None:
            room.published.pop(participant_id, None)

    # --- what this worker receives ------------------------------------------------------------
    async def sync(self, room_id: str, *, here: bool) -> None:
        """Receive every publication of the other live workers while this worker takes part
        in the meeting (`here`: people here, or recording it), none otherwise."""
        room = self.rooms.setdefault(room_id, _Room())
        async with room.lock:
            await self._sync(room_id, room, here=here)
        if not here and not room.published and not room.incoming:
            self.rooms.pop(room_id, None)

    async def _sync(self, room_id: str, room: _Room, *, here: bool) -> None:
        wanted: dict[tuple[str, Source], dict[str, Any]] = {}
        if here:
            live = {worker for worker, _ in await self.cluster.elsewhere(room_id)}
            for name, raw in (await self.cluster.redis.hgetall(self._media_key(room_id))).items():
                participant_id, _, source = name.partition("/")
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if source in SOURCE_KIND and entry.get("worker") in live:
                    wanted[participant_id, source] = entry  # type: ignore[index]
        for key, (worker, pipe_id) in list(room.incoming.items()):
            if key not in wanted or wanted[key]["worker"] != worker:
                del room.incoming[key]
                self.media.remove_remote_publication(room_id, *key)
                self.cluster.tell(worker, room_id, {"act": "unpipe", "pipe_id": pipe_id})
        for key, entry in wanted.items():
            if key not in room.incoming:
                self._pipe_in(room_id, room, key, entry)

    def _pipe_in(
        self, room_id: str, room: _Room, key: tuple[str, Source], entry: dict[str, Any]
    ) -> None:
        participant_id, source = key
        pipe_id = secrets.randbelow(0xFFFFFFFE) + 1
        try:
            origin = (str(entry["pipe"][0]), int(entry["pipe"][1]))
            self.media.add_remote_publication(
                room_id,
                participant_id,
                source,
                entry["kind"],
                entry["codec"],
                pipe_id,
                origin,
            )
        except (PipeError, KeyError, TypeError, ValueError) as exc:
            log.warning("cannot receive %s/%s of %s: %s", participant_id, source, room_id, exc)
            return
        room.incoming[key] = (str(entry["worker"]), pipe_id)
        host, port = self.media.pipe_address()
        command = {
            "act": "pipe",
            "participant_id": participant_id,
            "source": source,
            "to": [host, port],
            "pipe_id": pipe_id,
            "from": self.cluster.worker_id,
        }
        self.cluster.tell(str(entry["worker"]), room_id, command)

    # --- what other workers ask of this one ---------------------------------------------------
    def command(self, room_id: str, act: dict[str, Any]) -> None:
        """`pipe`: send a publication to another worker; `unpipe`: stop."""
        try:
            if act["act"] == "pipe":
                source = act["source"]
                if source not in SOURCE_KIND:
                    return
                pipe_id = int(act["pipe_id"])
                self.media.start_pipe(
                    room_id,
                    str(act["participant_id"]),
                    source,
                    (str(act["to"][0]), int(act["to"][1])),
                    pipe_id,
                )
                self.outgoing[pipe_id] = str(act["from"])
            elif act["act"] == "unpipe":
                pipe_id = int(act["pipe_id"])
                self.outgoing.pop(pipe_id, None)
                self.media.stop_pipe(pipe_id)
        except PipeError as exc:  # e.g. they unpublished meanwhile: the media hash says so
            log.info("pipe request in %s not carried out: %s", room_id, exc)
        except (KeyError, TypeError, ValueError, IndexError):
            log.warning("ignored a malformed pipe request in %s", room_id)

    def worker_lost(self, worker_id: str) -> None:
        """Stop sending to a worker that is gone (its receiving ends went with it)."""
        for pipe_id, to in list(self.outgoing.items()):
            if to == worker_id:
                del self.outgoing[pipe_id]
                self.media.stop_pipe(pipe_id)
