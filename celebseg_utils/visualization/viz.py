"""Pictures of label maps: colourise, overlay, side-by-side grids.

Pictures use :data:`celebseg_utils.labels.OVERLAY_PALETTE`, in which neighbouring parts get
colours far apart (:func:`palette_contrast`); ``palette=labels.PALETTE`` gives the official
colours, which label maps saved in colour keep.

>>> import numpy as np
>>> from celebseg_utils.visualization import viz
>>> label = np.array([[0, 1], [13, 12]], dtype=np.uint8)
>>> viz.colorize(label)[1].tolist()   # hair keeps its official blue; lower lip is white here
[[0, 0, 204], [255, 255, 255]]
>>> viz.colorize(label, palette=L.PALETTE)[1].tolist()   # the official palette: two blues
[[0, 0, 204], [0, 0, 153]]
"""

from __future__ import annotations

from pathlib import Path

from typing import Sequence

import numpy as np

from celebseg_utils import labels as L


def colorize(label_map: np.ndarray, hidden_classes: Sequence[int] = (),
             palette: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 picture of an (H, W) or (H, W, 1) label map, in ``palette`` (default
    :data:`~celebseg_utils.labels.OVERLAY_PALETTE`; ``labels.PALETTE`` for the official one).

    Classes in ``hidden_classes`` are drawn black, like background.
    """
    label_map = np.asarray(label_map)
    if label_map.ndim == 3 and label_map.shape[-1] == 1:
        label_map = label_map[..., 0]
    if label_map.ndim != 2:
        raise ValueError(f"expected an (H, W) label map, got shape {label_map.shape}")
    palette = (L.OVERLAY_PALETTE if palette is None else np.asarray(palette, np.uint8)).copy()
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


#: The colour of a one-class view (:func:`highlight`, :func:`class_grid`): one strong colour
#: over a greyed photo cannot be confused with another class.
HIGHLIGHT = (255, 0, 255)


def palette_contrast(palette: np.ndarray) -> dict:
    """How well ``palette`` tells classes apart: the smallest CIE76 colour difference
    (Euclidean distance in CIELAB, D65) between two parts that touch in a face
    (:data:`~celebseg_utils.labels.NEIGHBOURS`) and between any two of the 18 parts, each
    with the pair that has it.

    >>> official, overlay = palette_contrast(L.PALETTE), palette_contrast(L.OVERLAY_PALETTE)
    >>> round(official["neighbours"]), official["neighbours_pair"], round(overlay["neighbours"])
    (19, ('skin', 'r_ear'), 75)
    """
    rgb = np.asarray(palette, np.float64) / 255.0
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                             [0.0193, 0.1192, 0.9505]]).T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    lab = np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], -1)

    def smallest(pairs):
        d, a, b = min((float(np.linalg.norm(lab[L.class_id(a)] - lab[L.class_id(b)])), a, b)
                      for a, b in pairs)
        return d, (a, b)

    facial = [L.CLASS_NAMES[i] for i in L.FACIAL_CLASS_IDS]
    every = [(a, b) for i, a in enumerate(facial) for b in facial[i + 1:]]
    near, near_pair = smallest(L.NEIGHBOURS)
    anyd, any_pair = smallest(every)
    return {"neighbours": near, "neighbours_pair": near_pair, "any": anyd, "any_pair": any_pair}


def class_shares(label_map: np.ndarray) -> dict[int, float]:
    """Share of the pixels of each class present in ``label_map``, in class-id order.

    >>> class_shares(np.array([[0, 13], [13, 13]]))
    {0: 0.25, 13: 0.75}
    """
    label_map = np.asarray(label_map)
    counts = np.bincount(np.clip(label_map, 0, L.NUM_CLASSES - 1).astype(np.intp).ravel(),
                         minlength=L.NUM_CLASSES)
    total = max(int(counts.sum()), 1)
    return {i: int(c) / total for i, c in enumerate(counts) if c > 0}


def format_share(share: float) -> str:
    """A pixel share as a short percentage, two significant digits (a legend has little room).

    >>> [format_share(x) for x in (1.0, 0.3141, 0.0042, 0.000051, 0.0)]
    ['100%', '31%', '0.42%', '0.0051%', '0%']
    """
    pct = 100.0 * float(share)
    if pct >= 99.5:
        return "100%"
    if pct == 0:
        return "0%"
    if pct < 0.001:
        return "<0.001%"
    return f"{float(f'{pct:.2g}'):g}%"


def legend_handles(class_ids: Sequence[int] | None = None, labels: Sequence[str] | None = None):
    """Matplotlib patches naming each class in its overlay-palette colour (for ``ax.legend``);
    ``labels`` replaces the class names (one per id)."""
    from matplotlib.patches import Patch

    ids = list(range(L.NUM_CLASSES) if class_ids is None else class_ids)
    names = labels if labels is not None else [L.DISPLAY_NAMES[L.CLASS_NAMES[i]] for i in ids]
    return [Patch(facecolor=L.OVERLAY_PALETTE[i] / 255.0, edgecolor="0.5", linewidth=0.5, label=name)
            for i, name in zip(ids, names)]


def legend_entries(label_maps: Sequence[np.ndarray], background: bool = False) -> list[tuple[int, str]]:
    """``(class id, text)`` for each class present in any of ``label_maps``, in id order.

    The text is the class name and its pixel share in each map ("hair 31% / 28%" for a
    truth and a prediction), so that a reader can tell apart classes of similar colours;
    with more than two maps only the first map's share is given ("–": absent there).
    Background is left out unless ``background``.

    >>> truth = np.array([[0, 13], [13, 13]]); pred = np.array([[0, 13], [13, 12]])
    >>> legend_entries([truth, pred])
    [(12, 'lower lip 0% / 25%'), (13, 'hair 75% / 50%')]
    """
    shares = [class_shares(m) for m in label_maps]
    ids = sorted(set().union(*shares)) if shares else []
    if not background:
        ids = [i for i in ids if i != L.BACKGROUND_ID]
    shown = shares if len(shares) <= 2 else shares[:1]
    entries = []
    for i in ids:
        parts = [format_share(s.get(i, 0.0)) for s in shown]
        if len(shares) > 2 and i not in shares[0]:
            parts = ["–"]
        entries.append((i, f"{L.DISPLAY_NAMES[L.CLASS_NAMES[i]]} {' / '.join(parts)}"))
    return entries


def add_class_legend(ax, label_maps: Sequence[np.ndarray], title: str | None = None,
                     fontsize: float = 9, background: bool = False):
    """A legend beside ``ax`` (on its right) of the classes present in ``label_maps``, each
    with its pixel share (:func:`legend_entries`); two columns past 8 classes so that it
    stays as tall as a picture. Returns the legend, or None when no class is present."""
    entries = legend_entries(label_maps, background=background)
    if not entries:
        return None
    ids, texts = zip(*entries)
    return ax.legend(handles=legend_handles(ids, texts), loc="center left", bbox_to_anchor=(1.02, 0.5),
                     fontsize=fontsize, title=title, title_fontsize=fontsize, frameon=False,
                     ncol=1 if len(entries) <= 8 else 2, handlelength=1.2, handletextpad=0.5,
                     columnspacing=0.8, borderaxespad=0.0, labelspacing=0.3)


def highlight(image: np.ndarray, label_map: np.ndarray, class_id: int,
              color: Sequence[int] = HIGHLIGHT, alpha: float = 0.8) -> np.ndarray:
    """One class at a time: the photo in pale grey, the pixels of ``class_id`` in ``color``.

    ``alpha`` is the colour's opacity over the grey (1: solid). ``label_map`` is scaled to
    the photo with nearest neighbour, as in :func:`overlay`.

    >>> photo = np.full((2, 2, 3), 100, np.uint8)
    >>> highlight(photo, np.array([[13, 0], [0, 0]]), 13, alpha=1.0)[:, :, 0].tolist()
    [[255, 178], [178, 178]]
    """
    image = np.asarray(image)[..., :3].astype(np.float32)
    label_map = np.asarray(label_map)
    if label_map.ndim == 3:
        label_map = label_map[..., 0]
    if label_map.shape != image.shape[:2]:
        label_map = resize_label(label_map, image.shape[:2])
    # Luminance, pulled half-way to white: the face stays recognisable but has no colour
    # that could be mistaken for the highlight.
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.repeat((0.5 * grey + 127.5)[..., None], 3, axis=-1)
    mask = label_map == class_id
    out[mask] = (1.0 - alpha) * out[mask] + alpha * np.asarray(color, np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def class_grid(image: np.ndarray, label_map: np.ndarray, classes: Sequence[int] | None = None,
               columns: int = 6, cell_size: float = 1.9, color: Sequence[int] = HIGHLIGHT,
               alpha: float = 0.8, title: str | None = None, path=None):
    """Small multiples: one panel per class, its pixels in ``color`` over the greyed photo
    (:func:`highlight`), titled with the class name and its pixel share.

    ``classes`` defaults to every class present but background, in id order. Saves to
    ``path`` when given; returns the figure.
    """
    import matplotlib

    if path is not None:
        headless_backend(matplotlib)
    import matplotlib.pyplot as plt

    shares = class_shares(label_map)
    ids = [i for i in shares if i != L.BACKGROUND_ID] if classes is None else [int(c) for c in classes]
    n_cols = max(1, min(columns, len(ids)))
    n_rows = max(1, -(-len(ids) // n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_size * n_cols, (cell_size + 0.3) * n_rows + 0.3),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), ids):
        ax.imshow(highlight(image, label_map, i, color=color, alpha=alpha))
        ax.set_title(f"{L.DISPLAY_NAMES[L.CLASS_NAMES[i]]} {format_share(shares.get(i, 0.0))}",
                     fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], path=None,
              row_labels: Sequence[str] | None = None, legend: bool = True, cell_size: float = 2.4):
    """A grid of pictures: one row per sample, one column per title (photo, truth, prediction).

    2-D integer arrays are label maps, colourised in the overlay palette; RGB arrays are
    shown as they are. With ``legend``, each row gets a legend on its right of the classes
    present in its label maps, with their pixel shares (:func:`add_class_legend`; the
    legend's title names the maps). Saves to ``path`` (atomically) when given, and returns
    the matplotlib figure.
    """
    import matplotlib

    if path is not None:
        headless_backend(matplotlib)
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), len(titles)
    legend_width = 2.6 if legend else 0.0
    fig, axes = plt.subplots(n_rows, n_cols, figsize=((cell_size + 0.2) * n_cols + legend_width,
                                                      cell_size * n_rows + 0.3), squeeze=False)
    for r, row in enumerate(rows):
        maps, map_titles = [], []
        for c, picture in enumerate(row):
            picture = np.asarray(picture)
            if picture.ndim == 2 or (picture.ndim == 3 and picture.shape[-1] == 1):
                maps.append(picture[..., 0] if picture.ndim == 3 else picture)
                map_titles.append(titles[c])
                picture = colorize(picture)
            ax = axes[r][c]
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=10)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=9)
        if legend and maps:
            named = map_titles if len(maps) <= 2 else map_titles[:1]
            add_class_legend(axes[r][-1], maps, title="pixels: " + " / ".join(named), fontsize=8.5)
    fig.tight_layout(w_pad=1.2, h_pad=0.6)  # a visible gap between neighbouring pictures
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


#: How figures name the history's metrics.
METRIC_NAMES = {"loss": "loss", "miou": "mIoU", "mean_f1": "mean F1", "accuracy": "pixel accuracy"}


def plot_training_curves(history: dict, path=None, metrics: Sequence[str] = ("loss", "miou"),
                         loss: str | None = None, title: str | None = None):
    """Train/validation curves per epoch from a Keras-style history dict.

    ``history`` maps metric names to per-epoch lists (``history.json`` of a run); each name
    in ``metrics`` gets a panel with its ``val_`` twin when present, titled in words
    (:data:`METRIC_NAMES`), the loss panel with ``loss``'s name. ``title`` heads the figure.

    >>> fig = plot_training_curves({"loss": [1.0, 0.5], "miou": [0.1, 0.3]}, loss="ce_dice")
    >>> [ax.get_title() for ax in fig.axes]
    ['loss (ce_dice)', 'mIoU']
    """
    import matplotlib

    if path is not None:
        headless_backend(matplotlib)
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
        shown_name = METRIC_NAMES.get(name, name)
        ax.set_title(f"{shown_name} ({loss})" if name == "loss" and loss else shown_name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def headless_backend(matplotlib) -> None:
    """Agg for scripts without a display, but never switch a notebook's inline backend."""
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg", force=False)


def pyplot():
    """``matplotlib.pyplot`` for a figure that is saved to a file: Agg when nothing chose a
    backend yet (:func:`headless_backend`), a notebook's inline backend kept.

    >>> pyplot().__name__
    'matplotlib.pyplot'
    """
    import matplotlib

    headless_backend(matplotlib)
    import matplotlib.pyplot as plt

    return plt
