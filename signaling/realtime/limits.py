"""Limits per client: how many signaling messages a connection may send, and how many
sockets an address may hold before saying hello."""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class PendingHandshakes:
    """Sockets that are open but have not said `hello` yet, counted per client address.

    Each costs a file descriptor and a task for up to the hello deadline; capping them per
    address (and in all) keeps one client from exhausting them.
    """

    def __init__(self, per_address: int = 20, total: int = 1000) -> None:
        self.per_address = per_address
        self.total = total
        self._open: dict[str, int] = {}
        self._count = 0

    def enter(self, address: str) -> bool:
        """Count one more socket of `address`; False (nothing counted) when over a cap."""
        held = self._open.get(address, 0)
        if held >= self.per_address or self._count >= self.total:
            return False
        self._open[address] = held + 1
        self._count += 1
        return True

    @property
    def pending(self) -> int:
        """Sockets in all that have not been seated yet (a draining worker waits for them)."""
        return self._count

    def leave(self, address: str) -> None:
        held = self._open.get(address, 0)
        if held <= 1:
            self._open.pop(address, None)
        else:
            self._open[address] = held - 1
        self._count -= 1
