"""Slot assignment, on its own: which publication each receive slot carries."""

from __future__ import annotations

from sfu.assignment import SlotState, plan_slots


def slots(*spec: tuple[str, str, str | None]) -> list[SlotState[str]]:
    return [SlotState(mid, kind, carries) for mid, kind, carries in spec]  # type: ignore[arg-type]


def test_new_publications_take_the_first_idle_slot_of_their_kind_in_mline_order():
    plan = plan_slots(
        slots(("10", "video", None), ("2", "audio", None), ("3", "video", None)),
        [("ana/mic", "audio"), ("ana/cam", "video")],
    )
    assert plan.changes == {"2": "ana/mic", "3": "ana/cam"}  # mid 3 comes before mid 10
    assert plan.missing == {"audio": 0, "video": 0}


def test_what_is_still_wanted_stays_where_it_is():
    plan = plan_slots(
        slots(("2", "audio", "bo/mic"), ("3", "video", "bo/cam"), ("4", "video", None)),
        [("ana/cam", "video"), ("bo/cam", "video"), ("bo/mic", "audio")],
    )
    assert plan.changes == {"4": "ana/cam"}


def test_what_is_no_longer_wanted_frees_its_slot_for_the_next():
    plan = plan_slots(
        slots(("2", "video", "gone/cam"), ("3", "video", "bo/cam")),
        [("bo/cam", "video"), ("cy/cam", "video")],
    )
    assert plan.changes == {"2": "cy/cam"}  # freed and taken again in one plan
    plan = plan_slots(slots(("2", "video", "gone/cam")), [])
    assert plan.changes == {"2": None}


def test_what_does_not_fit_is_counted_by_kind():
    plan = plan_slots(
        slots(("0", "audio", None)),
        [("a/mic", "audio"), ("b/mic", "audio"), ("a/cam", "video"), ("a/screen", "video")],
    )
    assert plan.changes == {"0": "a/mic"}
    assert plan.missing == {"audio": 1, "video": 2}


def test_nothing_to_do_is_an_empty_plan():
    state = slots(("2", "audio", "a/mic"), ("3", "video", None))
    plan = plan_slots(state, [("a/mic", "audio")])
    assert plan.changes == {} and plan.missing == {"audio": 0, "video": 0}


def test_choose_ranks_screens_pinned_stage_speakers_then_the_rest():
    from sfu.api import ReceivePolicy
    from sfu.assignment import Offer, choose

    offered = [
        Offer(f"{pid}/{src}", pid, src)  # type: ignore[arg-type]
        for pid in ("me", "a", "b", "c", "d", "e")
        for src in ("microphone", "camera")
    ] + [Offer("e/screen", "e", "screen")]  # type: ignore[arg-type]

    def videos(policy: ReceivePolicy, recent=()) -> list[str]:  # type: ignore[no-untyped-def]
        return [k for k, kind in choose("me", policy, offered, recent=recent) if kind == "video"]

    everyone = ReceivePolicy(last_n=4)
    assert videos(everyone) == ["e/screen", "a/camera", "b/camera", "c/camera"]
    assert videos(everyone, recent=("d", "c")) == ["e/screen", "d/camera", "c/camera", "a/camera"]
    pinned = ReceivePolicy(last_n=3, pinned=("b",), on_stage=("c",), screens=False)
    assert videos(pinned, recent=("d",)) == ["b/camera", "c/camera", "d/camera"]
    page = ReceivePolicy(last_n=2, visible=("e", "a", "b"), screens=False)
    assert videos(page, recent=("d", "b")) == ["b/camera", "e/camera"]  # d is not on the page
    hidden = ReceivePolicy(last_n=0)
    assert videos(hidden) == []
    zero = ReceivePolicy(last_n=9, max_height={"a": 0}, screens=False)
    assert "a/camera" not in videos(zero)
    me = [k for k, _ in choose("me", everyone, offered, recent=("me",))]
    assert not [k for k in me if k.startswith("me/")], "a receiver is never sent itself"


def test_choose_hears_pinned_and_the_first_m_audible():
    from sfu.api import ReceivePolicy
    from sfu.assignment import Offer, choose

    offered = [Offer(f"{p}/mic", p, "microphone") for p in "abcdef"]  # type: ignore[arg-type]
    heard = choose(
        "a",
        ReceivePolicy(pinned=("f",)),
        offered,
        audible=("a", "b", "c", "d", "e"),
        audio_streams=3,
    )
    assert [k for k, _ in heard] == ["f/mic", "b/mic", "c/mic", "d/mic"]
