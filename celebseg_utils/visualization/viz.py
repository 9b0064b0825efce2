"""Pictures of label maps: colourise with the official palette, overlay, side-by-side grids.

>>> import numpy as np
>>> from celebseg_utils.visualization import viz
>>> label = np.array([[0, 1], [13, 18]], dtype=np.uint8)
>>> viz.colorize(label)[1, 0].tolist()   # hair in the official palette
[0, 0, 204]
"""

from __future__ import annotations

from pathlib import Path

from typing import Sequence

import numpy as np

from celebseg_utils import labels as L


def colorize(label_map: np.ndarray, hidden_classes: Sequence[int] = ()) -> np.ndarray:
    """RGB uint8 picture of an (H, W) or (H, W, 1) label map in the official palette.

    Classes in ``hidden_classes`` are drawn black, like background.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim == 3 and label_map.shape[-1] == 1:
        label_map = label_map[..., 0]
    if label_map.ndim != 2:
        raise ValueError(f"expected an (H, W) label map, got shape {label_map.shape}")
    palette = L.PALETTE.copy()
    palette[list(hidden_classes)] = 0
    return palette[np.clip(label_map, 0, L.NUM_CLASSES - 1).astype(np.intp)]


def overlay(image: np.ndarray, label_map: np.ndarray, alpha: float = 0.5,
            hidden_classes: Sequence[int] = ()) -> np.ndarray:
    """Blend the colourised ``label_map`` over an RGB ``image`` (background stays the photo).

    ``image`` may be larger than the label map (CelebA-HQ photos are 1024 px, masks 512 px):
    the label map is scaled to the image with nearest neighbour.
    """
    image = np.asarray(image)
    label_map = np.asarray(label_map)
    if label_map.ndim == 3:
        label_map = label_map[..., 0]
    if label_map.shape != image.shape[:2]:
        label_map = resize_label(label_map, image.shape[:2])
    colors = colorize(label_map, hidden_classes).astype(np.float32)
    shown = (label_map != L.BACKGROUND_ID) & ~np.isin(label_map, list(hidden_classes))
    out = image[..., :3].astype(np.float32).copy()
    out[shown] = (1.0 - alpha) * out[shown] + alpha * colors[shown]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def resize_label(label_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) label map to ``size`` = (height, width)."""
    h, w = label_map.shape[:2]
    rows = (np.arange(size[0]) * h // size[0]).astype(np.intp)
    cols = (np.arange(size[1]) * w // size[1]).astype(np.intp)
    return label_map[rows[:, None], cols[None, :]]


def legend_handles(class_ids: Sequence[int] | None = None):
    """Matplotlib patches naming each class in its palette colour (for ``ax.legend``)."""
    from matplotlib.patches import Patch

    ids = range(L.NUM_CLASSES) if class_ids is None else class_ids
    return [Patch(color=L.PALETTE[i] / 255.0, label=L.DISPLAY_NAMES[L.CLASS_NAMES[i]]) for i in ids]


def plot_grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], path=None,
              row_labels: Sequence[str] | None = None, legend: bool = True, cell_size: float = 2.2):
    """A grid of pictures: one row per sample, one column per title (photo, truth, prediction).

    2-D integer arrays are colourised; RGB arrays are shown as they are. Saves to ``path``
    (atomically) when given, and returns the matplotlib figure.
    """
    import matplotlib

    if path is not None:
        _headless_backend(matplotlib)
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), len(titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_size * n_cols + (2.2 if legend else 0),
                                                      cell_size * n_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            picture = np.asarray(picture)
            if picture.ndim == 2 or (picture.ndim == 3 and picture.shape[-1] == 1):
                picture = colorize(picture)
            ax = axes[r][c]
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=8)
    if legend:
        fig.legend(handles=legend_handles(), loc="center right", fontsize=7, frameon=False)
        fig.subplots_adjust(right=1 - 2.2 / (cell_size * n_cols + 2.2))
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig, path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically (format from the suffix) and close it.

    A folder, or a suffix matplotlib cannot write, is a :class:`CelebsegError` (the
    temporary name would otherwise make matplotlib guess the format from ``.tmp``).
    """
    import matplotlib.pyplot as plt

    from celebseg_utils.errors import CelebsegError
    from celebseg_utils.fileio import atomic_path

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    try:
        if path.is_dir():
            raise CelebsegError(f"figure path {path} is a folder: give a file such as {path / 'figure.png'}")
        supported = fig.canvas.get_supported_filetypes()
        if fmt not in supported:
            raise CelebsegError(f"figure path {path}: cannot write {path.suffix or 'a file without a suffix'}; "
                                f"use one of {', '.join('.' + k for k in sorted(supported))}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt)
    finally:
        plt.close(fig)


def plot_training_curves(history: dict, path=None, metrics: Sequence[str] = ("loss", "miou")):
    """Train/validation curves per epoch from a Keras-style history dict.

    ``history`` maps metric names to per-epoch lists (``history.json`` of a run); each name
    in ``metrics`` gets a panel with its ``val_`` twin when present.
    """
    import matplotlib

    if path is not None:
        _headless_backend(matplotlib)
    import matplotlib.pyplot as plt

    shown = [m for m in metrics if m in history]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(4.2 * max(1, len(shown)), 3.2),
                             squeeze=False)
    for ax, name in zip(axes[0], shown):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], marker=".", label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker=".", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def _headless_backend(matplotlib) -> None:
    """Agg for scripts without a display, but never switch a notebook's inline backend."""
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg", force=False)
