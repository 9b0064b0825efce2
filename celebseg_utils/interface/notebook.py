"""Small helpers the numbered notebooks need: where am I running, where do runs go.

The notebooks stay thin: they pick parameters and call the package. What depends on the
runtime (Colab, Kaggle or a local Jupyter) lives here, so it is tested like the rest.

>>> from celebseg_utils.interface import notebook
>>> notebook.install_command()
'pip install -q "celebseg[download] @ git+https://github.com/celebseg/celebseg"'
>>> notebook.colab_url("01_download_celebamask_hq.ipynb")
'https://colab.research.google.com/github/celebseg/celebseg/blob/main/notebooks/01_download_celebamask_hq.ipynb'
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path
from typing import Mapping, Sequence

#: GitHub ``owner/name`` of the project; the badges and the install command point here.
REPOSITORY = "celebseg/celebseg"
#: Branch the Colab badges open.
BRANCH = "main"
#: Where Colab mounts Google Drive.
DRIVE_MOUNT = Path("/content/drive")
#: Folder inside "My Drive" that keeps the runs across Colab disconnects.
DRIVE_RUN_FOLDER = "celebseg/runs"


def in_colab(modules: Mapping | None = None, environ: Mapping | None = None) -> bool:
    """True inside Google Colab (its kernel imports ``google.colab``; it sets ``COLAB_RELEASE_TAG``).

    >>> in_colab(modules={}, environ={})
    False
    >>> in_colab(modules={}, environ={"COLAB_RELEASE_TAG": "release-colab_20250101"})
    True
    """
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    return "google.colab" in modules or "COLAB_RELEASE_TAG" in environ


def in_kaggle(environ: Mapping | None = None) -> bool:
    """True inside a Kaggle notebook (Kaggle sets ``KAGGLE_KERNEL_RUN_TYPE``).

    >>> in_kaggle(environ={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}), in_kaggle(environ={})
    (True, False)
    """
    environ = os.environ if environ is None else environ
    return bool(environ.get("KAGGLE_KERNEL_RUN_TYPE"))


def in_hosted(modules: Mapping | None = None, environ: Mapping | None = None) -> bool:
    """True in Colab or Kaggle: runtimes that ship TensorFlow but not this package.

    >>> in_hosted(modules={}, environ={})
    False
    """
    return in_colab(modules, environ) or in_kaggle(environ)


def package_spec(extras: Sequence[str] = ("download",), repository: str = REPOSITORY) -> str:
    """The pip requirement that installs the package from GitHub.

    No ``tf`` extra by default: Colab and Kaggle ship a GPU build of TensorFlow that pip
    must not replace.

    >>> package_spec(())
    'celebseg @ git+https://github.com/celebseg/celebseg'
    """
    extra = f"[{','.join(extras)}]" if extras else ""
    return f"celebseg{extra} @ git+https://github.com/{repository}"


def install_command(extras: Sequence[str] = ("download",), repository: str = REPOSITORY) -> str:
    """The shell command a hosted runtime needs before ``import celebseg_utils`` works.

    >>> install_command(("download", "export"))
    'pip install -q "celebseg[download,export] @ git+https://github.com/celebseg/celebseg"'
    """
    return f'pip install -q "{package_spec(extras, repository)}"'


def colab_url(notebook_file: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The address that opens ``notebooks/<notebook_file>`` of the repository in Colab.

    >>> colab_url("07_compare_losses.ipynb", repository="me/celebseg", branch="dev")
    'https://colab.research.google.com/github/me/celebseg/blob/dev/notebooks/07_compare_losses.ipynb'
    """
    return (f"https://colab.research.google.com/github/{repository}/blob/{branch}/"
            f"notebooks/{Path(notebook_file).name}")


def colab_badge(notebook_file: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """Markdown for the "Open in Colab" badge of a notebook.

    >>> colab_badge("01_download_celebamask_hq.ipynb").startswith("[![Open In Colab]")
    True
    """
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(notebook_file, repository, branch)})")


def drive_run_root(drive_mount: Path | str = DRIVE_MOUNT, mount: bool = True,
                   folder: str = DRIVE_RUN_FOLDER) -> Path | None:
    """``My Drive/<folder>`` when Google Drive is (or, in Colab, can be) mounted, else None.

    In Colab with ``mount=True`` this asks for permission once per session; refusing it
    is not an error (runs then stay on the runtime's disk, with a warning).

    >>> drive_run_root("/nonexistent-drive", mount=False) is None
    True
    """
    my_drive = Path(drive_mount) / "MyDrive"
    if not my_drive.is_dir() and mount and in_colab():
        try:
            from google.colab import drive  # type: ignore[import-not-found]

            drive.mount(str(drive_mount))
        except Exception as exc:  # the user may decline; training still works locally
            warnings.warn(f"Google Drive not mounted ({exc}); runs stay on this runtime's disk "
                          "and are lost when it disconnects", stacklevel=2)
    if my_drive.is_dir():
        return my_drive / folder
    return None


def mount_drive_run_dir(name: str, root: Path | str | None = None, mount: bool = True,
                        drive_mount: Path | str = DRIVE_MOUNT, local_root: Path | str = "runs") -> Path:
    """The folder a training notebook writes run ``name`` to (created if missing).

    ``root`` wins when given. Otherwise the run goes to Google Drive when it is mounted
    (so a Colab disconnect loses at most an epoch: training resumes from the last
    checkpoint there), else to ``local_root`` (``runs/`` beside the notebook).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> mount_drive_run_dir("sparse_ce", root=d).name
    'sparse_ce'
    """
    if root is not None:
        base = Path(root)
    else:
        base = drive_run_root(drive_mount, mount=mount) or Path(local_root)
    run_dir = base / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


#: The preset and overrides that make SMOKE training runs tiny enough for a CPU in seconds.
SMOKE_PRESET = "cpu-demo"
SMOKE_OVERRIDES = ("image_size=64", "batch_size=4", "epochs=1", "steps_per_epoch=2",
                   "tensorboard=false")
#: Run name -> the ``--set`` overrides that choose its loss (the runs of notebooks 04-06).
RUN_LOSSES = {
    "sparse_ce": ("loss.name=sparse_ce",),
    "weighted_ce": ("loss.name=weighted_ce", "loss.class_weights=median_freq"),
    "dice": ("loss.name=dice",),
    "jaccard": ("loss.name=jaccard",),
}
_NOTEBOOK_OF_RUN = {"sparse_ce": "04", "weighted_ce": "05", "dice": "06", "jaccard": "06"}
RESULTS_FILE = "results.json"


def split_size(prepared, split: str = "test") -> int:
    """Images in one split of a prepared folder (0 when the split file is missing): what a
    training run counts for the test evaluation that follows it.

    >>> split_size("/nonexistent", "test")
    0
    """
    path = Path(prepared) / "splits" / f"{split}.txt"
    return len(path.read_text().split()) if path.is_file() else 0


def ensure_runs(names: Sequence[str], prepared, root: Path | str | None = None,
                smoke: bool = False, progress: bool = True) -> list[Path]:
    """The run folders ``names`` under the run root, each holding a test ``results.json``.

    A run trained but not yet evaluated is evaluated on the test split. A run missing
    altogether is an error that names the notebook that trains it, except with
    ``smoke=True``, where a tiny one (``SMOKE_PRESET`` + ``SMOKE_OVERRIDES``) is trained
    here, so that notebook 07 also runs on its own.

    >>> ensure_runs(["sparse_ce"], "prepared", root="/tmp/none")  # doctest: +SKIP
    Traceback (most recent call last):
    CelebsegError: run /tmp/none/sparse_ce has no trained model: run notebook 04 ...
    """
    from celebseg_utils.errors import CelebsegError

    runs = []
    for name in names:
        run = mount_drive_run_dir(name, root=root)
        if not (run / RESULTS_FILE).exists():
            model = run / "best.keras"
            if not (run / "summary.json").exists():
                if not smoke:
                    which = _NOTEBOOK_OF_RUN.get(name, "04-06")
                    raise CelebsegError(
                        f"run {run} has no trained model: run notebook {which} first (with the "
                        f"same RUN_ROOT), or remove {name!r} from RUNS")
                model = _train_smoke_run(name, prepared, run, progress)
            from celebseg_utils.engine.evaluate import evaluate_model

            evaluate_model(model, prepared, split="test", out=run / RESULTS_FILE, progress=progress)
        runs.append(run)
    return runs


def _train_smoke_run(name: str, prepared, run: Path, progress: bool) -> Path:
    from celebseg_utils.engine.config import resolve_config
    from celebseg_utils.engine.train import train

    losses = RUN_LOSSES.get(name, (f"loss.name={name}",))
    cfg = resolve_config(preset=SMOKE_PRESET, run_dir=str(run),
                         overrides=[f"data.prepared={prepared}", *losses, *SMOKE_OVERRIDES])
    return Path(train(cfg, progress=progress)["best_model"])


# --------------------------------------------------------------------------- display helpers

class Markdown(str):
    """A string that Jupyter renders as Markdown (and that prints as plain text elsewhere).

    >>> Markdown("**bold**")._repr_markdown_()
    '**bold**'
    """

    def _repr_markdown_(self) -> str:
        return str(self)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: str | None = None) -> Markdown:
    """A Markdown table; ``align`` is one letter per column, ``l`` or ``r`` (default: text left,
    numbers right).

    >>> print(markdown_table(["class", "f1"], [["hair", "0.91"]], align="lr"))
    | class | f1 |
    |:--|--:|
    | hair | 0.91 |
    """
    align = align or "l" + "r" * (len(header) - 1)
    rule = "|" + "|".join(":--" if a == "l" else "--:" for a in align) + "|"
    lines = ["| " + " | ".join(map(str, header)) + " |", rule]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return Markdown("\n".join(lines))


# --------------------------------------------------------------------------- class statistics

def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if x >= 1e-4 else f"{100 * x:.4f}%"


def frequency_table(stats: dict) -> Markdown:
    """Per class: share of pixels, images containing it, and the three class weights."""
    from celebseg_utils import labels as L

    n = max(int(stats["num_images"]), 1)
    weights = stats["class_weights"]
    schemes = [s for s in ("inv_freq", "median_freq", "enet") if s in weights]
    rows = []
    for i, name in enumerate(stats["class_names"]):
        rare = " (rare)" if name in L.RARE_CLASSES else ""
        rows.append([f"{i} {L.DISPLAY_NAMES.get(name, name)}{rare}", _pct(stats["frequency"][i]),
                     f"{int(stats['image_counts'][i])} ({100 * stats['image_counts'][i] / n:.0f}%)"]
                    + [f"{weights[s][i]:.2f}" for s in schemes])
    return markdown_table(["class", "pixels", "images"] + schemes, rows)


def imbalance_summary(stats: dict) -> Markdown:
    """A few sentences that state the imbalance of ``stats`` (from ``stats.compute_stats``)
    with its own numbers: what the largest classes cover, how rare the rarest is, how often
    the rare accessories appear, and the spread of the median-frequency weights.
    """
    import numpy as np

    from celebseg_utils import labels as L

    names = list(stats["class_names"])
    freq = np.asarray(stats["frequency"], dtype=np.float64)
    images = np.asarray(stats["image_counts"], dtype=np.float64)
    n = max(int(stats["num_images"]), 1)
    show = lambda i: L.DISPLAY_NAMES.get(names[i], names[i])  # noqa: E731
    order = np.argsort(-freq)
    top3 = order[:3]
    present = [i for i in order if freq[i] > 0]
    absent = [show(i) for i in range(len(names)) if freq[i] == 0]
    lines = [f"On these {n} images, **{', '.join(show(i) for i in top3)}** cover "
             f"**{_pct(freq[top3].sum())}** of all pixels."]
    if len(present) >= 2:
        big, small = present[0], present[-1]
        lines.append(f"The rarest class present, **{show(small)}**, has {_pct(freq[small])} of the pixels: "
                     f"**{freq[big] / freq[small]:,.0f}×** fewer than {show(big)}.")
    rare = [names.index(c) for c in L.RARE_CLASSES if c in names]
    if rare:
        parts = [f"{show(i)} {100 * images[i] / n:.0f}%" for i in rare]
        lines.append("Share of images that contain the rare accessories: " + ", ".join(parts) + ".")
    if absent:
        lines.append(f"Never present in this split: {', '.join(absent)} (nothing to learn from).")
    w = np.asarray(stats["class_weights"].get("median_freq", []), dtype=np.float64)
    if w.size and len(present):
        wp = w[present]
        lines.append(f"Median-frequency weights then range from **{wp.min():.2f}** "
                     f"({show(present[int(np.argmin(wp))])}) to **{wp.max():.1f}** "
                     f"({show(present[int(np.argmax(wp))])}): a {wp.max() / wp.min():,.0f}-fold spread.")
    return Markdown("\n\n".join(lines))


# --------------------------------------------------------------------------- results

def _num(value) -> float:
    """A score as a float; None (what strict-JSON results hold for "no score") becomes NaN."""
    return float("nan") if value is None else float(value)


def _score(value) -> str:
    value = _num(value)
    return "–" if math.isnan(value) else f"{value:.3f}"


# --------------------------------------------------------------------------- comparing runs

def comparison_summary(results: dict, baseline: str | None = None) -> Markdown:
    """What the numbers of these runs say, in sentences: the best run overall, and for each
    rare class the best run and its gain in F1 (and recall) over ``baseline`` (default: the
    first run). Each mIoU / mean F1 says how many classes that run averaged, as in
    :func:`celebseg_utils.engine.evaluate.averaged_label`: "mIoU (19 classes)", or
    "mIoU (17 of 19 classes)" when two classes had no score."""
    from celebseg_utils import labels as L
    from celebseg_utils.engine.evaluate import averaged_label

    runs = list(results)
    baseline = baseline or runs[0]
    base = results[baseline]
    show = lambda n: L.DISPLAY_NAMES.get(n, n)  # noqa: E731
    best_miou = max(runs, key=lambda r: _num(results[r]["miou"]))
    best_f1 = max(runs, key=lambda r: _num(results[r]["mean_f1"]))
    lines = [f"Best {averaged_label(results[best_miou], 'miou')}: **{best_miou}** "
             f"({_score(results[best_miou]['miou'])}); best "
             f"{averaged_label(results[best_f1], 'mean_f1')}: **{best_f1}** "
             f"({_score(results[best_f1]['mean_f1'])}). Baseline `{baseline}`: "
             f"{averaged_label(base, 'miou')} {_score(base['miou'])}, "
             f"{averaged_label(base, 'mean_f1')} {_score(base['mean_f1'])}."]
    items = []
    for name in L.RARE_CLASSES:
        if name not in base["per_class"]:
            continue
        f1 = {r: _num(results[r]["per_class"][name]["f1"]) for r in runs}
        if any(math.isnan(v) for v in f1.values()):
            items.append(f"- **{show(name)}**: not in the test split, nor predicted (no score)")
            continue
        top = max(runs, key=f1.get)  # the first run wins ties, so the baseline if listed first
        rec = _num(results[top]["per_class"][name].get("recall"))
        rec0 = _num(base["per_class"][name].get("recall"))
        if top == baseline:
            items.append(f"- **{show(name)}**: best F1 {f1[top]:.3f} with `{baseline}` itself "
                         f"(recall {rec0:.3f})")
        else:
            items.append(f"- **{show(name)}**: best F1 {f1[top]:.3f} with `{top}` "
                         f"({f1[top] - f1[baseline]:+.3f} over `{baseline}`; recall "
                         f"{rec0:.3f} → {rec:.3f})")
    if items:
        lines.append("Rare classes:\n\n" + "\n".join(items))
    return Markdown("\n\n".join(lines))
