"""The one duration format (``text.format_duration``): budgets, ETAs and notebook summaries."""

from celebseg_utils.text import format_duration


def test_each_range_of_durations_reads_its_own_way():
    assert [format_duration(s) for s in (0, 0.2069, 9.94, 59.4, 60, 185, 3599, 3600, 27600, 90000)] == [
        "0.0 s", "0.2 s", "9.9 s", "59 s", "1 min 00 s", "3 min 05 s", "59 min 59 s", "1 h 00 min",
        "7 h 40 min", "25 h 00 min"]


def test_rounding_at_each_boundary_carries_into_the_next_unit():
    # 9.96 s rounds to 10 (no "10.0 s"), 59.6 s to a minute, 3599.6 s to an hour, and
    # minutes round from an hour on: 2 h 03 min 30 s is 124 minutes.
    assert [format_duration(s) for s in (9.96, 59.6, 3599.6, 7410)] == [
        "10 s", "1 min 00 s", "1 h 00 min", "2 h 04 min"]


def test_a_negative_time_reads_as_zero():
    assert format_duration(-3) == "0.0 s"


def test_the_engine_and_the_notebooks_use_this_one():
    from celebseg_utils.engine import budget, callbacks
    from celebseg_utils.interface import notebook

    assert budget.format_duration is callbacks.format_duration is notebook.format_duration \
        is format_duration
