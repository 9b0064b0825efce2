"""The pictures the numbered notebooks show, drawn from package data (tested like the rest).

Companion of :mod:`celebseg_utils.interface.notebook` (runtime, run folders, Markdown tables); every
function returns a matplotlib figure (or arrays for :func:`celebseg_utils.visualization.viz.plot_grid`)
so that a notebook cell is one call.

>>> from celebseg_utils.interface import notebook_figures as F
>>> fig = F.plot_history({"epoch": [0], "loss": [1.0], "val_loss": [1.1]})
>>> fig.axes[0].get_title()
'loss'
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.visualization import viz
from celebseg_utils.errors import CelebsegError

#: The backend ipykernel uses for figures in notebooks.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def notebook_pyplot():
    """pyplot, switched back to Jupyter's inline backend when something chose Agg.

    Writers that save figures to files (the evaluation report) select Agg; inside a
    notebook kernel that would silently hide every later figure of the notebook.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    if matplotlib.get_backend().lower() == "agg" and _in_kernel():
        plt.switch_backend(INLINE_BACKEND)
    return plt


def _in_kernel() -> bool:
    import sys

    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and "IPKernelApp" in getattr(shell, "config", {})


def load_photos(data_root, ids: Sequence[int], size: int | None = None) -> list:
    """RGB uint8 arrays of the raw photos ``ids`` (resized to ``size`` when given).

    >>> load_photos("/nonexistent", [])
    []
    """
    from PIL import Image

    photos = []
    for k in ids:
        path = layout.image_path(Path(data_root), k)
        if not path.exists():
            raise CelebsegError(f"missing photo {path}: check the data folder (notebook 01)")
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None:
                im = im.resize((size, size), Image.BILINEAR)
            photos.append(np.asarray(im))
    return photos


def read_label(prepared, k: int) -> np.ndarray:
    """The fused uint8 label map of image ``k`` of a prepared folder."""
    from PIL import Image

    path = layout.label_path(Path(prepared), k)
    if not path.exists():
        raise CelebsegError(f"missing label map {path}: run `celebseg prepare` (notebook 02) first")
    with Image.open(path) as im:
        return np.asarray(im)


def sample_rows(prepared, ids: Sequence[int], alpha: float = 0.5) -> list[list]:
    """``[photo, label map, overlay]`` per image of a prepared folder, for ``viz.plot_grid``.

    Photos are brought to the label-map size so that the three pictures line up.
    """
    from PIL import Image

    info = layout.read_prepare_info(Path(prepared))
    rows = []
    for k in ids:
        label = read_label(prepared, k)
        photo = load_photos(info["data_root"], [k], size=label.shape[0])[0]
        rows.append([photo, label, viz.overlay(photo, label, alpha=alpha)])
    return rows


def plot_class_grid(prepared, image_id: int, alpha: float = 0.8):
    """One image of a prepared folder, one class at a time (:func:`viz.class_grid`): each
    class present in magenta over the greyed photo, titled with its pixel share. The
    official palette gives several classes near-identical colours; this view cannot mix
    them up."""
    info = layout.read_prepare_info(Path(prepared))
    label = read_label(prepared, image_id)
    photo = load_photos(info["data_root"], [image_id], size=label.shape[0])[0]
    notebook_pyplot()
    return viz.class_grid(photo, label, alpha=alpha,
                          title=f"image {image_id}, one class at a time (share of its pixels)")


def viewer_split(viewer) -> str | None:
    """The split a :class:`~celebseg_utils.interface.widgets.MaskViewer` browses: its
    ``split`` attribute when it has one, else the split whose image list it holds; None
    when it browses every labelled image."""
    split = getattr(viewer, "split", None)
    if split:
        return split
    for name in layout.SPLITS:
        try:
            if layout.read_split(viewer.prepared, name) == list(viewer.ids):
                return name
        except (OSError, CelebsegError):
            continue
    return None


def plot_viewer(viewer):
    """A static picture of what ``viewer`` shows now, for renderings without a kernel: the
    overlays it draws, titled with the split, the image and its place in the split (and
    the IoU with a prediction), with a legend of the classes shown and their shares."""
    drawn = viewer.render()
    split = viewer_split(viewer)
    where = f"{split} split" if split else "all labelled images"
    title = (f"MaskViewer, {where}: image {viewer.image_id} "
             f"({viewer.slider.value + 1} of {len(viewer.ids)})")
    panels = "ground truth" + (f" | prediction, IoU {drawn['iou']:.3f}" if "iou" in drawn else "")
    hidden = list(viewer.hidden_classes)
    names = [L.DISPLAY_NAMES[L.CLASS_NAMES[i]] for i in hidden if i != L.BACKGROUND_ID]
    if names:  # background is never drawn, so hiding it changes nothing worth a word
        panels += f"; hidden: {', '.join(names)}" if len(names) <= 4 else f"; {len(names)} classes hidden"
    # The legend lists what the overlays show: hidden classes count as background there.
    maps = [np.where(np.isin(drawn[key], hidden), L.BACKGROUND_ID, drawn[key])
            for key in ("truth_label", "prediction_label") if key in drawn]
    plt = notebook_pyplot()
    canvas = drawn["canvas"]
    height = 3.6
    fig, ax = plt.subplots(figsize=(height * canvas.shape[1] / canvas.shape[0] + 2.6, height + 0.4),
                           layout="constrained")
    ax.imshow(canvas)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}\n{panels}", fontsize=10)
    viz.add_class_legend(ax, maps, fontsize=8.5,
                         title="pixels: " + " / ".join(["ground truth", "prediction"][:len(maps)]))
    return fig


def plot_history(history: dict, loss: str | None = None, title: str | None = None):
    """Loss and mIoU per epoch, training and validation (``train.train(cfg)["history"]``);
    the loss panel names ``loss`` (the run's ``cfg.loss.name``), ``title`` heads the figure.

    >>> fig = plot_history({"epoch": [0, 1], "loss": [1.2, 0.8], "val_loss": [1.3, 1.0],
    ...                     "miou": [0.2, 0.4], "val_miou": [0.18, 0.3]}, loss="dice")
    >>> [ax.get_title() for ax in fig.axes]
    ['loss (dice)', 'mIoU']
    """
    from matplotlib.ticker import MaxNLocator

    plt = notebook_pyplot()

    epochs = [e + 1 for e in history.get("epoch", range(len(history.get("loss", []))))]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_title = f"loss ({loss})" if loss else "loss"
    for ax, key, panel in ((axes[0], "loss", loss_title), (axes[1], "miou", "mIoU")):
        for prefix, style in (("", "-o"), ("val_", "--o")):
            values = history.get(prefix + key)
            if values:
                ax.plot(epochs[:len(values)], values, style, label=(prefix or "train_").rstrip("_"))
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(frameon=False)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _highlight_rare(ax, names: Sequence[str]) -> None:
    for tick, name in zip(ax.get_xticklabels(), names):
        if name in L.RARE_CLASSES:
            tick.set_color("crimson")
            tick.set_fontweight("bold")


def plot_class_weights(stats: dict, schemes: Sequence[str] = ("inv_freq", "median_freq", "enet")):
    """The class weights of each scheme side by side (log scale; rare classes in red).

    Absent classes (weight 0) get no bar.

    >>> w = {"inv_freq": [1.0] * 19, "median_freq": [0.5] * 19, "enet": [0.0] + [2.0] * 18}
    >>> fig = plot_class_weights({"class_names": list(L.CLASS_NAMES), "class_weights": w})
    >>> len(fig.axes[0].patches)
    57
    """
    plt = notebook_pyplot()

    names = list(stats["class_names"])
    x = np.arange(len(names))
    width = 0.8 / len(schemes)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    for j, scheme in enumerate(schemes):
        w = np.asarray(stats["class_weights"][scheme], dtype=np.float64)
        ax.bar(x + (j - (len(schemes) - 1) / 2) * width, np.where(w > 0, w, np.nan), width,
               label=scheme)
    ax.set_yscale("log")
    ax.axhline(1.0, color="0.4", linewidth=0.8)
    ax.set_xticks(x, [L.DISPLAY_NAMES.get(n, n) for n in names], rotation=60, ha="right", fontsize=8)
    _highlight_rare(ax, names)
    ax.set_ylabel("class weight (log)")
    ax.set_title("Class weights by scheme (rare classes in red)")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def pick_example(prepared, split: str = "train", scan: int = 200) -> int:
    """An image of ``split`` that shows many classes: the most rare accessories, then the
    most classes, among its first ``scan`` images (smallest id on ties)."""
    ids = layout.read_split(Path(prepared), split)[:scan]
    if not ids:
        raise CelebsegError(f"split {split!r} of {prepared} is empty: pick another split")
    rare = [L.class_id(c) for c in L.RARE_CLASSES]

    def score(k):
        present = np.unique(read_label(prepared, k))
        return (np.isin(rare, present).sum(), present.size, -k)

    return max(ids, key=score)


def plot_weight_maps(prepared, stats: dict, image_id: int | None = None, split: str = "train",
                     scheme: str = "median_freq"):
    """Label map, the ``scheme`` class-weight map and the per-image weight map of one image.

    ``image_id=None`` picks one with rare accessories (:func:`pick_example`). The three
    pictures are the same size: each colourbar and the label map's legend (the classes
    present, with their pixel shares) get columns of their own instead of taking width
    from a picture.
    """
    from matplotlib.colors import LogNorm

    plt = notebook_pyplot()

    from celebseg_utils.data import weight_maps as W

    k = pick_example(prepared, split) if image_id is None else int(image_id)
    label = read_label(prepared, k)
    maps = [(f"{scheme} weight per pixel", W.class_weight_map(label, stats["class_weights"][scheme])),
            ("per-image weight per pixel", W.per_image_pixel_weights(label))]
    # Constrained layout gives the legend and the colourbars margins of their own and keeps
    # the three pictures the same size (tight_layout let each colourbar shrink its picture).
    fig, pictures = plt.subplots(1, 3, figsize=(12, 3.1), layout="constrained")
    label_ax = pictures[0]
    label_ax.imshow(viz.colorize(label))
    label_ax.set_title(f"label map, image {k}", fontsize=10)
    viz.add_class_legend(label_ax, [label], title="pixels", fontsize=9)
    for ax, (title, weights) in zip(pictures[1:], maps):
        positive = weights[weights > 0]
        norm = LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 1.01))
        shown = ax.imshow(np.where(weights > 0, weights, np.nan), cmap="magma", norm=norm)
        fig.colorbar(shown, ax=ax, fraction=0.05, pad=0.02)
        ax.set_title(title, fontsize=10)
    for ax in pictures:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


# --------------------------------------------------------------------------- predictions

def predict_label(model, photo: np.ndarray, size: int, tta=None) -> np.ndarray:
    """Label map (``size`` x ``size``) of a keras model on one RGB photo: what
    ``celebseg predict`` writes for it (:func:`celebseg_utils.engine.inference.predict_labels`),
    resized with nearest neighbour when the photo is not ``size`` pixels square.

    >>> predict_label("runs/ce/best.keras", load_photos("data", [0])[0], 512).shape  # doctest: +SKIP
    (512, 512)
    """
    from celebseg_utils.engine import inference

    (label,) = inference.predict_labels(model, [photo], tta)
    return label if label.shape == (size, size) else viz.resize_label(label, (size, size))


def _split_samples(prepared, split: str, count: int):
    ids = layout.read_split(Path(prepared), split)[:count]
    if not ids:
        raise CelebsegError(f"split {split!r} of {prepared} is empty: pick another split")
    return ids, [(k, read_label(prepared, k)) for k in ids]


def plot_predictions(model, prepared, count: int = 3, split: str = "test",
                     title: str | None = None):
    """Photo, ground truth, prediction and its overlay for the first ``count`` images of
    ``split``; each row names the image and its IoU. ``model``: keras model or ``.keras`` path;
    ``title`` heads the figure (which faces, which loss, which budget).
    """
    from celebseg_utils.engine import inference
    from celebseg_utils.interface.widgets import image_iou

    notebook_pyplot()
    model = inference.load_model(model)
    info = layout.read_prepare_info(Path(prepared))
    rows, names = [], []
    for k, truth in _split_samples(prepared, split, count)[1]:
        photo = load_photos(info["data_root"], [k], size=truth.shape[0])[0]
        # the model sees the photo file as `celebseg predict` would, not the resized copy shown
        pred = predict_label(model, load_photos(info["data_root"], [k])[0], truth.shape[0])
        rows.append([photo, truth, pred, viz.overlay(photo, pred)])
        names.append(f"image {k}, IoU {image_iou(truth, pred):.2f}")
    fig = viz.plot_grid(rows, ["photo", "ground truth", "prediction", "overlay"], row_labels=names)
    if title:
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(w_pad=1.2, h_pad=0.6)
    return fig


def plot_run_predictions(run_dirs: Sequence, prepared, count: int = 3, split: str = "test",
                         model_file: str = "best.keras", title: str | None = None):
    """The same ``count`` images of ``split`` through the model of each run, side by side:
    photo, ground truth, then one column per run (titled with the run's name); ``title``
    heads the figure."""
    from celebseg_utils.engine import inference

    info = layout.read_prepare_info(Path(prepared))
    samples = _split_samples(prepared, split, count)[1]
    photos = [load_photos(info["data_root"], [k], size=t.shape[0])[0] for k, t in samples]
    rows = [[p, t] for p, (_, t) in zip(photos, samples)]
    # the model sees the photo files as `celebseg predict` would, not the resized copies shown
    originals = [load_photos(info["data_root"], [k])[0] for k, _ in samples]
    for run in run_dirs:
        model = inference.load_model(Path(run) / model_file)
        for row, photo, (_, truth) in zip(rows, originals, samples):
            row.append(predict_label(model, photo, truth.shape[0]))
    titles = ["photo", "ground truth"] + [Path(r).name for r in run_dirs]
    notebook_pyplot()
    fig = viz.plot_grid(rows, titles, row_labels=[f"image {k}" for k, _ in samples])
    if title:
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(w_pad=1.2, h_pad=0.6)
    return fig


# --------------------------------------------------------------------------- comparing runs

def plot_comparison(results: dict, metric: str = "f1", subtitle: str | None = None):
    """Per-class ``metric`` ("f1" or "iou") of several runs as grouped bars, the rare
    classes shaded and named in red. ``results``: ``{run name: results.json dict}``;
    ``subtitle``: what trained them (faces, steps, seeds), under the title.

    >>> r = {"ce": {"per_class": {"skin": {"f1": .9}, "hat": {"f1": .2}}},
    ...      "dice": {"per_class": {"skin": {"f1": .8}, "hat": {"f1": .5}}}}
    >>> [float(p.get_height()) for p in plot_comparison(r).axes[0].patches if p.get_width() < 0.5]
    [0.9, 0.2, 0.8, 0.5]
    """
    plt = notebook_pyplot()

    runs = list(results)
    names = list(results[runs[0]]["per_class"])
    x = np.arange(len(names))
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.55 * len(names) + 2), 3.8))
    for i, name in enumerate(names):
        if name in L.RARE_CLASSES:
            ax.axvspan(i - 0.5, i + 0.5, color="crimson", alpha=0.08, linewidth=0)
    for j, run in enumerate(runs):
        values = [np.nan if results[run]["per_class"][n][metric] is None
                  else results[run]["per_class"][n][metric] for n in names]
        ax.bar(x + (j - (len(runs) - 1) / 2) * width, values, width, label=run)
    ax.set_xticks(x, [L.DISPLAY_NAMES.get(n, n) for n in names], rotation=60, ha="right", fontsize=8)
    _highlight_rare(ax, names)
    label = "IoU" if metric == "iou" else metric.upper()
    ax.set_ylim(0, 1)
    ax.set_ylabel(label)
    ax.set_title(f"Per-class {label} by loss, test split (rare classes shaded)"
                 + (f"\n{subtitle}" if subtitle else ""))
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- your own photo

def framed_test_face(prepared, split: str = "test", scale: float = 0.45, degrees: float = 20.0,
                     shape: tuple[int, int] = (480, 720)) -> np.ndarray:
    """The first face of ``split``, shrunk by ``scale``, turned by ``degrees`` and put
    off-centre in a grey ``shape`` photo: how an ordinary photo differs from the aligned
    faces a CelebAMask-HQ model was trained on.

    >>> framed_test_face("data/prepared").shape  # doctest: +SKIP
    (480, 720, 3)
    """
    from celebseg_utils.face.align import warp

    info = layout.read_prepare_info(Path(prepared))
    k = _split_samples(prepared, split, 1)[0][0]
    photo = load_photos(info["data_root"], [k])[0]
    t = np.radians(degrees)
    h, w = photo.shape[:2]
    m = np.array([[scale * np.cos(t), -scale * np.sin(t), 0.0],
                  [scale * np.sin(t), scale * np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    # the face's middle to two thirds of the width, half the height
    middle = m[:2, :2] @ np.array([w / 2, h / 2])
    m[:2, 2] = np.array([shape[1] * 2 / 3, shape[0] / 2]) - middle
    warped, inside = warp(photo, m, shape)
    canvas = np.full(shape + (3,), 128, np.uint8)
    canvas[inside] = np.clip(warped[inside] + 0.5, 0, 255).astype(np.uint8)
    return canvas


def plot_own_photo(model, photo=None, prepared=None, tta: str | None = "flip"):
    """A photo parsed whole (``celebseg predict``) and face by face (``predict --align``).

    ``photo``: a path or an RGB array; None takes :func:`framed_test_face` of ``prepared``.
    Where ``--align`` finds no usable face, or the ``[align]`` extra is not installed, its
    panel shows the photo and says why instead of failing the notebook.

    >>> plot_own_photo("runs/dice/best.keras", "me.jpg")  # doctest: +SKIP
    <Figure size ...>
    """
    from celebseg_utils.engine import inference, predict

    if photo is None:
        if prepared is None:
            raise CelebsegError("plot_own_photo needs a photo, or a prepared folder to take "
                                "a test face from")
        photo = framed_test_face(prepared)
    elif isinstance(photo, (str, Path)):
        photo = predict.read_image(photo)
    photo = np.asarray(photo)[..., :3]
    model = inference.load_model(model)
    (labels,) = inference.predict_labels(model, [photo], tta)
    whole = viz.overlay(photo, labels)
    try:
        parse = predict.parse_photo(model, photo, tta=tta)
        aligned, title = parse.overlay, f"predict --align ({len(parse.faces)} face(s))"
    except CelebsegError as exc:
        aligned, title = photo, f"--align: {exc}"[:60]
        print(f"--align: {exc}")
    notebook_pyplot()
    return viz.plot_grid([[photo, whole, aligned]], ["photo", "predict (whole photo)", title],
                         legend=False, cell_size=3.2)
