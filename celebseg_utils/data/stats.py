"""Class-imbalance statistics of a prepared split, class weights and per-pixel weights.

``compute_stats`` streams over the label PNGs of one split (one image in memory at a time)
and counts, per class ``c``: its pixels ``n_c``, the images it appears in, and the pixels
of those images ``P_c``. From these (``N`` = all pixels of the split, ``K`` = number of
classes present) come three established class-weight schemes:

* ``inv_freq``    ``w_c = N / (K * n_c)``: inverse frequency, scaled so that the average
  weight of a pixel of the split is 1 (the "balanced" scaling).
* ``median_freq`` ``w_c = median(f) / f_c`` with ``f_c = n_c / P_c`` (Eigen & Fergus 2015),
  median over the present classes.
* ``enet``        ``w_c = 1 / ln(1.02 + n_c / N)`` (Paszke et al. 2016, ENet), at most 50.5.

A class absent from the split gets weight **0** in every scheme (there is nothing to
weight; 0 keeps every loss finite, never inf or NaN) and is listed in ``absent_classes``.

Per-pixel weights (numpy here, TensorFlow twins ``*_tf`` used inside ``data``):

* ``per_image_pixel_weights(label)``: pixel weight ``N / (K * n_c)`` with counts of the
  image itself, i.e. each pixel weighted by the inverse of how many pixels of its class
  the image has, normalised so the image's weights average to 1.
* ``class_weight_map(label, class_weights)``: the global class weight of each pixel.

Worked example, a 4x4 label with 10 background, 4 skin (1) and 2 hair (13) pixels:
N = 16, K = 3, so background pixels weigh 16/30, skin 16/12, hair 16/6.

>>> import numpy as np
>>> label = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 13, 13]])
>>> [round(float(v), 4) for v in per_image_pixel_weights(label)[3]]
[1.3333, 1.3333, 2.6667, 2.6667]
>>> float(per_image_pixel_weights(label).mean())
1.0
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError

#: ENet's constant c in w = 1 / ln(c + p); it caps the weights at 1 / ln(1.02) = 50.5.
ENET_C = 1.02
SCHEMES = ("inv_freq", "median_freq", "enet")
DEFAULT_FIGURE = Path("figures") / "class_frequency.png"


# --- reading local or gs:// paths -------------------------------------------------------

def _is_remote(path) -> bool:
    return "://" in str(path)


def _join(base, *parts) -> str:
    return "/".join([str(base).rstrip("/")] + [str(p) for p in parts])


def read_bytes(path) -> bytes:
    """Bytes of a local file or of a ``gs://`` object (through ``tf.io.gfile``)."""
    if _is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path), "rb") as f:
            return f.read()
    return Path(path).read_bytes()


def prepared_info(prepared) -> dict:
    """``prepare.json`` of a local or ``gs://`` prepared folder."""
    if not _is_remote(prepared):
        return layout.read_prepare_info(Path(prepared))
    try:
        return json.loads(read_bytes(_join(prepared, "prepare.json")))
    except Exception as exc:  # noqa: BLE001 - NotFoundError, permission errors
        raise CelebsegError(f"cannot read {_join(prepared, 'prepare.json')}: is {prepared} a "
                            f"prepared folder (`celebseg prepare --out ...`)? ({exc})") from None


def split_ids(prepared, split: str) -> list[int]:
    """Image ids of ``split`` of a local or ``gs://`` prepared folder."""
    if not _is_remote(prepared):
        return layout.read_split(Path(prepared), split)
    if split not in layout.SPLITS:
        raise CelebsegError(f"unknown split {split!r}; use one of {', '.join(layout.SPLITS)}")
    return [int(x) for x in read_bytes(_join(prepared, "splits", f"{split}.txt")).split()]


#: prepare keeps every label it finds (they are written atomically, so only outside damage
#: breaks one), so the damaged file has to go before a re-run remakes it.
_REMAKE = "delete it and re-run `celebseg prepare` with the same --out, which remakes missing labels"


def _read_label(path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(read_bytes(path))) as im:
            label = np.asarray(im)
    except FileNotFoundError:
        raise CelebsegError(f"missing label {path}: re-run `celebseg prepare` with the same "
                            f"--out, which remakes missing labels") from None
    except (OSError, ValueError) as exc:
        raise CelebsegError(f"cannot read label {path} ({exc}): {_REMAKE}") from None
    if label.ndim != 2 or (label.size and label.max() >= L.NUM_CLASSES):
        raise CelebsegError(f"{path} is not a label map with ids 0..{L.NUM_CLASSES - 1}: {_REMAKE}")
    return label


# --- class weights ----------------------------------------------------------------------

def class_weights_from_counts(pixel_counts, present_pixel_counts) -> dict[str, list[float]]:
    """The three class-weight schemes from per-class pixel counts ``n_c`` and the pixel
    totals ``P_c`` of the images where ``c`` is present; absent classes get 0.

    Two 4x4 images, A = 10 background, 4 skin, 2 hair and B = 8 background, 8 skin:
    n = (18, 12, 2), P = (32, 32, 16), N = 32, K = 3.

    >>> w = class_weights_from_counts([18, 12, 2], [32, 32, 16])
    >>> [round(x, 4) for x in w["inv_freq"]]       # 32 / (3 * n)
    [0.5926, 0.8889, 5.3333]
    >>> [round(x, 4) for x in w["median_freq"]]    # f = (.5625, .375, .125), median .375
    [0.6667, 1.0, 3.0]
    >>> [round(x, 4) for x in w["enet"]]           # 1 / ln(1.02 + n / 32)
    [2.1786, 3.004, 12.6146]
    """
    n = np.asarray(pixel_counts, dtype=np.float64)
    p = np.asarray(present_pixel_counts, dtype=np.float64)
    present = n > 0
    out = {s: np.zeros_like(n) for s in SCHEMES}
    if present.any():
        total, k = n.sum(), present.sum()
        out["inv_freq"][present] = total / (k * n[present])
        f = n[present] / p[present]
        out["median_freq"][present] = np.median(f) / f
        out["enet"][present] = 1.0 / np.log(ENET_C + n[present] / total)
    return {s: [float(x) for x in v] for s, v in out.items()}


def _fingerprint(ids: list[int]) -> str:
    return hashlib.sha1(" ".join(map(str, ids)).encode()).hexdigest()[:16]


def stats_file(prepared, split: str = "train"):
    """``PREP/stats.json`` for train (what training reads), ``PREP/stats-<split>.json`` else."""
    name = "stats.json" if split == "train" else f"stats-{split}.json"
    return _join(prepared, name) if _is_remote(prepared) else Path(prepared) / name


def compute_stats(prepared_dir, split: str = "train", progress: bool = True) -> dict:
    """Pixel counts, frequencies, presence counts and class weights of one split.

    Streams over the label PNGs (one in memory at a time) and writes the result to
    ``PREP/stats.json`` (``stats-<split>.json`` for another split) atomically. Keys:
    ``class_names, pixel_counts, frequency, image_counts, present_pixel_counts, num_images,
    num_pixels, absent_classes, class_weights {inv_freq, median_freq, enet}, split,
    split_fingerprint``.

    >>> # stats = compute_stats("data/prepared"); stats["class_weights"]["median_freq"][13]
    """
    from tqdm.auto import tqdm

    ids = split_ids(prepared_dir, split)
    if not ids:
        raise CelebsegError(f"split {split!r} of {prepared_dir} has no images: prepare more "
                            f"images or pick another --split")
    counts = np.zeros(L.NUM_CLASSES, dtype=np.int64)
    images = np.zeros(L.NUM_CLASSES, dtype=np.int64)
    present_pixels = np.zeros(L.NUM_CLASSES, dtype=np.int64)
    for k in tqdm(ids, desc=f"stats {split}", unit="img", disable=not progress):
        label = _read_label(_join(prepared_dir, "labels", f"{k}.png"))
        c = np.bincount(label.ravel(), minlength=L.NUM_CLASSES)
        counts += c
        images += c > 0
        present_pixels += (c > 0) * label.size
    total = int(counts.sum())
    stats = {
        "split": split,
        "split_fingerprint": _fingerprint(ids),
        "class_names": list(L.CLASS_NAMES),
        "num_images": len(ids),
        "num_pixels": total,
        "pixel_counts": counts.tolist(),
        "frequency": (counts / max(total, 1)).tolist(),
        "image_counts": images.tolist(),
        "present_pixel_counts": present_pixels.tolist(),
        "absent_classes": [L.CLASS_NAMES[i] for i in np.flatnonzero(counts == 0)],
        "class_weights": class_weights_from_counts(counts, present_pixels),
    }
    _write_json(stats_file(prepared_dir, split), stats)
    return stats


def _write_json(path, obj) -> None:
    if _is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path), "w") as f:
            f.write(json.dumps(obj, indent=2) + "\n")
    else:
        from celebseg_utils.fileio import atomic_write_json

        atomic_write_json(path, obj)


def load_or_compute_stats(prepared_dir, split: str = "train", progress: bool = True) -> dict:
    """The stats of ``split`` from its json when it matches the current split file,
    else computed (and written) by :func:`compute_stats`.

    >>> # load_or_compute_stats("data/prepared")["class_weights"]["enet"]
    """
    path = stats_file(prepared_dir, split)
    try:
        stats = json.loads(read_bytes(path))
    except Exception:  # noqa: BLE001 - missing or unreadable: compute it
        stats = None
    if stats and stats.get("split_fingerprint") == _fingerprint(split_ids(prepared_dir, split)):
        return stats
    return compute_stats(prepared_dir, split, progress=progress)


# --- per-pixel weights ------------------------------------------------------------------

def _as_2d(label) -> np.ndarray:
    label = np.asarray(label)
    return label[..., 0] if label.ndim == 3 and label.shape[-1] == 1 else label


def per_image_pixel_weights(label) -> np.ndarray:
    """float32 (H, W): pixel of class c weighs ``N / (K * n_c)`` with ``n_c`` its class's
    pixels in this image, ``N`` the image's pixels, ``K`` the classes in it (mean 1).

    >>> [round(float(v), 4) for v in per_image_pixel_weights([[0, 0, 0, 5]])[0]]
    [0.6667, 0.6667, 0.6667, 2.0]
    """
    label = _as_2d(label).astype(np.intp)
    counts = np.bincount(label.ravel(), minlength=L.NUM_CLASSES).astype(np.float64)
    k = np.count_nonzero(counts)
    per_class = np.divide(label.size, k * counts, out=np.zeros_like(counts), where=counts > 0)
    return per_class[label].astype(np.float32)


def class_weight_map(label, class_weights) -> np.ndarray:
    """float32 (H, W): ``class_weights[label]``, the global weight of each pixel's class.

    >>> class_weight_map([[0, 13]], [0.5] + [1.0] * 12 + [3.0] + [1.0] * 5).tolist()
    [[0.5, 3.0]]
    """
    return np.asarray(class_weights, dtype=np.float32)[_as_2d(label).astype(np.intp)]


def per_image_pixel_weights_tf(label):
    """TensorFlow twin of :func:`per_image_pixel_weights`: (H, W) or (H, W, 1) labels give
    (H, W); a batch (B, H, W, 1) gives (B, H, W), each image on its own. XLA-compatible
    (counts by segment sum).

    >>> float(per_image_pixel_weights_tf([[0, 0, 0, 5]])[0, 3])
    2.0
    """
    import tensorflow as tf

    label = tf.cast(tf.convert_to_tensor(label), tf.int32)
    if label.shape.rank == 4 or (label.shape.rank == 3 and label.shape[-1] != 1):
        label = label[..., 0] if label.shape.rank == 4 else label
        batch, n = tf.shape(label)[0], tf.size(label[0])
        flat = tf.reshape(label, [batch, -1]) + L.NUM_CLASSES * tf.range(batch)[:, None]
    else:
        label = label[..., 0] if label.shape.rank == 3 else label
        batch, n, flat = 1, tf.size(label), label
    counts = tf.math.unsorted_segment_sum(tf.ones_like(flat, tf.float32), flat, L.NUM_CLASSES * batch)
    counts = tf.reshape(counts, [batch, L.NUM_CLASSES])
    k = tf.reduce_sum(tf.cast(counts > 0, tf.float32), axis=1, keepdims=True)
    per_class = tf.math.divide_no_nan(tf.cast(n, tf.float32), k * counts)
    return tf.reshape(tf.gather(tf.reshape(per_class, [-1]), flat), tf.shape(label))


def class_weight_map_tf(label, class_weights):
    """TensorFlow twin of :func:`class_weight_map` ((..., H, W) or (..., H, W, 1) labels).

    >>> class_weight_map_tf([[0, 13]], [0.5] + [1.0] * 12 + [3.0] + [1.0] * 5).numpy().tolist()
    [[0.5, 3.0]]
    """
    import tensorflow as tf

    label = tf.convert_to_tensor(label)
    if label.shape.rank in (3, 4) and label.shape[-1] == 1:
        label = label[..., 0]
    return tf.gather(tf.constant(class_weights, tf.float32), tf.cast(label, tf.int32))


# --- figure and CLI ---------------------------------------------------------------------

def plot_class_frequency(stats: dict, path=DEFAULT_FIGURE, faces: str | None = None):
    """Log-scale bar chart of each class's share of the pixels (absent classes marked);
    saved atomically to ``path`` (None: not saved). Returns the figure.

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


def stats_table(stats: dict) -> str:
    """A plain-text table: class, % of pixels, images with it, the three class weights."""
    rows = [f"{'id':>2} {'class':<10} {'pixels %':>9} {'images':>7} "
            + " ".join(f"{s:>11}" for s in SCHEMES)]
    w = stats["class_weights"]
    for i, name in enumerate(stats["class_names"]):
        rows.append(f"{i:>2} {name:<10} {100 * stats['frequency'][i]:>9.4f} "
                    f"{stats['image_counts'][i]:>7} " + " ".join(f"{w[s][i]:>11.3f}" for s in SCHEMES))
    return "\n".join(rows)


def add_stats_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``celebseg stats``: ``--prepared DIR [--split S] [--figure PATH]``."""
    parser.add_argument("--prepared", required=True, metavar="DIR",
                        help="folder written by `celebseg prepare`")
    parser.add_argument("--split", default="train", choices=layout.SPLITS,
                        help="split to count (default train, what training weights use)")
    parser.add_argument("--figure", default=str(DEFAULT_FIGURE), metavar="PATH",
                        help=f"bar chart to write (default {DEFAULT_FIGURE})")


def run_stats(args: argparse.Namespace) -> int:
    """Run ``celebseg stats``: compute, write the json and the figure, print a table."""
    stats = compute_stats(args.prepared, args.split, progress=True)
    plot_class_frequency(stats, args.figure)
    print(stats_table(stats))
    absent = ", ".join(stats["absent_classes"]) or "none"
    print(f"\n{stats['num_images']} images, {stats['num_pixels']:,} pixels; absent classes "
          f"(weight 0): {absent}\nwrote {stats_file(args.prepared, args.split)} and {args.figure}")
    return 0
