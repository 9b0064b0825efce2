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

from celebseg_utils import labels as L
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_path, atomic_write_json
from celebseg_utils.study.report import run_dir, write_study_report

#: Arm name -> config overrides (the names are the study's contract).
ARMS: dict[str, list[str]] = {
    "sparse_ce": ["loss.name=sparse_ce"],
    "ce_onehot": ["loss.name=categorical_ce", "data.encoding=onehot"],
    "pixel_weighted_ce": ["loss.name=sparse_ce", "data.sample_weights=per_image"],
    "weighted_ce": ["loss.name=weighted_ce", "loss.class_weights=median_freq"],
    "dice": ["loss.name=dice"],
    "jaccard": ["loss.name=jaccard"],
    "ce_dice": ["loss.name=ce_dice"],
    "lovasz": ["loss.name=lovasz"],
    "focal": ["loss.name=focal"],
}
#: The six arms of the experiment the project grew from.
SEED_ARMS = ("sparse_ce", "ce_onehot", "pixel_weighted_ce", "weighted_ce", "dice", "jaccard")
BASELINE = "sparse_ce"
#: How many test faces the prediction grid shows (the first ids of the test split).
GRID_FACES = 4


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


def per_image_counts(model, prepared, split: str = "test", batch_size: int = 8,
                     keep_ids=(), progress: bool = False):
    """Per-image ``tp, fp, fn`` (N, 19) int64, the summed confusion matrix, and the label
    maps predicted for ``keep_ids`` — one pass over ``split`` at the model's input size."""
    from celebseg_utils.data import layout
    from celebseg_utils.data.pipeline import make_dataset
    from celebseg_utils.engine.evaluate import model_image_size
    from celebseg_utils.models.metrics import confusion_matrix_np

    ids = layout.read_split(Path(prepared), split)
    size = model_image_size(model)
    dataset = make_dataset(str(prepared), split, image_size=size, batch_size=batch_size)
    n, c = len(ids), L.NUM_CLASSES
    tp, fp, fn = (np.zeros((n, c), np.int64) for _ in range(3))
    cm = np.zeros((c, c), np.int64)
    kept, i = {}, 0
    for images, truth in dataset:
        pred = np.argmax(model.predict_on_batch(images), axis=-1)
        truth = truth.numpy()[..., 0]
        for t, p in zip(truth, pred):
            m = confusion_matrix_np(t, p)
            cm += m
            diag = np.diag(m)
            tp[i], fp[i], fn[i] = diag, m.sum(axis=0) - diag, m.sum(axis=1) - diag
            if ids[i] in keep_ids:
                kept[ids[i]] = p.astype(np.uint8)
            i += 1
    return {"ids": np.array(ids), "tp": tp, "fp": fp, "fn": fn}, cm, kept, size


def _run_one(prepared, out, arm, seed, preset, overrides, budget_minutes=None) -> dict:
    import keras

    from celebseg_utils.data import layout
    from celebseg_utils.engine.evaluate import write_report, _json_safe
    from celebseg_utils.models.metrics import scores_from_confusion
    from celebseg_utils.engine.train import load_trained_model, train

    budget = [] if budget_minutes is None else [f"time_budget_minutes={budget_minutes:.3f}"]
    config = study_config(prepared, out, arm, seed, preset, [*overrides, *budget])
    n_test = len(layout.read_split(Path(prepared), "test"))
    summary = train(config, progress=False, test_images=n_test)  # its test pass is budgeted
    summary.pop("model", None)
    keras.backend.clear_session()
    model = load_trained_model(summary["best_model"])
    grid_ids = layout.read_split(Path(prepared), "test")[:GRID_FACES]
    counts, cm, kept, size = per_image_counts(model, prepared, "test", keep_ids=set(grid_ids))
    folder = run_dir(out, arm, seed)
    with atomic_path(folder / "test_counts.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **counts)
    with atomic_path(folder / "test_faces.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{str(k): v for k, v in kept.items()})
    results = _json_safe({**scores_from_confusion(cm, class_names=L.CLASS_NAMES), "split": "test",
                          "num_images": int(len(counts["ids"])), "image_size": size,
                          "model": summary["best_model"], "arm": arm, "seed": seed,
                          "train_seconds": summary["seconds"],
                          "confusion_matrix": cm.tolist()})
    write_report(results, folder / "test" / "results.json")
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


def run_loss_study(prepared, out, preset: str = "cpu-real", arms=None, seeds: int = 3, overrides=(),
                   progress: bool = True, time_budget_minutes: float | None = None) -> dict:
    """Train and test every arm x seed (resumable), then write the report; returns study.json.

    ``time_budget_minutes``: the whole study's time; each run gets what is left over the
    runs left (:func:`share_budget`) as its ``time_budget_minutes`` and plans to fit it.

    >>> run_loss_study("data/prepared", "runs/study", arms="sparse_ce,dice", seeds=2)  # doctest: +SKIP
    """
    from celebseg_utils.engine.config import preset_config

    arms = parse_arms(arms)
    if int(seeds) < 1:
        raise CelebsegError(f"--seeds must be at least 1 (got {seeds})")
    preset_config(preset)  # a typo stops here, before any run
    for arm in arms:  # a bad --set stops before the first run too
        study_config(prepared, out, arm, 0, preset, overrides)
    if not (Path(prepared) / "prepare.json").is_file():
        raise CelebsegError(f"--prepared {prepared} is not a prepared folder (no prepare.json): "
                            f"run `celebseg prepare` first")
    settings = {"prepared": str(Path(prepared).resolve()), "preset": preset,
                "overrides": list(overrides)}
    saved = Path(out) / "study_args.json"
    if saved.exists():
        # Finished runs are skipped, not re-checked: runs made with other settings would
        # silently join this study's statistics.
        before = json.loads(saved.read_text())
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed:
            raise CelebsegError(f"--out {out} holds a study with other settings ("
                                + "; ".join(f"{k}: {before.get(k)} -> {settings[k]}" for k in changed)
                                + "); choose another --out (more --arms or --seeds may be added)")
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(saved, {**settings, "arms": arms, "seeds": int(seeds)})
    plan = [(arm, seed) for seed in range(int(seeds)) for arm in arms]
    todo = [(a, s) for a, s in plan if not (run_dir(out, a, s) / "test.json").exists()]
    print(f"study: {len(arms)} arms x {seeds} seeds = {len(plan)} runs, {len(plan) - len(todo)} "
          f"finished before, {len(todo)} to run -> {out}", flush=True)
    durations = []
    study_began = time.time()
    if time_budget_minutes is not None and float(time_budget_minutes) <= 0:
        raise CelebsegError(f"--time-budget-minutes must be positive (got {time_budget_minutes})")
    for i, (arm, seed) in enumerate(todo, start=1):
        began = time.time()
        share = (None if time_budget_minutes is None else
                 share_budget(float(time_budget_minutes), began - study_began, len(todo) - i + 1))
        if share is not None:
            print(f"[{i}/{len(todo)}] {arm} seed {seed}: {share:.1f} min of the study's "
                  f"{float(time_budget_minutes):.0f}", flush=True)
        results = _run_one(prepared, out, arm, seed, preset, overrides, share)
        durations.append(time.time() - began)
        left = float(np.median(durations)) * (len(todo) - i)
        print(f"[{i}/{len(todo)}] {arm} seed {seed}: mean F1 {results['mean_f1']:.3f}, mIoU "
              f"{results['miou']:.3f} in {durations[-1] / 60:.1f} min; ETA {left / 60:.0f} min "
              f"for the {len(todo) - i} left", flush=True)
    return write_study_report(out, arms=arms, seeds=int(seeds))


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
    parser.add_argument("--time-budget-minutes", type=float, default=None, metavar="M",
                        help="the whole study's time: each run gets what is left over the runs "
                             "left, and chooses its epochs and steps to fit")


def run_study(args) -> int:
    """Run ``celebseg study`` (see :func:`run_loss_study`)."""
    report = run_loss_study(args.prepared, args.out, preset=args.preset, arms=args.arms,
                       seeds=args.seeds, overrides=args.overrides,
                       time_budget_minutes=args.time_budget_minutes)
    print(f"study written to {Path(args.out) / 'study.md'} ({len(report['arms'])} arms, "
          f"{report['seeds_complete']} complete seeds)")
    return 0

