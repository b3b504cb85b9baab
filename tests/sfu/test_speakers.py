"""The dominant speaker from audio levels alone: who takes the stage, how fast, and what
does not steal it."""

from __future__ import annotations

from sfu.speakers import DECISION_INTERVAL_S, RECENT_LIMIT, SpeakerDetector, SpeakerState
from tests.helpers import FakeClock

LOUD, QUIET, SILENT = 25, 90, 127  # RFC 6464 levels (-dBov)


class Room:
    """Feeds a detector 20 ms packets from several people, as a meeting would."""

    def __init__(self) -> None:
        self.clock = FakeClock(0.0)
        self.changes: list[tuple[float, SpeakerState[str]]] = []
        self.detector = SpeakerDetector(
            lambda state: self.changes.append((self.clock.now, state)), self.clock
        )

    def run(self, seconds: float, levels: dict[str, int]) -> None:
        for _ in range(round(seconds / 0.02)):
            self.clock.now += 0.02
            for who, level in levels.items():
                self.detector.level(who, level)

    @property
    def dominant(self) -> str | None:
        return self.detector.state.dominant

    def took_stage_at(self, who: str) -> float:
        return next(t for t, state in self.changes if state.dominant == who)


def test_a_speaker_takes_the_stage_within_half_a_second():
    room = Room()
    room.run(2.0, {"ana": QUIET, "bo": QUIET, "cy": SILENT})
    assert room.dominant is None
    start = room.clock.now
    room.run(1.0, {"ana": LOUD, "bo": QUIET, "cy": SILENT})
    assert room.dominant == "ana"
    assert room.took_stage_at("ana") - start <= 0.5
    # Bo answers once Ana stops: he takes over as quickly
    start = room.clock.now
    room.run(1.0, {"ana": QUIET, "bo": LOUD, "cy": SILENT})
    assert room.dominant == "bo"
    assert room.took_stage_at("bo") - start <= 0.5
    assert room.detector.state.recent == ("bo", "ana")


def test_a_cough_or_a_door_does_not_steal_the_stage():
    room = Room()
    room.run(3.0, {"ana": LOUD, "bo": QUIET})
    room.run(0.8, {"ana": QUIET, "bo": QUIET})  # Ana pauses to breathe
    room.run(0.14, {"ana": QUIET, "bo": LOUD})  # Bo coughs
    room.run(1.0, {"ana": LOUD, "bo": QUIET})
    since = room.took_stage_at("ana")
    assert {state.dominant for t, state in room.changes if t >= since} == {"ana"}


def test_someone_talking_over_the_speaker_needs_to_hold_the_floor():
    room = Room()
    room.run(3.0, {"ana": LOUD, "bo": QUIET})
    room.run(0.6, {"ana": LOUD, "bo": LOUD})  # Bo interjects while Ana goes on
    assert room.dominant == "ana"
    room.run(3.0, {"ana": QUIET, "bo": LOUD})  # then Ana yields
    assert room.dominant == "bo"


def test_silence_never_speaks_and_audible_lists_who_talks():
    room = Room()
    room.run(2.0, {"ana": SILENT, "bo": QUIET, "cy": LOUD, "dee": LOUD})
    state = room.detector.state
    assert state.dominant in ("cy", "dee")
    assert set(state.audible) == {"cy", "dee"}
    assert state.audible[0] == state.dominant  # the recent speaker first


def test_a_departed_speaker_is_forgotten_and_recent_is_bounded():
    room = Room()
    for i in range(RECENT_LIMIT + 3):
        room.run(1.0, {f"p{i}": LOUD})
        room.run(0.5, {f"p{i}": QUIET})
    assert len(room.detector.state.recent) == RECENT_LIMIT
    last = f"p{RECENT_LIMIT + 2}"
    assert room.dominant == last
    room.detector.forget(last)
    assert room.dominant is None and last not in room.detector.state.recent


def bursty_talk(room: Room, seconds: float, burst: float, timestamps: bool) -> None:
    """Ana talks, but her packets arrive `burst` seconds at a time (a sender whose loop
    stalls, or network jitter), each with the RTP timestamp it was sent with; Bo is quiet."""
    held: list[int] = []
    timestamp = 0
    for step in range(1, round(seconds / 0.02) + 1):
        room.clock.now += 0.02
        timestamp += 960
        held.append(timestamp)
        room.detector.level("bo", QUIET, timestamp if timestamps else None)
        if step % round(burst / 0.02) == 0:
            for ts in held:
                room.detector.level("ana", LOUD, ts if timestamps else None)
            held.clear()


def test_bursts_of_packets_are_placed_by_their_timestamps():
    """Bucketing by arrival, 300 ms bursts fill one bucket in three: Ana never looks like
    she talks. By RTP timestamp, she takes the stage at the first decision (every 0.1 s)
    after the burst that shows it."""
    by_arrival = Room()
    bursty_talk(by_arrival, 3.0, 0.3, timestamps=False)
    assert by_arrival.dominant is None
    by_media_time = Room()
    bursty_talk(by_media_time, 3.0, 0.3, timestamps=True)
    assert by_media_time.dominant == "ana"
    assert by_media_time.took_stage_at("ana") <= 0.3 + 0.3 + DECISION_INTERVAL_S + 0.02


def test_timestamps_that_jump_re_anchor():
    """A sender whose timestamps jump back (a restarted encoder) is placed by arrival
    again within RESYNC_S, not left in the past."""
    room = Room()
    timestamp = 10**9
    for _ in range(50):  # 1 s of silence from Ana
        room.clock.now += 0.02
        timestamp += 960
        room.detector.level("ana", SILENT, timestamp)
    timestamp -= 10 * 48000  # 10 s back
    start = room.clock.now
    for _ in range(50):
        room.clock.now += 0.02
        timestamp += 960
        room.detector.level("ana", LOUD, timestamp)
    assert room.dominant == "ana" and room.took_stage_at("ana") - start <= 0.5
