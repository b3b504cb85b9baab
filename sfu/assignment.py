"""Which publication each receive slot of a subscriber carries: a pure function.

Slots are reused, never removed (aiortc cannot remove an m-line), so the plan keeps what is
still wanted where it is, frees what is not, puts each newly wanted publication on the
first idle slot of its kind (in m-line order) and counts what did not fit. Nothing here
touches media, so it is tested on its own (tests/sfu/test_assignment.py) and the same
function will rank and cap what a receiver is sent in large meetings.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rtp.types import Kind

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class SlotState(Generic[K]):
    """A slot as it is: its mid, its kind, and the publication it carries (None: idle)."""

    mid: str
    kind: Kind
    carries: K | None


@dataclass(frozen=True)
class SlotPlan(Generic[K]):
    changes: dict[str, K | None] = field(default_factory=dict)  # mid -> new publication
    missing: dict[Kind, int] = field(default_factory=lambda: {"audio": 0, "video": 0})


def mid_order(mid: str) -> tuple[int, str]:
    """Browsers number mids 0, 1, 2 …; numeric order is m-line order."""
    return (int(mid), mid) if mid.isdigit() else (1 << 30, mid)


def plan_slots(slots: Sequence[SlotState[K]], wanted: Sequence[tuple[K, Kind]]) -> SlotPlan[K]:
    """How to get from `slots` to carrying every `wanted` (publication, kind), in order."""
    wanted_keys = {key for key, _ in wanted}
    plan: SlotPlan[K] = SlotPlan()
    carried: set[K] = set()
    idle: dict[Kind, list[str]] = {"audio": [], "video": []}
    for slot in sorted(slots, key=lambda s: mid_order(s.mid)):
        if slot.carries is not None and slot.carries in wanted_keys:
            carried.add(slot.carries)
            continue
        if slot.carries is not None:
            plan.changes[slot.mid] = None
        idle[slot.kind].append(slot.mid)
    for key, kind in wanted:
        if key in carried:
            continue
        if idle[kind]:
            plan.changes[idle[kind].pop(0)] = key
            carried.add(key)
        else:
            plan.missing[kind] += 1
    return plan
