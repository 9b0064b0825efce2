"""The pictures that explain DeepLabV3+, drawn from measurements of the project's own model.

Each figure has a measuring function (numbers, JSON-safe) and a plotting function (a
matplotlib figure, saved when ``path`` is given), so that ``scripts/make_model_figures.py``
writes the committed figures and their numbers, and notebook 04 draws the same pictures in
one call per cell. The measurements themselves are :mod:`celebseg_utils.models.explain`'s.

- :func:`conv_stack_fields` + :func:`model_field` -> :func:`plot_receptive_fields`;
- :func:`aspp_table` -> :func:`plot_aspp_branches`;
- :func:`stride_oracle_f1` + ``explain.feature_map_sizes`` -> :func:`plot_output_stride`;
- :func:`skip_ablation_scores` -> :func:`plot_skip_connection`.

>>> from celebseg_utils.interface import model_figures as MF
>>> [(f["rates"], f["support"], f["analytic"]) for f in MF.conv_stack_fields(((1, 1, 1), (2, 2, 2)))]
[([1, 1, 1], 7, 7), ([2, 2, 2], 13, 13)]
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.models import explain
from celebseg_utils.visualization import viz
from celebseg_utils.interface.notebook_figures import notebook_pyplot

#: Thin parts: a few pixels across at 128 px, where the stride-4 skip should matter most.
THIN_CLASSES = ("l_brow", "r_brow", "u_lip", "l_lip", "ear_r", "neck_l")
#: Dilation-rate stacks of the receptive-field figure: none, constant 2, growing (1, 2, 3).
DEFAULT_STACKS = ((1, 1, 1), (2, 2, 2), (1, 2, 3))



def _finish(fig, path, title: str = ""):
    """Title, then save: the figures use the constrained layout, which makes room for the
    title above the panels' own titles."""
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        viz.save_figure(fig, path)
    return fig


# --------------------------------------------------------------------------- receptive field


def conv_stack_fields(stacks: Sequence[Sequence[int]] = DEFAULT_STACKS, size: int = 33) -> list[dict]:
    """Per stack of 3x3 convolutions: ``rates``, the measured ``support`` (side of the
    non-zero input gradient of the centre output pixel), the ``analytic`` side
    ``1 + 2 * sum(rates)``, ``taps_read`` (input pixels with a non-zero gradient) and the
    ``gradient`` itself ((size, size) float array; dropped by :func:`json_ready`).

    >>> [f["taps_read"] for f in conv_stack_fields(((1, 1, 1), (2, 2, 2)), size=21)]
    [49, 49]
    """
    out = []
    centre = size // 2
    for rates in stacks:
        rates = [int(r) for r in rates]
        gradient = explain.input_gradient(explain.conv_stack(rates, size),
                                          np.zeros((size, size, 1), np.float32), centre, centre, 0)
        out.append({"rates": rates, "support": explain.support_size(gradient),
                    "analytic": explain.analytic_receptive_field(rates),
                    "taps_read": int(np.count_nonzero(gradient)), "gradient": gradient})
    return out


def model_field(model, image: np.ndarray, row: int, col: int) -> dict:
    """The receptive field of one output pixel of ``model`` on ``image`` (0..255 RGB at the
    model's input size): the predicted ``class`` there, the ``support`` of the input
    gradient, and the half-widths ``r50``/``r90`` of the squares holding 50% / 90% of it.

    >>> f = model_field(explain.conv_stack([1, 1]), np.zeros((33, 33, 1), "float32"), 16, 16)
    >>> f["support"], f["r90"]
    (5, 2)
    """
    import keras

    gradient = explain.input_gradient(model, image, row, col)
    logits = keras.ops.convert_to_numpy(model(np.asarray(image, np.float32)[None], training=False))
    return {"row": int(row), "col": int(col), "class": L.class_name(int(logits[0, row, col].argmax())),
            "support": explain.support_size(gradient), "side": int(image.shape[0]),
            "r50": explain.mass_radius(gradient, row, col, 0.5),
            "r90": explain.mass_radius(gradient, row, col, 0.9), "gradient": gradient}


def json_ready(value):
    """``value`` without its arrays (gradients, pictures): what the figures' JSON keeps.

    >>> json_ready({"a": 1, "gradient": [0.0], "rows": [{"b": 2, "gradient": [1.0]}]})
    {'a': 1, 'rows': [{'b': 2}]}
    """
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()
                if k != "gradient" and not isinstance(v, np.ndarray)}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def plot_receptive_fields(stacks: list[dict], field: dict | None = None, image=None,
                          title: str = "", path=None):
    """One panel per conv stack (its input gradient, support framed), then, when ``field``
    (:func:`model_field`) is given, the model's gradient (log scale) over ``image``.

    >>> len(plot_receptive_fields(conv_stack_fields(((1,), (2,)), size=9)).axes)
    2
    """
    plt = notebook_pyplot()
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    n = len(stacks) + (field is not None)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), squeeze=False, layout="constrained")
    for ax, s in zip(axes[0], stacks):
        g = s["gradient"]
        ax.imshow(g > 0, cmap="Greys", vmin=0, vmax=1.3)
        c, half = g.shape[0] // 2, s["support"] // 2
        ax.add_patch(Rectangle((c - half - 0.5, c - half - 0.5), s["support"], s["support"],
                               fill=False, edgecolor="tab:red", lw=1.2))
        ax.plot([c], [c], "o", color="tab:red", ms=3)
        ax.set_title(f"3 convs 3x3, rates {tuple(s['rates'])}\nreceptive field {s['support']} px "
                     f"(1 + 2·{sum(s['rates'])} = {s['analytic']}),\n{s['taps_read']} pixels read",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if field is not None:
        ax = axes[0][-1]
        g = field["gradient"]
        if image is not None:
            ax.imshow(np.asarray(image).astype(np.uint8))
        positive = g[g > 0]
        norm = LogNorm(vmin=max(positive.max() * 1e-4, positive.min()), vmax=positive.max())
        ax.imshow(np.where(g > 0, g, np.nan), cmap="magma", norm=norm, alpha=0.75)
        for radius, colour in ((field["r50"], "cyan"), (field["r90"], "white")):
            ax.add_patch(Rectangle((field["col"] - radius - 0.5, field["row"] - radius - 0.5),
                                   2 * radius + 1, 2 * radius + 1, fill=False,
                                   edgecolor=colour, lw=1.2))
        ax.plot([field["col"]], [field["row"]], "+", color="lime", ms=8)
        ax.set_title(f"trained model, one '{field['class']}' logit:\n|gradient| (log), support "
                     f"{field['support']} of {field['side']} px;\n50% within ±{field['r50']} "
                     f"(cyan), 90% within ±{field['r90']} (white)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(-0.5, g.shape[1] - 0.5)
        ax.set_ylim(g.shape[0] - 0.5, -0.5)
    return _finish(fig, path, title)


# --------------------------------------------------------------------------- ASPP


def aspp_table(rates: Sequence[int] = (1, 2, 3, 6, 12, 18), sizes: Sequence[int] = (128, 256, 512),
               output_stride: int = 32) -> list[dict]:
    """Per input size: the stride-32 map's side and, per rate, the share of a 3x3 ASPP
    branch's taps that read the map rather than zero padding.

    >>> [round(v, 3) for v in aspp_table((1, 6), (128,))[0]["tap_share"].values()]
    [0.694, 0.111]
    """
    rows = []
    for size in sizes:
        side = int(size) // int(output_stride)
        rows.append({"image_size": int(size), "map_side": side,
                     "tap_share": {int(r): explain.aspp_tap_share(side, int(r)) for r in rates}})
    return rows


def aspp_markdown(rows: list[dict]) -> str:
    """:func:`aspp_table` as a Markdown table (rates as columns).

    >>> print(aspp_markdown(aspp_table((1,), (128,))))
    | input | stride-32 map | rate 1 |
    |---:|---:|---:|
    | 128 px | 4x4 | 69% |
    """
    rates = list(rows[0]["tap_share"])
    lines = ["| input | stride-32 map | " + " | ".join(f"rate {r}" for r in rates) + " |",
             "|---:|---:|" + "---:|" * len(rates)]
    for row in rows:
        lines.append(f"| {row['image_size']} px | {row['map_side']}x{row['map_side']} | "
                     + " | ".join(f"{100 * v:.0f}%" for v in row["tap_share"].values()) + " |")
    return "\n".join(lines)


def plot_aspp_branches(image: np.ndarray, rates: Sequence[int] = (1, 2, 3), cell=(1, 1),
                       output_stride: int = 32, title: str = "", path=None):
    """What each ASPP branch of one stride-32 cell reads, drawn over ``image``: the 1x1
    branch, one 3x3 branch per rate, and image pooling (every cell).

    >>> plot_aspp_branches(np.zeros((128, 128, 3), np.uint8), rates=(6,)).axes[1].get_title().splitlines()
    ['3x3, rate 6', 'reads 1 of 9 taps']
    """
    plt = notebook_pyplot()
    from matplotlib.patches import Rectangle

    side = image.shape[0] // output_stride
    branches = ["1x1 conv", *(f"3x3, rate {r}" for r in rates), "image pooling"]
    fig, axes = plt.subplots(1, len(branches), figsize=(2.6 * len(branches), 3.1), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes[0], branches):
        if name == "1x1 conv":
            taps = np.zeros((side, side), bool)
            taps[cell] = True
        elif name == "image pooling":
            taps = np.ones((side, side), bool)
        else:
            taps = explain.aspp_taps(side, int(name.split()[-1]), *cell)
        ax.imshow(np.asarray(image).astype(np.uint8), alpha=0.55)
        for y in range(side):
            for x in range(side):
                box = (x * output_stride - 0.5, y * output_stride - 0.5)
                ax.add_patch(Rectangle(box, output_stride, output_stride, fill=bool(taps[y, x]),
                                       facecolor="tab:orange", alpha=0.55 if taps[y, x] else 1,
                                       edgecolor="white", lw=0.6))
        ax.add_patch(Rectangle((cell[1] * output_stride - 0.5, cell[0] * output_stride - 0.5),
                               output_stride, output_stride, fill=False, edgecolor="tab:red", lw=2))
        reads = int(taps.sum())
        share = "" if name in ("1x1 conv", "image pooling") else f" of 9 taps"
        ax.set_title(f"{name}\nreads {reads}{share}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig, path, title)


# --------------------------------------------------------------------------- output stride


def split_labels(prepared, split: str = "test", size: int = 128, limit: int | None = None) -> tuple:
    """``(ids, labels)``: the label maps of a prepared split, resized (nearest) to ``size``
    as the evaluation at the model's size resizes them.

    >>> ids, labels = split_labels("data/prepared", "test", 128)  # doctest: +SKIP
    >>> labels[0].shape  # doctest: +SKIP
    (128, 128)
    """
    from celebseg_utils.interface.notebook_figures import read_label

    ids = layout.read_split(Path(prepared), split)[:limit]
    if not ids:
        raise CelebsegError(f"split {split!r} of {prepared} is empty: pick another split")
    labels = [viz.resize_label(read_label(prepared, k), (size, size)) for k in ids]
    return ids, labels


def photo(prepared, image_id: int, size: int) -> np.ndarray:
    """RGB uint8 (size, size) photo ``image_id`` of a prepared folder: a model's input.

    >>> photo("data/prepared", 315, 128).shape  # doctest: +SKIP
    (128, 128, 3)
    """
    from celebseg_utils.interface.notebook_figures import load_photos

    return load_photos(layout.read_prepare_info(Path(prepared))["data_root"], [image_id], size=size)[0]


def stride_oracle_f1(labels: Sequence[np.ndarray], strides: Sequence[int] = (4, 8, 16, 32),
                     classes: Sequence[str] = THIN_CLASSES) -> dict:
    """F1 per class of the block-majority label maps (``explain.block_majority``) against
    the truth, one confusion matrix over all ``labels``: the best F1 a model can reach
    of a perfect classifier whose decisions are made on a map of that stride, spread back by
    nearest neighbour. A yardstick, not a bound: DeepLabV3+ upsamples its logits bilinearly,
    which recovers some detail inside a cell.

    >>> lab = np.zeros((8, 8), np.uint8); lab[2, :] = 6   # a 1 px brow across the image
    >>> stride_oracle_f1([lab], strides=(1, 4), classes=("l_brow",))
    {1: {'l_brow': 1.0, 'mean_f1': 1.0}, 4: {'l_brow': 0.0, 'mean_f1': 0.0}}
    """
    from celebseg_utils.models.metrics import confusion_matrix_np, scores_from_confusion

    out = {}
    for stride in strides:
        cm = sum(confusion_matrix_np(lab, explain.block_majority(lab, int(stride)))
                 for lab in labels)
        per_class = scores_from_confusion(cm)["per_class"]
        f1 = {c: round(float(np.nan_to_num(per_class[c]["f1"])), 4) for c in classes}
        f1["mean_f1"] = round(float(np.mean(list(f1.values()))), 4)
        out[int(stride)] = f1
    return out


def plot_output_stride(label: np.ndarray, oracle: dict, photo=None, title: str = "", path=None):
    """The label map as a perfect classifier at each stride of ``oracle`` would give it
    (block majority), each titled with the thin classes' mean F1 of that stride.

    >>> lab = np.zeros((64, 64), np.uint8)
    >>> len(plot_output_stride(lab, stride_oracle_f1([lab], strides=(4, 32))).axes)
    3
    """
    plt = notebook_pyplot()
    strides = sorted(oracle)
    n = len(strides) + 1 + (photo is not None)
    fig, axes = plt.subplots(1, n, figsize=(2.5 * n, 3.0), squeeze=False, layout="constrained")
    panels = ([("photo", np.asarray(photo).astype(np.uint8))] if photo is not None else []) + \
        [(f"truth, {label.shape[0]} px", viz.colorize(label))]
    for s in strides:
        side = label.shape[0] // s
        panels.append((f"stride {s} ({side}x{side} map)\nthin-part F1 {oracle[s]['mean_f1']:.2f}",
                       viz.colorize(explain.block_majority(label, s))))
    for ax, (name, picture) in zip(axes[0], panels):
        ax.imshow(picture)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig, path, title)


def feature_map_markdown(rows: list[dict]) -> str:
    """``explain.feature_map_sizes`` rows as a Markdown table.

    >>> print(feature_map_markdown([{"name": "input", "side": 64, "stride": 1, "channels": 3}]))
    | stage | map | stride | channels |
    |---|---:|---:|---:|
    | input | 64x64 | 1 | 3 |
    """
    lines = ["| stage | map | stride | channels |", "|---|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['side']}x{r['side']} | {r['stride']} | {r['channels']} |"
              for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the skip


def skip_ablation_scores(model, prepared, split: str = "test",
                         modes: Sequence[str] = explain.SKIP_MODES, batch_size: int = 8,
                         progress: bool = False) -> dict:
    """``{mode: results}`` of ``engine.evaluate.evaluate_model`` on the model with its skip
    kept or replaced (``explain.without_skip``), the same split and protocol (argmax at the
    model's input size); nothing is retrained.

    >>> scores = skip_ablation_scores("runs/sparse_ce/final.keras", "prepared")  # doctest: +SKIP
    >>> round(scores["mean"]["per_class"]["l_brow"]["f1"], 2)  # doctest: +SKIP
    0.04
    """
    from celebseg_utils.engine import evaluate, inference

    model = inference.load_model(model)
    return {mode: evaluate.evaluate_model(explain.without_skip(model, mode), prepared, split=split,
                                          batch_size=batch_size, progress=progress)
            for mode in modes}


def skip_f1_table(scores: dict, classes: Sequence[str] = THIN_CLASSES) -> list[dict]:
    """Per class (and the 18-class mean F1): F1 with the skip and without (each mode), and
    the change. Rows are JSON-safe.

    >>> keep = {"mean_f1": 0.7, "per_class": {"l_brow": {"f1": 0.74}}}
    >>> mean = {"mean_f1": 0.3, "per_class": {"l_brow": {"f1": 0.04}}}
    >>> skip_f1_table({"keep": keep, "mean": mean}, classes=("l_brow",))[0]
    {'class': 'l_brow', 'keep': 0.74, 'mean': 0.04, 'change_mean': -0.7}
    """
    rows = []
    for name in [*classes, "mean_f1"]:
        row = {"class": name}
        for mode, results in scores.items():
            value = results["mean_f1"] if name == "mean_f1" else results["per_class"][name]["f1"]
            row[mode] = None if value is None or not np.isfinite(value) else round(float(value), 4)
        for mode in scores:
            if mode != "keep" and row.get("keep") is not None and row[mode] is not None:
                row[f"change_{mode}"] = round(row[mode] - row["keep"], 4)
        rows.append(row)
    return rows


def skip_markdown(rows: list[dict]) -> str:
    """:func:`skip_f1_table` rows as Markdown (F1 with the skip, then per replaced mode).

    >>> print(skip_markdown([{"class": "l_brow", "keep": 0.7, "mean": 0.2, "change_mean": -0.5}]))
    | class | F1 with the skip | mean-replaced (change) |
    |---|---:|---:|
    | l_brow | 0.700 | 0.200 (-0.500) |
    """
    modes = [k for k in rows[0] if k not in ("class", "keep") and not k.startswith("change_")]
    label = {"mean": "mean-replaced", "zero": "zeroed"}
    lines = ["| class | F1 with the skip | " + " | ".join(f"{label[m]} (change)" for m in modes)
             + " |", "|---|---:|" + "---:|" * len(modes)]

    def cell(row, m):
        if row.get(m) is None:
            return "–"
        change = row.get(f"change_{m}")
        return f"{row[m]:.3f}" + (f" ({change:+.3f})" if change is not None else "")

    for row in rows:
        lines.append(f"| {row['class']} | {cell(row, 'keep')} | "
                     + " | ".join(cell(row, m) for m in modes) + " |")
    return "\n".join(lines)


def pick_thin_faces(labels: Sequence[np.ndarray], count: int = 4,
                    wanted: Sequence[str] = ("neck_l", "ear_r")) -> list[int]:
    """Indices of ``count`` label maps that show brows, preferring those that also show a
    class of ``wanted`` (necklace first, then earring), in the split's order; the others
    fill up when too few show brows.

    >>> a = np.zeros((4, 4), np.uint8); b = a.copy(); b[0, 0] = 6; c = b.copy(); c[1, 1] = 16
    >>> pick_thin_faces([a, b, c], count=2)
    [2, 1]
    """
    brow = L.class_id("l_brow")
    chosen = []
    for name in wanted:
        cid = L.class_id(name)
        chosen += [i for i, lab in enumerate(labels) if i not in chosen
                   and (lab == brow).any() and (lab == cid).any()][:max(1, count // len(wanted))]
    chosen += [i for i, lab in enumerate(labels) if i not in chosen and (lab == brow).any()]
    chosen += [i for i in range(len(labels)) if i not in chosen]  # faces without brows last
    return chosen[:count]


def thin_face_ids(ids: Sequence[int], labels: Sequence[np.ndarray], count: int = 3) -> list[int]:
    """The image ids of :func:`pick_thin_faces` (``ids`` and ``labels`` of :func:`split_labels`).

    >>> a = np.zeros((4, 4), np.uint8); b = a.copy(); b[0, 0] = 6
    >>> thin_face_ids([10, 11], [a, b], count=2)
    [11, 10]
    """
    return [int(ids[i]) for i in pick_thin_faces(labels, count)]


def plot_skip_connection(model, prepared, ids: Sequence[int], mode: str = "mean",
                         size: int = 256, scores: dict | None = None, title: str = "", path=None):
    """Photo, truth, prediction with the skip and without it (``mode``), one row per image
    of ``ids`` at ``size`` px; with ``scores`` (:func:`skip_ablation_scores`), a last panel
    of the thin classes' F1 with and without.

    >>> plot_skip_connection("runs/sparse_ce/final.keras", "data/prepared", [315])  # doctest: +SKIP
    """
    from celebseg_utils.engine import inference
    from celebseg_utils.interface.notebook_figures import load_photos, read_label

    plt = notebook_pyplot()
    model = inference.load_model(model)
    ablated = explain.without_skip(model, mode)
    info = layout.read_prepare_info(Path(prepared))
    rows = []
    for k in ids:
        photo = load_photos(info["data_root"], [k])[0]
        truth = viz.resize_label(read_label(prepared, k), (size, size))
        preds = [viz.resize_label(inference.predict_labels(m, [photo])[0], (size, size))
                 for m in (model, ablated)]
        rows.append([load_photos(info["data_root"], [k], size=size)[0], truth, *preds])
    names = ["photo", "truth", "with the stride-4 skip", f"skip {mode}-replaced"]
    extra = scores is not None
    fig, axes = plt.subplots(len(rows), 4 + extra, squeeze=False, layout="constrained",
                             figsize=(2.6 * (4 + extra) + extra * 1.5, 2.6 * len(rows) + 0.8))
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            ax = axes[r][c]
            ax.imshow(picture if picture.ndim == 3 else viz.colorize(picture))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(names[c], fontsize=10)
        axes[r][0].set_ylabel(f"test image {ids[r]}", fontsize=9)
    if extra:
        gs = axes[0][-1].get_gridspec()
        for r in range(len(rows)):
            axes[r][-1].remove()
        ax = fig.add_subplot(gs[:, -1])
        table = skip_f1_table(scores)
        y = np.arange(len(table))
        keep = [row["keep"] or 0 for row in table]
        gone = [row.get(mode) or 0 for row in table]
        ax.barh(y - 0.2, keep, height=0.4, label="with skip", color="tab:blue")
        ax.barh(y + 0.2, gone, height=0.4, label=f"{mode}-replaced", color="tab:orange")
        ax.set_yticks(y, [L.DISPLAY_NAMES.get(row["class"], "mean F1 (18 classes)") for row in table])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("test F1")
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title("F1 on the test split", fontsize=10)
    present = sorted(set(np.unique(np.concatenate([np.ravel(p) for row in rows for p in row[1:]])))
                     - {L.BACKGROUND_ID})
    fig.legend(handles=viz.legend_handles([int(i) for i in present]), loc="outside lower center",
               ncol=min(len(present), 10), fontsize=8, frameon=False)
    return _finish(fig, path, title)


# --------------------------------------------------------------------------- committed files


def committed_figure_url(name: str, repository: str | None = None, ref: str | None = None) -> str:
    """The raw GitHub URL of ``figures/model/<name>`` (for notebooks opened outside a checkout).

    >>> committed_figure_url("skip_connection.png", "you/celebseg", "main")
    'https://raw.githubusercontent.com/you/celebseg/main/figures/model/skip_connection.png'
    """
    from celebseg_utils.interface import notebook

    return (f"https://raw.githubusercontent.com/{repository or notebook.REPOSITORY}/"
            f"{ref or notebook.BRANCH}/figures/model/{name}")
