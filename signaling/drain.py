"""A worker leaving the deployment (SIGTERM): drain it without ending anyone's meeting.

`signaling.serving` calls `Drain.leave` on SIGTERM (or SIGINT), before aiohttp's own shutdown:
that one makes every open connection ignore what its client sends from its first step on, so
a `hello` arriving then would never be read, nor a client's close frame. In this order:

1. the listening socket closes: the kernel offers new connections to the other workers of the
   port (SO_REUSEPORT), and a load balancer sees this node refuse;
2. nobody new is seated: a `hello` still arriving on a connection accepted before is refused
   with `server-draining` and close code 4503 (connect again: you land elsewhere);
3. recordings are handed over (`signaling.recordings.handover`): stopped cleanly, and offered
   to the workers that still hold people of the meeting, one of which records from then on;
4. every client is told `reconnect` and its socket closed with 1001: it connects again at
   once, lands on another worker, and the meeting goes on there;
5. the sessions are given a bounded while to finish leaving (and the sockets still shaking
   hands to say hello and be refused).

aiohttp's cleanup then closes media, jobs and the cluster link (presence and lease go at
once). When aiohttp shuts down without `leave` (tests closing a server), its on_shutdown hook
runs steps 3 and 4 (`run`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiohttp import web

from signaling.realtime.limits import PendingHandshakes
from signaling.realtime.live import LiveMeetings
from signaling.recordings.handover import HandOver

log = logging.getLogger(__name__)
SETTLE_SECONDS = 8.0  # within the supervisor's grace (signaling.workers), cleanup included
POLL_SECONDS = 0.05


class Drain:
    def __init__(
        self, live: LiveMeetings, handover: HandOver, handshakes: PendingHandshakes
    ) -> None:
        self.live = live
        self.handover = handover
        self.handshakes = handshakes

    async def leave(
        self, sites: Iterable[web.BaseSite], *, settle_seconds: float = SETTLE_SECONDS
    ) -> None:
        """Stop listening, drain, and wait (a bounded while) for the sessions to end."""
        for site in list(sites):
            await site.stop()
        await self.run()
        await self.settled(settle_seconds)

    async def run(self) -> None:
        """Refuse newcomers, hand the recordings over, send everyone to reconnect.
        Idempotent: a second call finds nothing left to do."""
        if self.live.draining:
            return
        self.live.draining = True
        people = sum(len(room.peers) for room in self.live.rooms.values())
        recording = len(self.handover.control.active)
        log.info("draining: %d people and %d recordings to move", people, recording)
        await self.handover.give()
        self.live.send_everyone_away()

    @property
    def busy(self) -> bool:
        """Sessions still leaving, or sockets still to say hello (and be refused)."""
        return self.handshakes.pending > 0 or self.live.sessions > 0

    async def settled(self, timeout: float) -> bool:
        """Wait until nobody is connected any more (True), or the timeout (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.busy:
            if loop.time() >= deadline:
                log.warning("drained with sessions still open; aiohttp's shutdown ends them")
                return False
            await asyncio.sleep(POLL_SECONDS)
        log.info("drained: nobody is connected any more")
        return True
