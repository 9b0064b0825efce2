"""Runs that differ only in the loss: one plan of steps shared by every loss, and the check
that the runs a comparison reads are controlled.

A time-budgeted run measures its own step time and plans its own epochs and steps, so two
losses trained "for 40 minutes" each train a different number of steps. The notebooks
therefore plan once: notebook 04's ``sparse_ce`` run plans within its budget, and notebooks
05 and 06 train exactly its plan (:func:`shared_plan_overrides`) with its seed, so that every
loss starts from the same initial weights, sees the same batches in the same order (both
follow ``seed``) and trains the same steps. :func:`compare_settings` then reads what each run
actually used (``config.yaml``, ``summary.json``) and lists every difference besides the
loss; notebook 07 prints it before any score.

>>> import tempfile
>>> shared_plan_overrides(tempfile.mkdtemp(), quiet=True)  # no plan there yet
[]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

#: Config keys a loss recipe sets (``models/recipes.py``): the only ones compared runs may
#: differ in.
LOSS_KEYS = ("loss.name", "loss.class_weights", "loss.kwargs", "data.encoding",
             "data.sample_weights")


def run_plan(run_dir) -> dict | None:
    """The epochs and steps per epoch a run trained (``summary.json``, once finished) or
    planned (``plan.json``, while it trains), with its seed; None when it has neither.

    >>> run_plan("/nonexistent") is None
    True
    """
    run = Path(run_dir)
    for name in ("summary.json", "plan.json"):
        try:
            data = json.loads((run / name).read_text())
            plan = {"epochs": int(data["epochs"]), "steps_per_epoch": int(data["steps_per_epoch"]),
                    "source": name}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        plan["steps"] = plan["epochs"] * plan["steps_per_epoch"]
        plan["seed"] = _seed(run)
        return plan
    return None


def _seed(run: Path) -> int | None:
    from celebseg_utils.engine.config import load_config

    try:
        return int(load_config(run / "config.yaml").seed)
    except Exception:  # no config yet: the caller's own seed stands
        return None


def shared_plan_overrides(reference_run, quiet: bool = False) -> list[str]:
    """``--set`` lines that make a run train exactly the plan of ``reference_run`` (notebook
    04's ``sparse_ce`` run): its epochs, steps per epoch and seed, no time budget of its own.
    ``[]`` when the reference has no plan yet (the run then plans its own, and says so).
    """
    plan = run_plan(reference_run)
    if plan is None:
        if not quiet:
            print(f"no plan in {Path(reference_run).name}/ yet (run notebook 04 first, with the "
                  f"same RUN_ROOT): this run plans its own steps, so notebook 07 will report "
                  f"the runs as not controlled")
        return []
    lines = [f"epochs={plan['epochs']}", f"steps_per_epoch={plan['steps_per_epoch']}",
             "time_budget_minutes=none"]
    if plan["seed"] is not None:
        lines.append(f"seed={plan['seed']}")
    if not quiet:
        print(f"the plan of {Path(reference_run).name}: {plan['epochs']} epochs x "
              f"{plan['steps_per_epoch']} steps = {plan['steps']:,} steps, seed {plan['seed']} "
              f"(from its {plan['source']}); this run trains the same")
    return lines


def compare_settings(run_dirs: Sequence) -> dict:
    """What the runs ``run_dirs`` share and where they differ besides the loss.

    Returns ``controlled`` (True when the only differences are :data:`LOSS_KEYS`), the
    ``differences`` as ``"key: value (run), value (run)"`` lines (the steps each run planned,
    from its summary or plan, included), and per run its ``steps`` and ``seed``.
    """
    from celebseg_utils.engine.config import HOW_KEYS, config_to_dict, flat_config, load_config

    names = [Path(r).name for r in run_dirs]
    settings, plans = {}, {}
    for name, run in zip(names, run_dirs):
        flat = flat_config(config_to_dict(load_config(Path(run) / "config.yaml")))
        settings[name] = {k: v for k, v in flat.items() if k not in HOW_KEYS and k not in LOSS_KEYS}
        plans[name] = run_plan(run)
    for name in names:
        plan = plans[name]
        settings[name]["planned steps"] = (None if plan is None else
                                           f"{plan['epochs']} x {plan['steps_per_epoch']}")
        # the plan, not the configured epochs, is what trained
        settings[name].pop("epochs", None)
        settings[name].pop("steps_per_epoch", None)
    keys = sorted(set().union(*(s.keys() for s in settings.values())))
    differences = []
    for key in keys:
        values = [settings[n].get(key) for n in names]
        if any(v != values[0] for v in values[1:]):
            differences.append(f"{key}: " + ", ".join(f"{v} ({n})" for v, n in zip(values, names)))
    return {"controlled": not differences, "differences": differences, "runs": names,
            "steps": {n: None if plans[n] is None else plans[n]["steps"] for n in names},
            "seed": {n: settings[n].get("seed") for n in names}}


def budget_text(check: dict, faces: str = "real faces") -> str:
    """What trained the compared runs, for a figure's title: the faces, the planned steps
    and the seed, or that they differ.

    >>> budget_text({"steps": {"a": 24, "b": 24}, "seed": {"a": 0, "b": 0}}, "synthetic faces")
    'synthetic faces, 24 planned steps and seed 0 for every loss, one seed each'
    >>> budget_text({"steps": {"a": 24, "b": 30}, "seed": {"a": 0, "b": 0}})
    'real faces, planned steps differ (a 24, b 30), one seed each'
    """
    steps, seeds = check["steps"], check["seed"]
    if len(set(steps.values())) == 1 and len(set(seeds.values())) == 1:
        count = next(iter(steps.values()))
        what = (f"{'steps not recorded' if count is None else f'{count:,} planned steps'} and "
                f"seed {next(iter(seeds.values()))} for every loss")
    elif len(set(steps.values())) != 1:
        what = "planned steps differ (" + ", ".join(f"{n} {s}" for n, s in steps.items()) + ")"
    else:
        what = "seeds differ (" + ", ".join(f"{n} {s}" for n, s in seeds.items()) + ")"
    return f"{faces}, {what}, one seed each"


def control_markdown(check: dict) -> str:
    """:func:`compare_settings` in sentences, for notebook 07.

    >>> print(control_markdown({"controlled": True, "differences": [], "runs": ["a", "b"],
    ...                         "steps": {"a": 24, "b": 24}, "seed": {"a": 0, "b": 0}}))
    **Controlled**: the 2 runs differ only in the loss: the same seed (0, so the same initial weights and the same batches in the same order), the same 24 planned steps, and every other setting alike.
    """
    runs = check["runs"]
    if check["controlled"]:
        seed = next(iter(check["seed"].values()))
        steps = next(iter(check["steps"].values()))
        steps_text = "steps not recorded" if steps is None else f"{steps:,} planned steps"
        return (f"**Controlled**: the {len(runs)} runs differ only in the loss: the same seed "
                f"({seed}, so the same initial weights and the same batches in the same order), "
                f"the same {steps_text}, and every other setting alike.")
    return ("**Not controlled**: besides the loss, these runs differ in\n\n"
            + "\n".join(f"- {d}" for d in check["differences"])
            + "\n\nA difference in their scores may come from these, not from the loss. Train "
              "notebooks 05 and 06 after 04 with the same `RUN_ROOT` and parameters: they then "
              "reuse 04's plan and seed.")
