"""The NACK repair budget on its own: a packet at most twice, not twice within 20 ms, and
within a quarter of what was sent (a bucket of 64)."""

from __future__ import annotations

from rtp.repair import RESEND_BURST, RESEND_MAX, RESEND_SHARE, RESEND_SPACING_S, RepairBudget
from tests.helpers import FakeClock


def test_each_packet_at_most_twice_and_not_twice_at_once():
    clock = FakeClock()
    budget = RepairBudget(clock)
    sent = 1000
    assert budget.allow(7, sent)
    assert not budget.allow(7, sent), "the same packet again within the spacing"
    clock.now += RESEND_SPACING_S * 1.5
    assert budget.allow(7, sent)
    clock.now += 1
    assert not budget.allow(7, sent), f"more than {RESEND_MAX} resends of one packet"
    assert budget.allow(8, sent), "another packet is still fine"


def test_repair_stays_within_a_share_of_what_was_sent():
    budget = RepairBudget(FakeClock())
    allowed = sum(budget.allow(seq, packets_sent=0) for seq in range(100))
    assert allowed == int(RESEND_BURST / 4)  # the bucket starts a quarter full
    sent = 400
    allowed = sum(budget.allow(1000 + seq, packets_sent=sent) for seq in range(1000))
    assert allowed == min(RESEND_BURST, sent * RESEND_SHARE)  # refilled, capped at the burst
