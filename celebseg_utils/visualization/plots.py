"""Figures of the reports: the confusion matrix and per-class IoU/F1 bars of an evaluation,
and the class frequencies of a split (``celebseg stats``).

>>> import numpy as np
>>> from celebseg_utils.visualization.plots import plot_confusion_matrix
>>> fig = plot_confusion_matrix(np.eye(19, dtype=int) * 10)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.visualization.viz import pyplot

#: Where ``celebseg stats`` writes its bar chart unless told otherwise.
CLASS_FREQUENCY_FIGURE = Path("figures") / "class_frequency.png"


def plot_confusion_matrix(cm, path=None, title: str = "confusion matrix (row-normalised)"):
    """Row-normalised confusion matrix (each true class's pixels sum to 1), class names on axes."""
    from celebseg_utils.visualization.viz import save_figure

    plt = pyplot()
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    names = [L.DISPLAY_NAMES[n] for n in L.CLASS_NAMES]
    fig, ax = plt.subplots(figsize=(8.5, 7.5))
    im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    for i in range(len(names)):
        if norm[i, i] > 0:
            ax.text(i, i, f"{norm[i, i]:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if norm[i, i] > 0.5 else "white")
    fig.colorbar(im, ax=ax, fraction=0.046)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_per_class(runs: dict, path=None, title: str = "per-class scores (shaded: rare classes)"):
    """Grouped bars of per-class IoU (top) and F1 (bottom) for one or more runs' results.

    Rare classes (labels.RARE_CLASSES) get a shaded band and a bold tick label.
    """
    from celebseg_utils.visualization.viz import save_figure

    plt = pyplot()
    names = list(runs)
    x = np.arange(L.NUM_CLASSES)
    width = 0.8 / max(1, len(names))
    fig, axes = plt.subplots(2, 1, figsize=(max(9, 0.55 * L.NUM_CLASSES * max(1, len(names)) ** 0.5), 6.5),
                             sharex=True)
    for ax, key in zip(axes, ("iou", "f1")):
        for j, name in enumerate(names):
            per_class = runs[name]["per_class"]
            values = [per_class.get(c, {}).get(key) for c in L.CLASS_NAMES]
            values = [np.nan if v is None else v for v in values]
            ax.bar(x + (j - (len(names) - 1) / 2) * width, values, width, label=name)
        for c in L.RARE_CLASSES:
            i = L.class_id(c)
            ax.axvspan(i - 0.45, i + 0.45, color="orange", alpha=0.15, lw=0)
        ax.set_ylim(0, 1)
        ax.set_ylabel(key.upper() if key == "iou" else "F1")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_title(title)
    if len(names) > 1:
        axes[0].legend(fontsize=8, ncol=min(4, len(names)))
    axes[1].set_xticks(x, [L.DISPLAY_NAMES[n] for n in L.CLASS_NAMES], rotation=60, ha="right",
                       fontsize=8)
    for tick, name in zip(axes[1].get_xticklabels(), L.CLASS_NAMES):
        if name in L.RARE_CLASSES:
            tick.set_fontweight("bold")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_class_frequency(stats: dict, path=CLASS_FREQUENCY_FIGURE, faces: str | None = None):
    """Log-scale bar chart of each class's share of the pixels (absent classes marked);
    saved atomically to ``path`` (None: not saved). Returns the figure.

    ``stats`` is what :func:`celebseg_utils.data.stats.compute_stats` returns.

    >>> # plot_class_frequency(compute_stats("data/prepared"), "figures/class_frequency.png")
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from celebseg_utils.visualization.viz import save_figure

    freq = np.asarray(stats["frequency"], dtype=np.float64)
    names = [L.DISPLAY_NAMES.get(n, n) for n in stats["class_names"]]
    order = np.argsort(-freq)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    floor = freq[freq > 0].min() / 3 if (freq > 0).any() else 1e-6
    shown = np.where(freq[order] > 0, freq[order], np.nan)
    ax.bar(range(len(order)), shown, color=L.OVERLAY_PALETTE[order] / 255.0, edgecolor="0.3", linewidth=0.5)
    for x, i in enumerate(order):
        if freq[i] == 0:
            ax.text(x, floor, "absent", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xticks(range(len(order)), [names[i] for i in order], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("share of pixels (log)")
    # ``faces``: "synthetic faces" or "real faces", when the caller knows which
    ax.set_title(f"Class frequency, {stats.get('split', 'train')} split "
                 f"({stats['num_images']} {faces or 'images'})")
    ax.grid(axis="y", which="major", alpha=0.3)
    if path is not None:
        save_figure(fig, path)
    return fig
