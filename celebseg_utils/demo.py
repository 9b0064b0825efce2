"""The embedded default: the whole pipeline on synthetic faces, on CPU, in minutes.

``celebseg demo`` runs synth -> prepare -> stats -> train -> evaluate -> figures and prints
the evaluation's table (:func:`~celebseg_utils.engine.results.results_table`);
``OUT/results.json`` has the schema of ``celebseg evaluate``.
:func:`smoke_workspace` is the small shared dataset the notebooks use with ``SMOKE = True``.

>>> from celebseg_utils.demo import smoke_workspace
>>> ws = smoke_workspace("/tmp/celebseg-smoke", count=8, image_size=64)  # doctest: +SKIP
>>> sorted(ws)  # doctest: +SKIP
['data_root', 'prepared']
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError


def smoke_workspace(root, count: int = 48, image_size: int = 64, seed: int = 0,
                    progress: bool = False) -> dict:
    """A synthetic raw folder and its prepared twin under ``root``, made once and reused.

    Returns ``{"data_root": ROOT/raw, "prepared": ROOT/prepared}``. A workspace made with
    other ``count``/``image_size``/``seed`` is rebuilt rather than silently reused.
    """
    from celebseg_utils.data.prepare import prepare_dataset
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    root = Path(root)
    data_root, prepared = root / "raw", root / "prepared"
    wanted = {"count": count, "image_size": image_size, "seed": seed}
    stamp = root / "smoke.json"
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and layout.info_path(prepared).exists():
        return {"data_root": data_root, "prepared": prepared}
    if stamp.exists():
        # Labels of the old settings would be refused by prepare (other data); without the
        # stamp, a run killed during the rebuild resumes it (same seed, same bytes).
        stamp.unlink()
        shutil.rmtree(prepared, ignore_errors=True)
    write_synthetic_dataset(data_root, count, image_size=image_size, seed=seed, progress=progress)
    prepare_dataset(data_root, prepared, progress=progress)
    from celebseg_utils.fileio import atomic_write_json

    atomic_write_json(stamp, wanted)
    return {"data_root": data_root, "prepared": prepared}


# What the demo trains is the cpu-demo preset (engine.config.PRESETS): the loss and schedule
# that learn fastest from scratch on this CPU live there (measured; docs/demo.md).
DEMO_COUNT = 400
DEMO_IMAGE_SIZE = 128


def run_demo_pipeline(out="runs/demo", count: int = DEMO_COUNT, image_size: int = DEMO_IMAGE_SIZE,
                      epochs: int | None = None, seed: int = 0, overrides=(),
                      progress: bool = True) -> dict:
    """synth -> prepare -> stats -> train -> evaluate -> figures; returns the results dict.

    Every step reuses what an earlier, interrupted demo finished (the data, a completed or
    backed-up training run), so running it again continues instead of starting over.
    ``OUT/results.json`` has the schema of ``celebseg evaluate``; the figures go to
    ``OUT/figures/``.
    """
    import time

    from celebseg_utils.engine.config import resolve_config
    from celebseg_utils.engine.evaluate import evaluate_model
    from celebseg_utils.engine.results import results_table
    from celebseg_utils.fileio import atomic_write_json
    from celebseg_utils.data.stats import compute_stats
    from celebseg_utils.visualization.plots import plot_class_frequency
    from celebseg_utils.engine.train import train

    out = Path(out)
    figures = out / "figures"
    timings = {}
    began = time.time()

    def step(name):
        timings[name] = round(time.time() - began - sum(timings.values()), 1)

    # Options are checked before the minutes of synthesis, not after them.
    if epochs is not None and epochs < 1:
        raise CelebsegError(f"--epochs must be at least 1 (got {epochs})")
    resolve_config(preset="cpu-demo", overrides=overrides)
    print(f"[1/5] synthesising {count} faces at {image_size} px")
    ws = smoke_workspace(out / "data", count=count, image_size=image_size, seed=seed,
                         progress=progress)
    step("data")
    print("[2/5] class statistics of the train split")
    stats = compute_stats(ws["prepared"], progress=progress)
    plot_class_frequency(stats, figures / "class_frequency.png", faces="synthetic faces")
    step("stats")
    print("[3/5] training DeepLabV3+ MobileNetV3-Large on CPU")
    sets = [f"data.prepared={ws['prepared']}", f"run_dir={out / 'run'}", f"image_size={image_size}",
            f"seed={seed}", *overrides]
    if epochs is not None:
        sets.append(f"epochs={epochs}")
    config = resolve_config(preset="cpu-demo", overrides=sets)
    summary = train(config, progress=progress)
    step("train")
    print("[4/5] evaluating on the test split")
    results = evaluate_model(summary["model"], ws["prepared"], split="test",
                             out=out / "evaluation" / "results.json", progress=progress)
    step("evaluate")
    print("[5/5] figures")
    from celebseg_utils.visualization import viz

    from celebseg_utils.visualization import plots

    # Every demo figure says it shows synthetic faces, which loss and how long it trained.
    epochs = summary["epochs_completed"]
    what = (f"synthetic faces, {config.loss.name}, {epochs} epoch{'' if epochs == 1 else 's'} x "
            f"{summary['steps_per_epoch']} steps, {image_size} px")
    viz.plot_training_curves(summary["history"], figures / "training_curves.png",
                             loss=config.loss.name, title=f"Training curves ({what})")
    _prediction_grid(summary["model"], ws["prepared"], image_size, figures / "predictions.png",
                     title=f"Test faces ({what})")
    plots.plot_per_class({"demo model": results}, figures / "per_class.png",
                         title=f"Per-class scores, test split ({what}; shaded: rare classes)")
    plots.plot_confusion_matrix(results["confusion_matrix"], figures / "confusion_matrix.png",
                                title=f"Confusion matrix, row-normalised ({what})")
    step("figures")
    results = {**results, "demo": {"count": count, "image_size": image_size,
                                   "epochs": summary["epochs_completed"],
                                   "seconds": timings, "total_seconds": round(time.time() - began, 1),
                                   "config": str(Path(summary["run_dir"]) / "config.yaml")}}
    atomic_write_json(out / "results.json", results)
    print(results_table(results))
    print(f"results: {out / 'results.json'}\nfigures: {figures}")
    return results


def _prediction_grid(model, prepared, image_size: int, path, rows: int = 4,
                     title: str | None = None) -> None:
    import numpy as np

    from celebseg_utils.visualization import viz
    from celebseg_utils.data.pipeline import make_dataset

    images, truths = next(iter(make_dataset(prepared, "test", image_size=image_size,
                                            batch_size=rows)))
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    pictures = [[images[i].numpy().astype("uint8"), truths[i, ..., 0].numpy(), predicted[i]]
                for i in range(images.shape[0])]
    fig = viz.plot_grid(pictures, ["photo", "ground truth", "prediction"])
    if title:
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(w_pad=1.2, h_pad=0.6)
    viz.save_figure(fig, path)


def add_demo_arguments(parser) -> None:
    """Options of ``celebseg demo`` (none required).

    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_demo_arguments(p)
    >>> p.parse_args(["--epochs", "2", "--set", "loss.name=dice"]).set
    ['loss.name=dice']
    """
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--count", type=int, default=DEMO_COUNT, help="synthetic faces")
    parser.add_argument("--image-size", type=int, default=DEMO_IMAGE_SIZE, help="pixels")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra training config overrides, as for `celebseg train`")


def run_demo(args) -> int:
    """``celebseg demo``: :func:`run_demo_pipeline` with the parsed options; returns 0."""
    run_demo_pipeline(args.out, count=args.count, image_size=args.image_size, epochs=args.epochs,
                      seed=args.seed, overrides=args.set)
    return 0
