"""What a training run costs in time: the ETA, and a plan that fits a time budget.

Plain arithmetic on measured costs (no TensorFlow): :class:`Costs` holds what a short
timed probe measured (seconds per training step after compilation, per validation step,
per checkpoint save, and what comes after training: the final save and the test
evaluation); :func:`eta_seconds` is the time left for a given number of steps and epochs;
:func:`plan_run` chooses the epochs and steps per epoch that fit a budget.

How :func:`plan_run` chooses, with ``available`` = budget - time already spent - what comes
after training - a safety margin:

1. the configured run (``epochs_max`` x ``steps_max``) when it fits;
2. else as many epochs as keep validation and checkpoints (their cost per epoch) to about
   ``validation_share`` of the time, at least 1, at most ``epochs_max``, and the steps per
   epoch that fill the rest (at most ``steps_max``; when that cap binds, as many whole
   epochs as fit);
3. an error when not even one epoch of one step fits, naming the budget needed.

The learning-rate schedule is then defined over ``epochs x steps`` (``engine.train``).

>>> costs = Costs(step_s=0.5, val_step_s=0.2, val_steps=10, epoch_overhead_s=3.0, end_s=20.0)
>>> plan = plan_run(budget_s=600, spent_s=30, costs=costs, epochs_max=12, steps_max=3000)
>>> plan.epochs, plan.steps_per_epoch, plan.full
(12, 77, False)
>>> round(plan.expected_s)
572
>>> format_duration(plan.expected_s), format_duration(7 * 3600 + 40 * 60)
('9 min 32 s', '7 h 40 min')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from celebseg_utils.errors import CelebsegError
from celebseg_utils.text import format_duration

#: Planned runs aim to end this fraction before the budget (timing noise, saves).
SAFETY_MARGIN = 0.04
#: Target share of the planned time spent validating and checkpointing.
VALIDATION_SHARE = 0.15


@dataclass(frozen=True)
class Costs:
    """Measured costs of a run, in seconds (see the module doc)."""

    step_s: float
    val_step_s: float
    val_steps: int
    #: per epoch besides validation: the best-model and backup saves
    epoch_overhead_s: float = 0.0
    #: after the last epoch: the final save, reloading the best model, the test evaluation
    end_s: float = 0.0

    @property
    def epoch_fixed_s(self) -> float:
        """What one epoch costs besides its training steps."""
        return self.val_steps * self.val_step_s + self.epoch_overhead_s


@dataclass(frozen=True)
class Plan:
    """Epochs and steps per epoch chosen by :func:`plan_run`, and the expected duration
    (``spent_s`` included); ``full`` when the configured run fits unchanged."""

    epochs: int
    steps_per_epoch: int
    expected_s: float
    full: bool

    def describe(self, budget_s: float, batch_size: int, train_images: int) -> str:
        """One line saying what was chosen and why."""
        images = self.epochs * self.steps_per_epoch * batch_size
        what = (f"{self.epochs} epochs x {self.steps_per_epoch} steps "
                f"({images:,} images, {images / max(train_images, 1):.2f} passes over the "
                f"{train_images:,} training faces)")
        if self.full:
            return (f"time budget {format_duration(budget_s)}: the configured run fits, {what}, "
                    f"expected {format_duration(self.expected_s)}")
        return (f"time budget {format_duration(budget_s)}: planned {what} to end in about "
                f"{format_duration(self.expected_s)}")


def eta_seconds(steps_left: int, epochs_left: int, costs: Costs, end: bool = True) -> float:
    """Seconds until the run ends: ``steps_left`` training steps, the validation and saves
    of ``epochs_left`` epochs, and (``end``) what comes after training.

    >>> eta_seconds(100, 2, Costs(step_s=0.5, val_step_s=0.2, val_steps=10, end_s=5.0))
    59.0
    """
    return (steps_left * costs.step_s + epochs_left * costs.epoch_fixed_s
            + (costs.end_s if end else 0.0))


def end_seconds(save_s: float, build_s: float, eval_compile_s: float, eval_step_s: float,
                test_images: int, train_batch: int, eval_batch: int = 8) -> float:
    """What comes after the last epoch, in seconds: the final save, then the test evaluation
    (reloading the best model, which costs a build and a read, and compiling its predict
    step, twice when the last batch is partial), ``test_images`` at ``eval_batch`` a batch.

    ``eval_step_s`` is per step of ``train_batch`` images (the validation probe's figure).
    The build and the second compilation were missing from the first estimate: the ETA
    check measured the end phase at 1.5 to 7 times what it predicted (docs/eta-budget.md, "ETA").

    >>> end_seconds(save_s=1.0, build_s=4.0, eval_compile_s=3.0, eval_step_s=0.2,
    ...             test_images=20, train_batch=4)   # 1 + 4 + 1 + 2 x 3 + 3 x 0.4
    13.2
    >>> end_seconds(1.0, 4.0, 3.0, 0.2, test_images=0, train_batch=4)  # no test split
    1.0
    """
    if test_images <= 0:
        return save_s
    batches = math.ceil(test_images / eval_batch)
    compiles = 2 if batches > 1 and test_images % eval_batch else 1
    test_s = (build_s + save_s + compiles * eval_compile_s
              + batches * eval_step_s * eval_batch / max(train_batch, 1))
    return round(save_s + test_s, 6)


def plan_run(budget_s: float, spent_s: float, costs: Costs, epochs_max: int, steps_max: int,
             validation_share: float = VALIDATION_SHARE,
             margin: float = SAFETY_MARGIN) -> Plan:
    """The epochs and steps per epoch that end within ``budget_s`` (see the module doc).

    >>> c = Costs(step_s=1.0, val_step_s=0.5, val_steps=4, end_s=10.0)
    >>> plan_run(1000, 0, c, epochs_max=2, steps_max=100)  # fits: 2 x (100 + 2) + 10
    Plan(epochs=2, steps_per_epoch=100, expected_s=214.0, full=True)
    >>> plan_run(15, 5, c, epochs_max=2, steps_max=100)
    Traceback (most recent call last):
    celebseg_utils.errors.CelebsegError: a time budget of 15 s leaves no time to train (probe and compilation 5.0 s, test evaluation and final save 10 s, one epoch of one step 3.0 s); give at least 19 s
    """
    if costs.step_s <= 0:
        raise CelebsegError(f"a measured step time must be positive, got {costs.step_s}")
    epochs_max, steps_max = int(epochs_max), int(steps_max)
    full_s = spent_s + eta_seconds(epochs_max * steps_max, epochs_max, costs)
    if full_s <= budget_s * (1.0 - margin):
        return Plan(epochs_max, steps_max, full_s, True)
    available = budget_s * (1.0 - margin) - spent_s - costs.end_s
    fixed = costs.epoch_fixed_s
    if available < fixed + costs.step_s:
        need = (spent_s + costs.end_s + fixed + costs.step_s) / (1.0 - margin)
        raise CelebsegError(
            f"a time budget of {format_duration(budget_s)} leaves no time to train (probe and "
            f"compilation {format_duration(spent_s)}, test evaluation and final save "
            f"{format_duration(costs.end_s)}, one epoch of one step "
            f"{format_duration(fixed + costs.step_s)}); give at least "
            f"{format_duration(math.ceil(need))}")
    epochs = epochs_max if fixed <= 0 else int(validation_share * available // fixed)
    epochs = max(1, min(epochs_max, epochs))
    steps = int((available - epochs * fixed) // (epochs * costs.step_s))
    while steps < 1:  # validation alone would fill the time: fewer epochs
        epochs -= 1
        steps = int((available - epochs * fixed) // (epochs * costs.step_s))
    if steps >= steps_max:  # whole epochs fit: as many as the time allows
        steps = steps_max
        epochs = max(1, min(epochs_max, int(available // (steps * costs.step_s + fixed))))
    expected = spent_s + eta_seconds(epochs * steps, epochs, costs)
    return Plan(epochs, steps, expected, False)
