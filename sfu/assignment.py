"""What each receiver is sent, and which of its receive slots carries what: pure functions.

`choose` ranks what a receiver should get from its receive policy and who is speaking;
`plan_slots` maps that onto the receiver's slots.

Slots are reused, never removed (aiortc cannot remove an m-line), so the plan keeps what is
still wanted where it is, frees what is not, puts each newly wanted publication on the
first idle slot of its kind (in m-line order) and counts what did not fit. Because `choose`
caps what is wanted (last_n videos, M + pinned microphones), a receiver's slots stay
bounded however large the meeting. Nothing here touches media, so both are tested on their
own (tests/sfu/test_assignment.py).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rtp.types import SOURCE_KIND, Kind, Source

from .api import ReceivePolicy

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


@dataclass(frozen=True)
class Offer(Generic[K]):
    """A publication a receiver could be sent: its key and whose, which source."""

    key: K
    participant_id: str
    source: Source


@dataclass(frozen=True)
class Ranking(Generic[K]):
    """What a receive policy would take from the room, best first, before the receiver's own
    publications are taken out and the lists are cut (`Ranking.pick`). Receivers that share
    a policy (every bot, every speaker view of one size) share one ranking."""

    videos: tuple[Offer[K], ...]
    pinned_mics: tuple[Offer[K], ...]
    audible_mics: tuple[Offer[K], ...]
    last_n: int
    audio_streams: int

    def pick(self, receiver: str) -> list[tuple[K, Kind]]:
        videos = [o for o in self.videos if o.participant_id != receiver][: self.last_n]
        heard = [o for o in self.pinned_mics if o.participant_id != receiver]
        heard += [o for o in self.audible_mics if o.participant_id != receiver][
            : self.audio_streams
        ]
        return [(o.key, SOURCE_KIND[o.source]) for o in (*videos, *heard)]


def rank(
    policy: ReceivePolicy,
    offered: Sequence[Offer[K]],
    *,
    recent: Sequence[str] = (),
    audible: Sequence[str] = (),
    audio_streams: int = 3,
) -> Ranking[K]:
    """Video: the candidates are everyone (`policy.visible` None) or the visible, pinned and
    on-stage participants, minus those drawn at height 0; they are ranked screen shares
    first (when `policy.screens`), then pinned, then on stage, then the recent speakers
    (most recent first), then the rest (in `visible` order, else in `offered` order), and
    the first `policy.last_n` are chosen. Audio: the pinned participants' microphones and
    the first `audio_streams` of the others who are `audible` (in that order)."""
    pinned = {pid: i for i, pid in enumerate(policy.pinned)}
    on_stage = {pid: i for i, pid in enumerate(policy.on_stage)}
    spoke = {pid: i for i, pid in enumerate(recent)}
    shown = None if policy.visible is None else {pid: i for i, pid in enumerate(policy.visible)}
    order = {o.key: i for i, o in enumerate(offered)}

    def place(o: Offer[K]) -> tuple[int, int]:
        pid = o.participant_id
        if o.source == "screen" and policy.screens:
            return (0, order[o.key])
        if pid in pinned:
            return (1, pinned[pid])
        if pid in on_stage:
            return (2, on_stage[pid])
        if pid in spoke:
            return (3, spoke[pid])
        return (4, shown[pid] if shown is not None else order[o.key])

    def candidate(o: Offer[K]) -> bool:
        pid = o.participant_id
        if policy.height(pid) <= 0:
            return False
        if shown is None or pid in shown or pid in pinned or pid in on_stage:
            return True
        return o.source == "screen" and policy.screens

    videos = sorted((o for o in offered if o.source != "microphone" and candidate(o)), key=place)
    mics = {o.participant_id: o for o in offered if o.source == "microphone"}
    return Ranking(
        videos=tuple(videos),
        pinned_mics=tuple(mics[pid] for pid in policy.pinned if pid in mics),
        audible_mics=tuple(mics[pid] for pid in audible if pid in mics and pid not in pinned),
        last_n=policy.last_n,
        audio_streams=audio_streams,
    )


def choose(
    receiver: str,
    policy: ReceivePolicy,
    offered: Sequence[Offer[K]],
    *,
    recent: Sequence[str] = (),
    audible: Sequence[str] = (),
    audio_streams: int = 3,
) -> list[tuple[K, Kind]]:
    """What `receiver` should be sent, in order of preference (video, then audio): `rank`,
    then the receiver's own publications taken out and the lists cut."""
    ranking = rank(policy, offered, recent=recent, audible=audible, audio_streams=audio_streams)
    return ranking.pick(receiver)
