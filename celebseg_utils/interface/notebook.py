"""Small helpers the numbered notebooks need: the install command, badges, readable summaries.

The notebooks stay thin: they pick parameters and call the package. Where a notebook runs
and where its data and runs live (Colab, Kaggle, Drive) is :mod:`celebseg_utils.interface.workspace`.

>>> from celebseg_utils.interface import notebook
>>> notebook.install_command()
'pip install -q "celebseg[download] @ git+https://github.com/celebseg/celebseg"'
>>> notebook.colab_url("01_download_celebamask_hq.ipynb")
'https://colab.research.google.com/github/celebseg/celebseg/blob/main/notebooks/01_download_celebamask_hq.ipynb'
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from celebseg_utils.text import format_duration

#: GitHub ``owner/name`` of the project; the badges and the install command point here.
REPOSITORY = "celebseg/celebseg"
#: Branch the Colab badges open.
BRANCH = "main"
#: Environment variable that overrides the pip requirement of the notebooks' install cell.
SPEC_VARIABLE = "CELEBSEG_SPEC"


def package_spec(extras: Sequence[str] = ("download",), repository: str = REPOSITORY,
                 ref: str | None = None) -> str:
    """The pip requirement that installs the package from GitHub (``ref``: a branch or tag).

    No ``tf`` extra by default: Colab and Kaggle ship a GPU build of TensorFlow that pip
    must not replace. The notebooks' install cell uses this unless the environment variable
    :data:`SPEC_VARIABLE` names another requirement.

    >>> package_spec(())
    'celebseg @ git+https://github.com/celebseg/celebseg'
    >>> package_spec(("download",), "you/celebseg", ref="v0.2")
    'celebseg[download] @ git+https://github.com/you/celebseg@v0.2'
    """
    extra = f"[{','.join(extras)}]" if extras else ""
    return f"celebseg{extra} @ git+https://github.com/{repository}" + (f"@{ref}" if ref else "")


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

def _sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits in plain notation; a number with more whole
    digits than that keeps them all (thousands separated), never ``1.99e+03``.

    Tables and sentences print every share and weight this way, and every ratio is
    computed from the printed numbers, so that a reader who divides them gets the ratio
    printed beside them.

    >>> [_sig(v) for v in (0.027702, 3.8615, 249.5, 1985.4, 0.0)]
    ['0.0277', '3.86', '250', '1,985', '0']
    """
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    if decimals <= 0:
        return f"{round(x):,}"
    return f"{round(x, decimals):.{decimals}f}"


def _pct(x: float) -> str:
    """A share as a percentage to three significant digits: ``0.29912`` -> ``"29.9%"``."""
    return _sig(100 * x) + "%"


def _ratio(big: str, small: str) -> str:
    """The ratio of two printed numbers (``_sig``/``_pct`` strings), as printed itself.

    >>> _ratio("3.86", "0.0277"), _ratio("29.9%", "0.0151%")
    ('139', '1,980')
    """
    value = float(big.rstrip("%").replace(",", "")) / float(small.rstrip("%").replace(",", ""))
    return _sig(value)


def _shown_path(path) -> str:
    """``path`` as the notebook's user wrote it: relative to the working folder when inside
    it, ``~/...`` when under the home folder, so no output shows a machine's absolute path."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            return prefix + str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


def prepare_summary(summary: dict) -> Markdown:
    """One readable line of what ``prepare_dataset`` did (its returned ``summary``): label
    maps and their size, where they went, how long it took (rounded), the split sizes and
    the problems, instead of the raw dict with an absolute path and float seconds.

    >>> print(prepare_summary({"out": "data/prepared", "label_size": 512, "num_images": 20,
    ...     "written": 15, "existing": 5, "seconds": 0.2069, "problems": 0,
    ...     "splits": {"train": 16, "val": 2, "test": 2}}))
    Prepared **20** label maps of 512×512 px in `data/prepared` in 0.2 s (15 fused now, 5 kept from an earlier run). Splits: train **16** · val **2** · test **2**. No problems.
    """
    size = summary.get("label_size")
    made = f"{summary.get('written', 0):,} fused now"
    if summary.get("existing"):
        made += f", {summary['existing']:,} kept from an earlier run"
    splits = " · ".join(f"{name} **{count:,}**" for name, count in summary.get("splits", {}).items())
    problems = int(summary.get("problems", 0))
    trouble = ("No problems." if not problems else
               f"**{problems:,} images left out**, listed in "
               f"`{_shown_path(Path(summary['out']) / 'problems.txt')}`.")
    return Markdown(f"Prepared **{summary['num_images']:,}** label maps"
                    + (f" of {size}×{size} px" if size else "")
                    + f" in `{_shown_path(summary['out'])}` in "
                    f"{format_duration(summary['seconds'])} ({made}). Splits: {splits}. {trouble}")


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
                    + [_sig(weights[s][i]) for s in schemes])
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
        lines.append(f"The rarest class present, **{show(small)}**, has {_pct(freq[small])} of the pixels, "
                     f"{show(big)} {_pct(freq[big])}: **{_ratio(_pct(freq[big]), _pct(freq[small]))}×** fewer.")
    rare = [names.index(c) for c in L.RARE_CLASSES if c in names]
    if rare:
        parts = [f"{show(i)} {100 * images[i] / n:.0f}%" for i in rare]
        lines.append("Share of images that contain the rare accessories: " + ", ".join(parts) + ".")
    if absent:
        lines.append(f"Never present in this split: {', '.join(absent)} (nothing to learn from).")
    w = np.asarray(stats["class_weights"].get("median_freq", []), dtype=np.float64)
    if w.size and len(present):
        wp = w[present]
        low, high = _sig(wp.min()), _sig(wp.max())
        lines.append(f"Median-frequency weights then range from **{low}** "
                     f"({show(present[int(np.argmin(wp))])}) to **{high}** "
                     f"({show(present[int(np.argmax(wp))])}): a {_ratio(high, low)}-fold spread.")
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
    :func:`celebseg_utils.engine.results.averaged_label`: "mIoU (19 classes)", or
    "mIoU (17 of 19 classes)" when two classes had no score."""
    from celebseg_utils import labels as L
    from celebseg_utils.engine.results import averaged_label

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
    # The study's rule for "holds" (engine/holds.py), applied to these runs: one seed per
    # loss here, so it says that no difference can be judged to hold.
    from celebseg_utils.engine.holds import judge

    others = [r for r in runs if r != baseline]
    if others:
        versus = best_f1 if best_f1 != baseline else others[0]
        diff = _num(results[versus]["mean_f1"]) - _num(base["mean_f1"])
        lines.append(f"`{versus}` against `{baseline}`, mean F1 {diff:+.3f}: "
                     f"{judge([diff]).reason}. Every difference below is one run against one run.")
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
