"""The planning arithmetic of time budgets and ETAs (``engine.budget``), by hand."""

from __future__ import annotations

import itertools

import pytest

from celebseg_utils.engine.budget import Costs, Plan, eta_seconds, plan_run
from celebseg_utils.errors import CelebsegError

COSTS = Costs(step_s=0.5, val_step_s=0.2, val_steps=10, epoch_overhead_s=3.0, end_s=20.0)


def test_eta_counts_steps_validation_saves_and_the_end():
    # 100 x 0.5 + 3 epochs x (10 x 0.2 + 3) + 20
    assert eta_seconds(100, 3, COSTS) == pytest.approx(85.0)
    assert eta_seconds(100, 3, COSTS, end=False) == pytest.approx(65.0)
    assert COSTS.epoch_fixed_s == pytest.approx(5.0)


def test_the_configured_run_is_kept_when_it_fits():
    plan = plan_run(budget_s=3600, spent_s=60, costs=COSTS, epochs_max=4, steps_max=1000)
    # 60 + 4000 x 0.5 + 4 x 5 + 20 = 2100 s <= 0.96 x 3600
    assert plan == Plan(epochs=4, steps_per_epoch=1000, expected_s=pytest.approx(2100.0),
                        full=True)


def test_a_short_budget_keeps_validation_near_its_share_and_fills_the_rest_with_steps():
    plan = plan_run(budget_s=600, spent_s=30, costs=COSTS, epochs_max=12, steps_max=3000)
    # available = 576 - 30 - 20 = 526; epochs: 0.15 x 526 // 5 = 15 -> 12 (the cap);
    # steps: (526 - 12 x 5) // (12 x 0.5) = 77
    assert (plan.epochs, plan.steps_per_epoch, plan.full) == (12, 77, False)
    assert plan.expected_s == pytest.approx(30 + 12 * 77 * 0.5 + 12 * 5 + 20)
    costly_val = Costs(step_s=0.5, val_step_s=2.0, val_steps=10, end_s=20.0)  # 20 s per epoch
    plan = plan_run(600, 30, costly_val, epochs_max=12, steps_max=3000)
    # epochs: 0.15 x 526 // 20 = 3; steps: (526 - 60) // 1.5 = 310
    assert (plan.epochs, plan.steps_per_epoch) == (3, 310)


def test_when_whole_epochs_fit_it_takes_as_many_as_the_time_allows():
    plan = plan_run(budget_s=600, spent_s=30, costs=COSTS, epochs_max=12, steps_max=50)
    # 50 steps cap binds; epochs: 526 // (50 x 0.5 + 5) = 17 -> 12 would fit... cap 12 fits
    # entirely (30 + 12 x 30 + 20 = 410 <= 576): the configured run
    assert plan.full and (plan.epochs, plan.steps_per_epoch) == (12, 50)
    plan = plan_run(budget_s=400, spent_s=30, costs=COSTS, epochs_max=12, steps_max=50)
    # available = 384 - 50 = 334; 0.15 x 334 // 5 = 10 epochs -> (334 - 50) // 5 = 56 >= 50:
    # capped at 50, then 334 // 30 = 11 epochs
    assert (plan.epochs, plan.steps_per_epoch, plan.full) == (11, 50, False)


def test_every_plan_ends_within_the_budget_and_uses_most_of_it():
    for budget, step, val in itertools.product((120, 900, 5400, 36000), (0.05, 0.8, 3.0),
                                               (0.0, 0.5)):
        costs = Costs(step_s=step, val_step_s=val, val_steps=20, epoch_overhead_s=1.0, end_s=10.0)
        try:
            plan = plan_run(budget, 15.0, costs, epochs_max=30, steps_max=3000)
        except CelebsegError:
            assert 15 + 10 + 20 * val + 1 + step > 0.96 * budget
            continue
        assert plan.expected_s <= 0.96 * budget + 1e-9
        assert plan.full or plan.expected_s >= 0.96 * budget - step * plan.epochs - costs.epoch_fixed_s
        assert 1 <= plan.epochs <= 30 and 1 <= plan.steps_per_epoch <= 3000


def test_a_budget_too_small_names_what_it_needs():
    with pytest.raises(CelebsegError, match=r"time budget of 30 s leaves no time to train .* "
                                            r"give at least 48 s"):
        plan_run(30, 20, COSTS, epochs_max=2, steps_max=10)  # (20 + 20 + 5 + 0.5) / 0.96 = 47.4, rounded up
