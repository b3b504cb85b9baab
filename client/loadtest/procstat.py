"""CPU and memory figures read from /proc (Linux), without extra dependencies.

Process CPU is utime + stime of every thread (`/proc/<pid>/stat`), optionally summed over a
process tree; machine CPU comes from `/proc/stat`. Percentages are "% of one core".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str]:
    raw = (PROC / str(pid) / "stat").read_text()
    # the command name may contain spaces and parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def process_cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def process_rss_bytes(pid: int) -> int:
    return int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE_BYTES


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in descendants(pid):
        try:
            total += process_cpu_seconds(member)
        except (OSError, ValueError):
            pass  # exited meanwhile
    return total


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for member in descendants(pid):
        try:
            total += process_rss_bytes(member)
        except (OSError, ValueError):
            pass
    return total


@dataclass(frozen=True)
class CpuSample:
    """Cumulative jiffies of one `/proc/stat` line."""

    busy: float  # seconds: user + nice + system + irq + softirq + steal
    steal: float
    total: float  # busy + idle + iowait


def machine_cpu() -> dict[str, CpuSample]:
    """`cpu` (all cores) and `cpu0`, `cpu1`, … from /proc/stat."""
    result: dict[str, CpuSample] = {}
    for line in (PROC / "stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        name, *values = line.split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
        busy = user + nice + system + irq + softirq + steal
        result[name] = CpuSample(
            busy / CLOCK_TICKS, steal / CLOCK_TICKS, (busy + idle + iowait) / CLOCK_TICKS
        )
    return result


def wakeups(pid: int) -> int:
    """Voluntary context switches of a process's main thread: how often its event loop went
    to sleep and was woken again (each costs a scheduler round trip, dearer in a VM)."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def load_average() -> float:
    return float((PROC / "loadavg").read_text().split()[0])


def core_count() -> int:
    return len(os.sched_getaffinity(0))
