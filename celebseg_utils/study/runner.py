"""``celebseg study``: the loss study, every arm x seed trained and tested alike.

Each arm is a set of config overrides on one preset; everything else (model, data, steps,
learning rate, and for a given seed the initial weights and the batches) is identical::

    OUT/runs/<arm>/seed<k>/            the training run (``celebseg train``'s run folder)
    OUT/runs/<arm>/seed<k>/test.json   test-split scores (``celebseg evaluate``'s schema)
    OUT/runs/<arm>/seed<k>/test_counts.npz   per-image true/false positives and negatives
    OUT/runs/<arm>/seed<k>/test_faces.npz    predictions on the grid's test faces
    OUT/study.json  OUT/study.md  OUT/figures/*.png   the summary (see ``study_report``)

Re-running the same command skips finished runs (their ``test.json`` exists) and resumes
an interrupted one from its backup. Runs go seed by seed, every arm per seed, so a study
stopped early still compares every arm on the seeds it finished.

>>> sorted(ARMS)[:3]
['ce_dice', 'ce_onehot', 'dice']
>>> ARMS["pixel_weighted_ce"]
['loss.name=sparse_ce', 'data.sample_weights=per_image']
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

import numpy as np

from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_path, atomic_write_json
from celebseg_utils.study.report import result_dir, run_dir, write_study_report

from celebseg_utils.models.recipes import BASELINE, RECIPES, SEED_RECIPES as SEED_ARMS

#: Arm name -> config overrides, from the one table of loss recipes (``models/recipes.py``).
ARMS: dict[str, list[str]] = {name: recipe.overrides() for name, recipe in RECIPES.items()}
#: How many test faces the prediction grid shows (the first ids of the test split).
GRID_FACES = 4
#: Steps per epoch of a study run given ``--steps``: the learning curve's first point.
CURVE_EVERY = 250


def parse_arms(text) -> list[str]:
    """Arm names from ``"a,b"`` (None: the six arms of the seed experiment).

    >>> parse_arms("dice, sparse_ce")
    ['sparse_ce', 'dice']
    >>> parse_arms("dcie")
    Traceback (most recent call last):
    celebseg_utils.errors.CelebsegError: unknown arm 'dcie'; arms: sparse_ce, ce_onehot, pixel_weighted_ce, weighted_ce, dice, jaccard, ce_dice, lovasz, focal
    """
    if text is None:
        return list(SEED_ARMS)
    names = [a.strip() for a in (text.split(",") if isinstance(text, str) else text) if a.strip()]
    for name in names:
        if name not in ARMS:
            raise CelebsegError(f"unknown arm {name!r}; arms: {', '.join(ARMS)}")
    if not names:
        raise CelebsegError("--arms is empty: name at least one arm")
    return [a for a in ARMS if a in names]  # the canonical order, baseline first


def study_config(prepared, out, arm: str, seed: int, preset: str = "cpu-real", overrides=()):
    """The :class:`~celebseg_utils.config.TrainConfig` of one run of the study."""
    from celebseg_utils.engine.config import resolve_config

    return resolve_config(preset=preset, run_dir=str(run_dir(out, arm, seed)), overrides=[
        *overrides, *ARMS[arm], f"seed={seed}", f"data.prepared={Path(prepared).resolve()}"])


def budget_overrides(steps: int, every: int = CURVE_EVERY) -> list[str]:
    """The ``--set`` lines of a run of ``steps`` training steps with its learning curve.

    Epochs are ``every`` steps long (so the curve's points fall on epoch ends) and the curve
    is scored at ``every`` x 1, 2, 4, ... and at ``steps``.

    >>> budget_overrides(2000)
    ['steps_per_epoch=250', 'epochs=8', 'curve_steps=[250, 500, 1000, 2000]']
    >>> budget_overrides(3000)[-1]
    'curve_steps=[250, 500, 1000, 2000, 3000]'
    """
    steps = int(steps)
    if steps < 1:
        raise CelebsegError(f"--steps must be positive (got {steps})")
    if steps % every:
        every = steps  # one epoch, one point
    points, p = [], every
    while p < steps:
        points.append(p)
        p *= 2
    points.append(steps)
    return [f"steps_per_epoch={every}", f"epochs={steps // every}",
            f"curve_steps=[{', '.join(str(x) for x in points)}]"]


def _write_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def _run_one(prepared, out, arm, seed, preset, overrides, budget_minutes=None,
             results_root=None) -> dict:
    import keras

    from celebseg_utils.data import layout
    from celebseg_utils.engine.results import write_report
    from celebseg_utils.engine.scoring import PROTOCOLS, score_split
    from celebseg_utils.engine.inference import load_model
    from celebseg_utils.engine.train import train

    budget = [] if budget_minutes is None else [f"time_budget_minutes={budget_minutes:.3f}"]
    config = study_config(prepared, out, arm, seed, preset, [*overrides, *budget])
    test_ids = layout.read_split(Path(prepared), "test")
    summary = train(config, progress=False, test_images=len(test_ids))  # its test pass is budgeted
    summary.pop("model", None)
    keras.backend.clear_session()
    # The model at the run's step budget (its learning rate decayed to the end), not the best
    # validation checkpoint: the study compares losses at a number of steps.
    model = load_model(summary["final_model"])
    scored = score_split(model, prepared, "test", protocols=PROTOCOLS, ids=test_ids,
                         keep_ids=test_ids[:GRID_FACES])
    folder = result_dir(out, arm, seed, results_root)
    folder.mkdir(parents=True, exist_ok=True)
    steps = int(summary["epochs"]) * int(summary["steps_per_epoch"])
    extra = {"model": summary["final_model"], "arm": arm, "seed": seed, "steps": steps,
             "train_seconds": summary["seconds"]}
    curve = Path(summary["run_dir"]) / "curve"
    if curve.is_dir():  # the learning curve's points, beside the final scores
        for item in sorted(curve.iterdir()):
            if item.suffix in (".json", ".npz"):
                target = folder / "curve" / item.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(target) as tmp:
                    Path(tmp).write_bytes(item.read_bytes())
    for protocol in PROTOCOLS:
        suffix = "" if protocol == "model_size" else f"_{protocol}"
        s = scored[protocol]
        _write_npz(folder / f"test_counts{suffix}.npz", s.counts())
        _write_npz(folder / f"test_faces{suffix}.npz",
                   {str(k): v for k, v in s.predictions.items()})
        if suffix:
            atomic_write_json(folder / f"test{suffix}.json", s.results(**extra))
    results = scored["model_size"].results(**extra)
    write_report(results, Path(summary["run_dir"]) / "test" / "results.json")
    atomic_write_json(folder / "test.json", results)  # last: the run is finished
    del model
    keras.backend.clear_session()
    gc.collect()
    return results


def share_budget(total_minutes: float, elapsed_s: float, runs_left: int) -> float:
    """Minutes for the next run: what is left of the study's budget over the runs left.

    >>> share_budget(180, elapsed_s=3600, runs_left=3)  # 2 hours left, 3 runs
    40.0
    """
    return max(0.0, total_minutes - elapsed_s / 60.0) / max(1, runs_left)


def _resolved_settings(prepared, out, preset, overrides) -> dict:
    """The study's settings as the config they resolve to (the baseline arm's, without its
    run folder and seed): two spellings of the same settings compare equal."""
    from celebseg_utils.engine.config import config_to_dict

    resolved = config_to_dict(study_config(prepared, out, BASELINE, 0, preset, overrides))
    for key in ("run_dir", "seed", "loss", "curve_steps", "time_budget_minutes",
                "backup_every_minutes", "backup_every_steps"):
        resolved.pop(key, None)
    # the prepared folder is compared by name: the study resumes on another machine
    resolved["data"] = {k: v for k, v in resolved["data"].items()
                        if k not in ("encoding", "sample_weights", "prepared")}
    return resolved


def run_loss_study(prepared, out, preset: str = "cpu-real", arms=None, seeds: int = 3, overrides=(),
                   progress: bool = True, time_budget_minutes: float | None = None,
                   steps: int | None = None, results=None, max_runs: int | None = None,
                   curve_every: int = CURVE_EVERY) -> dict:
    """Train and test every arm x seed (resumable), then write the report; returns study.json.

    ``steps``: every run trains exactly that many steps and scores its learning curve on
    the test split on the way (:func:`budget_overrides`). ``results``: a folder for the
    small result files of each finished run (``<arm>/seed<k>/``: scores, per-image counts,
    the curve), kept apart from the runs' models so that it can be committed; a run whose
    results are there is finished, on any machine. ``max_runs``: stop after that many runs
    (the report covers what is finished).

    ``time_budget_minutes``: the whole study's time; each run gets what is left over the
    runs left (:func:`share_budget`) as its ``time_budget_minutes`` and plans to fit it.

    >>> run_loss_study("data/prepared", "runs/study", arms="sparse_ce,dice", seeds=2)  # doctest: +SKIP
    """
    from celebseg_utils.engine.config import preset_config

    arms = parse_arms(arms)
    if int(seeds) < 1:
        raise CelebsegError(f"--seeds must be at least 1 (got {seeds})")
    if max_runs is not None and int(max_runs) < 1:
        raise CelebsegError(f"--max-runs must be at least 1 (got {max_runs})")
    preset_config(preset)  # a typo stops here, before any run
    overrides = [*overrides, *([] if steps is None else budget_overrides(steps, curve_every))]
    for arm in arms:  # a bad --set stops before the first run too
        study_config(prepared, out, arm, 0, preset, overrides)
    if not (Path(prepared) / "prepare.json").is_file():
        raise CelebsegError(f"--prepared {prepared} is not a prepared folder (no prepare.json): "
                            f"run `celebseg prepare` first")
    if time_budget_minutes is not None and float(time_budget_minutes) <= 0:
        raise CelebsegError(f"--time-budget-minutes must be positive (got {time_budget_minutes})")
    settings = {"prepared": str(Path(prepared).resolve()), "preset": preset,
                "overrides": list(overrides), "steps": steps,
                "config": _resolved_settings(prepared, out, preset, overrides)}
    saved = Path(out) / "study_args.json"
    if results is not None:
        saved = Path(results) / "study_args.json"
    if saved.exists():
        # Finished runs are skipped, not re-checked: runs made with other settings would
        # silently join this study's statistics. The resolved configs are compared, so the
        # same settings in another order (or spelling) are the same study.
        before = json.loads(saved.read_text())
        keys = ["preset", "config"] if "config" in before else ["preset", "overrides"]
        if Path(before.get("prepared", "")).name != Path(settings["prepared"]).name:
            keys.append("prepared")
        changed = [k for k in keys if before.get(k) != settings[k]]
        if changed:
            raise CelebsegError(f"{saved.parent} holds a study with other settings ("
                                + "; ".join(_describe_change(k, before.get(k), settings[k])
                                            for k in changed)
                                + "); choose another --out (more --arms or --seeds may be added)")
    Path(out).mkdir(parents=True, exist_ok=True)
    saved.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(saved, {**settings, "arms": arms, "seeds": int(seeds)})
    plan = [(arm, seed) for seed in range(int(seeds)) for arm in arms]
    todo = [(a, s) for a, s in plan if not (result_dir(out, a, s, results) / "test.json").exists()]
    print(f"study: {len(arms)} arms x {seeds} seeds = {len(plan)} runs, {len(plan) - len(todo)} "
          f"finished before, {len(todo)} to run -> {results or out}", flush=True)
    if max_runs is not None:
        todo = todo[:int(max_runs)]
    durations = []
    study_began = time.time()
    for i, (arm, seed) in enumerate(todo, start=1):
        began = time.time()
        share = (None if time_budget_minutes is None else
                 share_budget(float(time_budget_minutes), began - study_began, len(todo) - i + 1))
        if share is not None:
            print(f"[{i}/{len(todo)}] {arm} seed {seed}: {share:.1f} min of the study's "
                  f"{float(time_budget_minutes):.0f}", flush=True)
        outcome = _run_one(prepared, out, arm, seed, preset, overrides, share, results)
        durations.append(time.time() - began)
        left = float(np.median(durations)) * (len(todo) - i)
        print(f"[{i}/{len(todo)}] {arm} seed {seed}: mean F1 {outcome['mean_f1']:.3f}, mIoU "
              f"{outcome['miou']:.3f} in {durations[-1] / 60:.1f} min; ETA {left / 60:.0f} min "
              f"for the {len(todo) - i} left", flush=True)
    return write_study_report(results or out, arms=arms, seeds=int(seeds), runs_root=results)


def _describe_change(key, before, after) -> str:
    if key == "config" and isinstance(before, dict) and isinstance(after, dict):
        from celebseg_utils.engine.config import TrainConfig, config_diff, config_from_dict

        def as_config(d):
            try:
                return config_from_dict({k: v for k, v in d.items()}, base=TrainConfig())
            except CelebsegError:
                return None

        a, b = as_config(before), as_config(after)
        if a is not None and b is not None:
            return ", ".join(config_diff(a, b)) or "config"
    return f"{key}: {before} -> {after}"


def add_study_arguments(parser) -> None:
    """``celebseg study --prepared DIR --out DIR [--preset NAME] [--arms a,b] [--seeds N] [--set K=V]``."""
    parser.add_argument("--prepared", required=True, metavar="DIR", help="a prepared folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="where runs and the report go")
    parser.add_argument("--preset", default="cpu-real", metavar="NAME",
                        help="the training preset every arm shares (default cpu-real)")
    parser.add_argument("--arms", default=None, metavar="A,B,...",
                        help=f"arms to run (default the six of the seed experiment: "
                             f"{','.join(SEED_ARMS)}); all: {','.join(ARMS)}")
    parser.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per arm (default 3)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value of every run, e.g. --set epochs=1")
    parser.add_argument("--steps", type=int, default=None, metavar="N",
                        help="train every run exactly N steps, scoring the test split's learning "
                             "curve at 250, 500, 1000, ... and N steps on the way")
    parser.add_argument("--curve-every", type=int, default=CURVE_EVERY, metavar="N",
                        help=f"with --steps: the learning curve's first point and epoch length "
                             f"(default {CURVE_EVERY}); points at N, 2N, 4N, ... and --steps")
    parser.add_argument("--results", default=None, metavar="DIR",
                        help="keep each finished run's small result files here (scores, "
                             "per-image counts, curve), apart from the models in --out: a "
                             "folder to commit; runs found there count as finished")
    parser.add_argument("--max-runs", type=int, default=None, metavar="N",
                        help="stop after N runs (the report covers the finished ones)")
    parser.add_argument("--time-budget-minutes", type=float, default=None, metavar="M",
                        help="the whole study's time: each run gets what is left over the runs "
                             "left, and chooses its epochs and steps to fit")


def run_study(args) -> int:
    """Run ``celebseg study`` (see :func:`run_loss_study`)."""
    report = run_loss_study(args.prepared, args.out, preset=args.preset, arms=args.arms,
                            seeds=args.seeds, overrides=args.overrides,
                            time_budget_minutes=args.time_budget_minutes,
                            steps=getattr(args, "steps", None),
                            results=getattr(args, "results", None),
                            max_runs=getattr(args, "max_runs", None),
                            curve_every=getattr(args, "curve_every", CURVE_EVERY))
    where = getattr(args, "results", None) or args.out
    print(f"study written to {Path(where) / 'study.md'} ({len(report['arms'])} arms, "
          f"{report['seeds_complete']} complete seeds)")
    return 0

