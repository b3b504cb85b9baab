"""Who is speaking, from the RFC 6464 audio level every microphone packet carries.

No decoding: each Opus packet's header extension says how loud it is (0 = loudest, 127 =
silence, in -dBov). A packet louder than VOICE_LEVEL counts as voiced. Per speaker, time is
cut into 100 ms buckets, each holding the share of its packets that were voiced; three
windows read them, as Volfin and Cohen's dominant speaker identification (and Jitsi's and
mediasoup's ports of it) do, in a simpler form:

- immediate (300 ms): is this person talking right now?
- medium (1 s): have they been talking, or was it a cough?
- long (3 s): who has held the floor?

A challenger takes over as the dominant speaker only once they have talked for most of the
immediate window, and then only if the current dominant speaker has paused, or the
challenger has been more active over both the medium and the long window. A cough or a door
(one bucket or two) never fills the immediate window, and a real speaker takes the stage
about 0.3 to 0.4 s after starting. Decisions are made at most every DECISION_INTERVAL_S, lazily,
when packets arrive, so a room without audio costs nothing.

Besides the dominant speaker, the detector keeps `recent` (dominant speakers, most recent
first) and `audible` (who is talking now, most active first): the room forwards video by the
first and audio by the second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

VOICE_LEVEL = 60  # -dBov: louder than this is voice (speech sits around -20 to -45)
BUCKET_S = 0.1
PACKETS_PER_BUCKET = 5  # 20 ms Opus frames
IMMEDIATE, MEDIUM, LONG = 3, 10, 30  # buckets
DECISION_INTERVAL_S = 0.1
TALKING = 0.6  # immediate activity at which a challenger is talking (≥ ~200 ms of 300)
PAUSED = 0.2  # immediate activity below which the dominant speaker has paused
# audible (heard by others): any voice in the immediate window, or enough in the long one
# that a pause in speech does not take the person off the air (and slots are not remapped)
HEARD_FOR = 0.05  # long-window activity (≥ 150 ms of voice in 3 s)
RECENT_LIMIT = 8
AUDIO_CLOCK = 48000  # Opus RTP clock
RESYNC_S = 1.0  # media time this far behind arrival: the sender's timestamps jumped; re-anchor


@dataclass
class _Activity:
    """Voiced and total packets per 100 ms bucket, in a ring of LONG buckets.

    A packet goes into the bucket of its *media* time when it carries an RTP timestamp:
    `when` maps the timestamp onto this process's clock, anchored at the fastest packet
    seen so far. Packets that arrive in a burst (a sender whose loop stalled, network
    jitter) then still fill the buckets they were spoken in, instead of piling into one
    and leaving the ones before it empty, which would read as a stutter and delay the
    speaker taking the stage.
    """

    voiced: list[int] = field(default_factory=lambda: [0] * LONG)
    total: list[int] = field(default_factory=lambda: [0] * LONG)
    index: int = -1  # absolute bucket number of the newest bucket
    media: float = 0.0  # seconds of media since the first timestamped packet
    last_timestamp: int | None = None
    offset: float | None = None  # arrival - media of the fastest packet (clock seconds)

    def when(self, now: float, timestamp: int | None) -> float:
        """The packet's time on the clock: its media time, or `now` without a timestamp."""
        if timestamp is None:
            return now
        if self.last_timestamp is not None:
            step = (timestamp - self.last_timestamp + 0x80000000) % 0x100000000 - 0x80000000
            self.media += step / AUDIO_CLOCK
        self.last_timestamp = timestamp
        offset = now - self.media
        if self.offset is None or offset < self.offset or offset - self.offset > RESYNC_S:
            self.offset = offset  # faster than any before, or the timestamps went astray
        return self.offset + self.media

    def _advance(self, now_bucket: int) -> None:
        if self.index < 0:
            self.index = now_bucket
            return
        gap = now_bucket - self.index
        if gap <= 0:
            return
        for i in range(1, min(gap, LONG) + 1):
            j = (self.index + i) % LONG
            self.voiced[j] = self.total[j] = 0
        self.index = now_bucket

    def add(self, bucket: int, voiced: bool) -> None:
        self._advance(bucket)
        if self.index - bucket >= LONG:
            return  # older than the long window
        j = bucket % LONG
        self.total[j] += 1
        self.voiced[j] += voiced

    def _share(self, j: int) -> float:
        total = self.total[j]
        return min(1.0, self.voiced[j] / max(total, PACKETS_PER_BUCKET)) if total else 0.0

    def scores(self, now_bucket: int) -> tuple[float, float, float]:
        """Mean activity over the immediate, medium and long windows ending now (the
        current bucket counts as far as it has been filled)."""
        self._advance(now_bucket)
        newest = self.index

        def mean(n: int) -> float:
            return sum(self._share((newest - i) % LONG) for i in range(n)) / n

        return mean(IMMEDIATE), mean(MEDIUM), mean(LONG)


@dataclass(frozen=True)
class SpeakerState(Generic[K]):
    dominant: K | None = None
    recent: tuple[K, ...] = ()  # dominant speakers, most recent first
    audible: tuple[K, ...] = ()  # talking now: recent speakers first, then by activity


class SpeakerDetector(Generic[K]):
    """Dominant and recent speakers of one room, keyed by whatever identifies a speaker
    (the media server uses participant ids)."""

    def __init__(
        self,
        on_change: Callable[[SpeakerState[K]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_change = on_change
        self.clock = clock
        self.state: SpeakerState[K] = SpeakerState()
        self._activity: dict[K, _Activity] = {}
        self._evaluated: set[K] = set()
        self._next_decision = -math.inf

    def level(self, speaker: K, level: int, timestamp: int | None = None) -> None:
        """One audio packet of `speaker` with its RFC 6464 level (0..127, -dBov) and, if
        known, its RTP timestamp (48 kHz), which places it in time better than its arrival."""
        now = self.clock()
        activity = self._activity.get(speaker)
        if activity is None:
            activity = self._activity[speaker] = _Activity()
        activity.add(int(activity.when(now, timestamp) / BUCKET_S), level < VOICE_LEVEL)
        if now >= self._next_decision:
            self._next_decision = now + DECISION_INTERVAL_S
            self.decide(now)

    def measured(self, speaker: K) -> bool:
        """Whether the speaker's levels have been through a decision (so `state` says
        whether they are audible); False for clients that send no levels at all."""
        return speaker in self._evaluated

    def forget(self, speaker: K) -> None:
        """The speaker left or stopped publishing their microphone."""
        self._activity.pop(speaker, None)
        self._evaluated.discard(speaker)
        state = self.state
        if speaker in state.recent or speaker in state.audible or state.dominant == speaker:
            self._publish(
                SpeakerState(
                    None if state.dominant == speaker else state.dominant,
                    tuple(s for s in state.recent if s != speaker),
                    tuple(s for s in state.audible if s != speaker),
                )
            )

    def decide(self, now: float | None = None) -> None:
        bucket = int((self.clock() if now is None else now) / BUCKET_S)
        scores = {s: a.scores(bucket) for s, a in self._activity.items()}
        newly_measured = scores.keys() - self._evaluated  # `measured` changes for them
        self._evaluated = set(scores)
        state = self.state
        dominant = state.dominant
        challengers = sorted(
            (s for s in scores if s != dominant), key=lambda s: scores[s][:2], reverse=True
        )
        if challengers:
            challenger = challengers[0]
            imm, med, long = scores[challenger]
            if imm >= TALKING and (
                dominant is None
                or dominant not in scores
                or scores[dominant][0] <= PAUSED
                or (med > scores[dominant][1] and long > scores[dominant][2])
            ):
                dominant = challenger
        recent = state.recent
        if dominant is not None and (not recent or recent[0] != dominant):
            recent = (dominant, *(s for s in recent if s != dominant))[:RECENT_LIMIT]
        talking = {s for s, (imm, _, long) in scores.items() if imm > 0 or long >= HEARD_FOR}
        # recent speakers first, in their (stable) order, then the others by activity: who is
        # forwarded changes when someone starts or stops talking, not at every fluctuation
        others = sorted(talking - set(recent), key=lambda s: sum(scores[s][:2]), reverse=True)
        audible = (*(s for s in recent if s in talking), *others)
        self._publish(SpeakerState(dominant, recent, audible), force=bool(newly_measured))

    def _publish(self, state: SpeakerState[K], force: bool = False) -> None:
        if force or state != self.state:
            self.state = state
            self.on_change(state)
