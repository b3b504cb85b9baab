"""Load on the machine apart from a benchmark's own processes (shared, noisy machines)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from client.loadtest import procstat

log = logging.getLogger(__name__)


class Machine:
    """CPU used by processes other than ours, from /proc/stat minus our process tree."""

    def __init__(self, root: int) -> None:
        self.root = root  # the benchmark: the server and the bots are below it

    def _ours_cpu(self) -> float:
        return procstat.tree_cpu_seconds(self.root)

    def sample(self) -> tuple[float, dict[str, procstat.CpuSample], float]:
        return time.monotonic(), procstat.machine_cpu(), self._ours_cpu()

    def others(self, before: Any, after: Any) -> tuple[float, dict[str, float]]:
        (t0, cpu0, ours0), (t1, cpu1, ours1) = before, after
        seconds = t1 - t0
        busy = cpu1["cpu"].busy - cpu0["cpu"].busy
        others = max(0.0, busy - (ours1 - ours0)) / seconds * 100
        cores = {
            name: round((cpu1[name].busy - cpu0[name].busy) / seconds * 100, 1)
            for name in cpu1
            if name != "cpu"
        }
        return others, cores

    async def wait_quiet(self, threshold: float, longest: float, sample_s: float = 3.0) -> float:
        """Wait until others use < threshold % of a core over `sample_s`; returns the wait.

        `longest` 0 does not wait at all (windows are still checked and flagged)."""
        if longest <= 0:
            return 0.0
        start = time.monotonic()
        while True:
            before = self.sample()
            await asyncio.sleep(sample_s)
            others, _ = self.others(before, self.sample())
            waited = time.monotonic() - start
            if others <= threshold:
                return waited
            if waited >= longest:
                log.warning(
                    "the machine is still busy after %.0f s (others use %.0f%% of a core); "
                    "measuring anyway, windows will be flagged",
                    waited,
                    others,
                )
                return waited
            log.warning("waiting for a quiet machine: others use %.0f%% of a core", others)
