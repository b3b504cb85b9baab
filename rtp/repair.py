"""How much NACK repair one sender may spend.

A subscriber that cannot keep up loses packets and NACKs them; if every NACK were answered,
the retransmissions would add to the load it already cannot carry (and to the server's), and
the meeting spirals into a repair storm. So each packet is resent at most RESEND_MAX times,
not twice within RESEND_SPACING_S (aiortc's receiver NACKs every missing packet again on
each new gap), and a sender's retransmissions stay within RESEND_SHARE of the packets it sent
(a bucket of at most RESEND_BURST). Pure bookkeeping, run on the NACK path only: it can be
tested without any network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

HISTORY_SIZE = 512  # packets kept per sender for NACK retransmissions (2^16 divisible)
RESEND_MAX = 2
RESEND_SPACING_S = 0.02
RESEND_SHARE = 0.25
RESEND_BURST = 64.0


class RepairCounters(Protocol):
    """Where a sender adds its repair, so totals outlive it (the media server's counters)."""

    retransmissions: int
    retransmissions_refused: int


class RepairBudget:
    """Decides, per NACKed packet, whether resending it is still within the limits."""

    __slots__ = ("_count", "_last", "_sent_seen", "_seq", "_tokens", "clock")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # per history index: which seq the two arrays after it are about
        self._seq = [-1] * HISTORY_SIZE
        self._count = [0] * HISTORY_SIZE
        self._last = [0.0] * HISTORY_SIZE
        self._tokens = RESEND_BURST / 4
        self._sent_seen = 0

    def allow(self, seq: int, packets_sent: int) -> bool:
        """Whether `seq` may be resent now, given how many packets the sender has sent in
        all (the bucket refills by RESEND_SHARE of every packet sent since the last call)."""
        self._tokens = min(
            RESEND_BURST, self._tokens + (packets_sent - self._sent_seen) * RESEND_SHARE
        )
        self._sent_seen = packets_sent
        index = seq % HISTORY_SIZE
        now = self.clock()
        if self._seq[index] != seq:
            self._seq[index], self._count[index] = seq, 0
        elif self._count[index] >= RESEND_MAX or now - self._last[index] < RESEND_SPACING_S:
            return False
        if self._tokens < 1:
            return False
        self._tokens -= 1
        self._count[index] += 1
        self._last[index] = now
        return True
