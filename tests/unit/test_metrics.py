"""The per-frame counter stays cheap and bounded, whatever a charger sends."""

from __future__ import annotations

from linkray_site.metrics import FrameCounts


def test_frames_are_counted_by_direction_type_and_action():
    frames = FrameCounts()
    for _ in range(3):
        frames.count("charger>csms", 2, "Heartbeat")
    frames.count("csms>charger", 3, None)
    assert frames.counts == {("charger>csms", 2, "Heartbeat"): 3, ("csms>charger", 3, None): 1}


def test_actions_outside_ocpp_are_counted_as_other_so_labels_stay_bounded():
    frames = FrameCounts()
    for index in range(1000):
        frames.count("charger>csms", 2, f"Made{index}Up")
        frames.count("charger>csms", 7, None)
    assert frames.counts == {("charger>csms", 2, "other"): 1000, ("charger>csms", None, None): 1000}


def test_seconds_over_the_limit_count_only_between_two_checks_that_were_both_over():
    from linkray_site.metrics import OverLimitTally

    tally = OverLimitTally()
    checks = [(False, 0.0), (True, 1.0), (True, 2.0), (True, 3.5), (False, 4.0), (True, 5.0), (True, 5.5)]
    assert [tally.observe(over, now_s) for over, now_s in checks] == [0.0, 0.0, 1.0, 1.5, 0.0, 0.0, 0.5]
