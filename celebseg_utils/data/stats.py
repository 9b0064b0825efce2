"""Class-imbalance statistics of a prepared split and the class weights made from them.

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

Per-pixel weights made from a label map are in :mod:`~celebseg_utils.data.weight_maps`, the
bar chart in :func:`celebseg_utils.visualization.plots.plot_class_frequency`, the command in
:mod:`~celebseg_utils.data.stats_cli`.

>>> w = class_weights_from_counts([18, 12, 2], [32, 32, 16])
>>> [round(x, 4) for x in w["inv_freq"]]
[0.5926, 0.8889, 5.3333]
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.data import layout, storage
from celebseg_utils.errors import CelebsegError

#: ENet's constant c in w = 1 / ln(c + p); it caps the weights at 1 / ln(1.02) = 50.5.
ENET_C = 1.02
SCHEMES = ("inv_freq", "median_freq", "enet")


#: prepare keeps every label it finds (they are written atomically, so only outside damage
#: breaks one), so the damaged file has to go before a re-run remakes it.
_REMAKE = "delete it and re-run `celebseg prepare` with the same --out, which remakes missing labels"


def _read_label(path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(storage.read_bytes(path))) as im:
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


def stats_file(prepared, split: str = "train"):
    """``PREP/stats.json`` for train (what training reads), ``PREP/stats-<split>.json`` else."""
    name = "stats.json" if split == "train" else f"stats-{split}.json"
    return storage.join(prepared, name) if storage.is_remote(prepared) else Path(prepared) / name


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

    ids = layout.read_split(prepared_dir, split)
    if not ids:
        raise CelebsegError(f"split {split!r} of {prepared_dir} has no images: prepare more "
                            f"images or pick another --split")
    counts = np.zeros(L.NUM_CLASSES, dtype=np.int64)
    images = np.zeros(L.NUM_CLASSES, dtype=np.int64)
    present_pixels = np.zeros(L.NUM_CLASSES, dtype=np.int64)
    for k in tqdm(ids, desc=f"stats {split}", unit="img", disable=not progress):
        label = _read_label(storage.join(prepared_dir, "labels", f"{k}.png"))
        c = np.bincount(label.ravel(), minlength=L.NUM_CLASSES)
        counts += c
        images += c > 0
        present_pixels += (c > 0) * label.size
    total = int(counts.sum())
    stats = {
        "split": split,
        "split_fingerprint": layout.split_fingerprint(ids),
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
    storage.write_json(stats_file(prepared_dir, split), stats)
    return stats


def load_or_compute_stats(prepared_dir, split: str = "train", progress: bool = True) -> dict:
    """The stats of ``split`` from its json when it matches the current split file,
    else computed (and written) by :func:`compute_stats`.

    >>> # load_or_compute_stats("data/prepared")["class_weights"]["enet"]
    """
    path = stats_file(prepared_dir, split)
    try:
        stats = json.loads(storage.read_bytes(path))
    except Exception:  # noqa: BLE001 - missing or unreadable: compute it
        stats = None
    ids = layout.read_split(prepared_dir, split)
    if stats and stats.get("split_fingerprint") == layout.split_fingerprint(ids):
        return stats
    return compute_stats(prepared_dir, split, progress=progress)
