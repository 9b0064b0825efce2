"""An interactive mask viewer for a prepared dataset (ipywidgets), testable without a browser.

:class:`MaskViewer` shows one face of a split at a time. Two forms:

- **one prediction** (``model=`` or ``predictions_dir=``): the ground-truth overlay and the
  prediction beside it with the image's IoU (or the truth alone);
- **error analysis** (``models={"sparse_ce": run_a, "dice": run_b, ...}``): the photo, the
  truth, each model's prediction and, under each, its error map (wrong pixels coloured by
  the true class, the predicted class or one colour:
  :func:`celebseg_utils.visualization.error_map.error_map`); the split can be sorted
  worst-first by any model's per-image mean F1 or IoU, or by the gap between two models, and
  filtered to faces whose truth holds chosen classes; a table gives the face's per-class F1
  and IoU for each model.

Controls in both: an index slider linked to a number box, a dataset-id box that jumps to an
image, one checkbox per class (with its palette colour), "all"/"none" buttons, an opacity
slider, and a point box ("x, y") that names the class at that pixel in every map (neither
ipywidgets 7 nor 8 reports the mouse position over an ``Image``; see docs/viewer.md).
Predictions go through :mod:`celebseg_utils.engine.inference`, the path of ``celebseg
predict``; :meth:`MaskViewer.show_photo` parses any photo the ``predict --align`` way.
Pictures are drawn into one PNG shown by an ``ipywidgets.Image``; :meth:`MaskViewer.render`
returns the same pictures as numpy arrays, which is what the tests check.

ipywidgets is imported only when a viewer is built, so ``import celebseg_utils`` never needs it.

>>> from celebseg_utils.interface.widgets import MaskViewer
>>> viewer = MaskViewer("prepared", split="val", predictions_dir="runs/ce/predictions")  # doctest: +SKIP
>>> viewer  # in Jupyter: the widget  # doctest: +SKIP
>>> viewer.slider.value = 3; viewer.class_toggles[13].value = False  # hide hair  # doctest: +SKIP
>>> sorted(viewer.render())  # doctest: +SKIP
['canvas', 'iou', 'photo', 'prediction', 'prediction_label', 'truth', 'truth_label']
>>> v = MaskViewer("prepared", "test", models={"ce": "runs/ce", "dice": "runs/dice"})  # doctest: +SKIP
>>> v.sort_by("worst", "dice"); v.filter_classes(["hat"]); v.error_mode.value = "prediction"  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.visualization import viz
from celebseg_utils.errors import CelebsegError

_GAP = 8  # white pixels between the pictures of the canvas
_TITLE = 14  # height of the title strip above each panel of the error-analysis canvas
_CACHE = 16  # images kept decoded, so that moving a control does not re-read files
#: The panel side of the error-analysis form when image_size is not given.
MULTI_PANEL_SIZE = 256
def image_iou(truth: np.ndarray, prediction: np.ndarray, num_classes: int = L.NUM_CLASSES) -> float:
    """Mean IoU of one image over the classes present in the truth or the prediction.

    >>> image_iou(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [1, 0]]))  # (1/2 + 2/3) / 2
    0.5833333333333333
    """
    truth, prediction = np.asarray(truth).ravel(), np.asarray(prediction).ravel()
    if truth.shape != prediction.shape:
        raise ValueError(f"truth and prediction differ in size: {truth.size} vs {prediction.size}")
    both = np.bincount(truth[truth == prediction].astype(np.intp), minlength=num_classes)
    area_t = np.bincount(truth.astype(np.intp), minlength=num_classes)
    area_p = np.bincount(prediction.astype(np.intp), minlength=num_classes)
    union = area_t + area_p - both
    present = union > 0
    return float(np.mean(both[present] / union[present]))


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def _png(picture: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # Fast compression: the picture is re-encoded on every click.
    Image.fromarray(picture).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _read_label(path: Path) -> np.ndarray:
    if not path.is_file():
        raise CelebsegError(f"missing label map {path}: re-run `celebseg prepare` (or "
                            f"`celebseg predict`) for this folder")
    return np.asarray(Image.open(path), dtype=np.uint8)



def run_model_file(source, split: str | None = None) -> Path:
    """The model file a viewer loads for ``source``. A run folder stands for the model its
    ``per_image_<split>.json`` was made of, when that file still matches it (so the scores
    the viewer sorts by are that model's: ``celebseg evaluate RUN`` scores ``final.keras``,
    train's test pass ``best.keras``); else its ``best.keras`` (the model notebook 07's
    figures use); else what :func:`celebseg_utils.engine.inference.model_file` names.

    >>> run_model_file("no/such.keras")
    Traceback (most recent call last):
    ...
    celebseg_utils.errors.CelebsegError: model no/such.keras not found: train one with `celebseg train` or pass the path of a .keras file
    """
    from celebseg_utils.engine import inference, scoring

    path = Path(source)
    cache = scoring.per_image_path(path, split) if split is not None else None
    if path.is_dir() and cache is not None and cache.is_file():
        try:
            made = json.loads(cache.read_text())
            model = Path(made.get("model") or "")
            if (model.parent == path.resolve() and model.is_file()
                    and all(made.get(k) == v for k, v in scoring.model_stamp(model).items())):
                return path / model.name
        except (OSError, ValueError, AttributeError):
            pass  # an unreadable cache: the usual choice below, and the split scored again
    if path.is_dir() and (path / "best.keras").is_file():
        return path / "best.keras"
    return inference.model_file(path)


class CompiledModel:
    """A keras model called as one ``tf.function`` graph, for :mod:`~celebseg_utils.engine.inference`.

    The eager call that inference makes runs the model layer by layer in Python, about
    0.6 s per 128 px face on this project's loaded 2-core machine against 0.14 s compiled
    (``scripts/measure_viewer_speed.py``, which also found the two calls' label maps equal on
    every pixel of 45 real-face maps). Only the call changes: the padding, resizing and
    cropping stay inference's, which is what the viewer's parity test checks.

    >>> fast = CompiledModel(model); inference.predict_labels(fast, [photo])  # doctest: +SKIP
    """

    def __init__(self, model):
        import tensorflow as tf

        self.model = model
        self.name = model.name
        self.input_shape, self.output_shape = model.input_shape, model.output_shape
        self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, batch, training: bool = False):
        import tensorflow as tf

        return self._call(tf.convert_to_tensor(batch))


def _title_strip(text: str, width: int) -> np.ndarray:
    """A white strip ``_TITLE`` px high with ``text`` in black (Pillow's built-in font)."""
    from PIL import ImageDraw

    strip = Image.new("RGB", (width, _TITLE), (255, 255, 255))
    ImageDraw.Draw(strip).text((2, 1), text, fill=(0, 0, 0))
    return np.asarray(strip)


def _fmt(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.2f}"


class MaskViewer:
    """Browse a split of a prepared folder: photo, ground truth and predictions.

    ``split``: "train", "val", "test", or None for every labelled image.

    One prediction: ``model``, a keras model or a model path (a run folder: its
    ``best.keras``, see :func:`run_model_file`), whose prediction is what ``celebseg
    predict`` writes for the photo file, resized to the label map's shape (nearest
    neighbour) if it differs; or ``predictions_dir``, a folder of ``<k>.png`` label maps.

    Error analysis: ``models``, {name: keras model or model path}, each predicted the same
    way; the canvas gains the photo, titles and an error map per model, and the order,
    filter and error-mode controls. Per-image scores for sorting come from
    ``RUN/per_image_<split>.json`` (or ``cache_dir/<name>/``), scored once when missing
    (:func:`celebseg_utils.interface.viewer_scores.model_scores`).

    ``image_size``: side of the pictures drawn (default: the label size; 256 with
    ``models``). ``prefetch``: faces after the one shown predicted ahead on a worker thread
    (default 1 with a model, else 0). IoU and the table are of the predictions themselves, whatever classes are
    hidden.

    >>> v = MaskViewer("prepared", split="val")  # doctest: +SKIP
    >>> v.opacity.value = 1.0; v.render()["truth"].shape  # doctest: +SKIP
    (512, 512, 3)
    """

    def __init__(self, prepared_dir, split: str | None = "val", model=None,
                 predictions_dir=None, image_size: int | None = None, models: dict | None = None,
                 cache_dir=None, progress: bool = True, prefetch: int | None = None):
        import ipywidgets as w

        from celebseg_utils.engine import inference
        from celebseg_utils.visualization.error_map import ERROR_MODE_TEXT

        self.prepared = Path(prepared_dir)
        self.info = layout.read_prepare_info(self.prepared)
        self.split = split
        self.ids = layout.read_split(self.prepared, split) if split else self._all_ids()
        if not self.ids:
            raise CelebsegError(f"split {split!r} of {self.prepared} has no images: pick another split")
        given = [x for x in (model, predictions_dir, models) if x is not None]
        if len(given) > 1:
            raise CelebsegError("give MaskViewer one of model=, predictions_dir= or models=")
        if models is not None and not models:
            raise CelebsegError("models= is empty: give {name: model or run folder, ...}")
        self.multi = models is not None
        self.cache_dir, self.progress = cache_dir, progress
        # name -> keras model; name -> its file (None for an in-memory model)
        self.models: OrderedDict = OrderedDict()
        self.model_files: dict = {}
        for name, source in ({"prediction": model} if model is not None else models or {}).items():
            path = (run_model_file(source, split) if isinstance(source, (str, os.PathLike))
                    else None)
            self.models[str(name)] = inference.load_model(path or source)
            self.model_files[str(name)] = path
        self.model = next(iter(self.models.values())) if model is not None else None
        self._compiled = {name: CompiledModel(m) for name, m in self.models.items()}
        self.predictions_dir = Path(predictions_dir) if predictions_dir is not None else None
        if self.predictions_dir is not None and not self.predictions_dir.is_dir():
            raise CelebsegError(f"predictions_dir {self.predictions_dir} is not a folder: "
                                f"write one with `celebseg predict` or pass model=")
        default = MULTI_PANEL_SIZE if self.multi else (self.info.get("label_size") or 512)
        self.size = int(image_size or default)
        self._cache: OrderedDict = OrderedDict()
        from concurrent.futures import ThreadPoolExecutor

        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maskviewer")
        self._pending: dict = {}  # id -> Future of a face predicted ahead
        self.prefetch = int(prefetch if prefetch is not None else (1 if self.models else 0))
        self.shown_ids = list(self.ids)  # the split as browsed: sorted and filtered
        self.scores: dict = {}  # name -> per-image scores (viewer_scores.model_scores)
        self._presence = None
        self.photo_parses: dict = {}

        n = len(self.ids)
        self.slider = w.IntSlider(value=0, min=0, max=n - 1, description="index",
                                  continuous_update=False, disabled=n == 1)
        self.index_box = w.BoundedIntText(value=0, min=0, max=n - 1, layout=w.Layout(width="90px"))
        self._link = w.link((self.slider, "value"), (self.index_box, "value"))
        self.id_label = w.HTML()
        self.id_box = w.IntText(value=self.ids[0], description="dataset id",
                                layout=w.Layout(width="180px"))
        self.opacity = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="opacity",
                                     continuous_update=False)
        self.class_toggles = [w.Checkbox(value=True, description=L.DISPLAY_NAMES[name], indent=False,
                                         layout=w.Layout(width="auto"))
                              for name in L.CLASS_NAMES]
        swatches = [w.HTML(f'<div style="width:14px;height:14px;margin-top:6px;background:'
                           f'{_hex(L.OVERLAY_PALETTE[i])};border:1px solid #888"></div>')
                    for i in range(L.NUM_CLASSES)]
        self.show_all = w.Button(description="all", layout=w.Layout(width="60px"))
        self.show_none = w.Button(description="none", layout=w.Layout(width="60px"))
        self.show_all.on_click(lambda _: self._set_all(True))
        self.show_none.on_click(lambda _: self._set_all(False))
        self.point_box = w.Text(value="", placeholder="x, y", description="point",
                                layout=w.Layout(width="200px"))
        self.point_label = w.HTML()
        self.message = w.HTML()
        self.image = w.Image(format="png")
        self.iou_label = w.HTML()
        self.table = w.HTML()
        self.photo_image = self.save_photo_button = None  # made by show_photo

        order_options = [("position in the split", ("split",))]
        scorable = [name for name in self.models]
        order_options += [(f"worst first: {name}", ("worst", name)) for name in scorable]
        order_options += [(f"{a} ahead of {b} most", ("gain", a, b))
                          for a in scorable for b in scorable if a != b]
        self.order = w.Dropdown(options=order_options, value=("split",), description="order",
                                layout=w.Layout(width="330px"))
        self.score_key = w.Dropdown(options=[("mean F1", "mean_f1"), ("mean IoU", "miou")],
                                    value="mean_f1", description="score",
                                    layout=w.Layout(width="200px"))
        self.class_filter = w.SelectMultiple(
            options=[(L.DISPLAY_NAMES[c], i) for i, c in enumerate(L.CLASS_NAMES) if i],
            value=(), rows=4, description="faces with", layout=w.Layout(width="260px"))
        self.error_mode = w.Dropdown(options=[(t, m) for m, t in ERROR_MODE_TEXT.items()],
                                     value="truth", description="errors",
                                     layout=w.Layout(width="330px"))

        grid = w.GridBox([w.HBox([s, c]) for s, c in zip(swatches, self.class_toggles)],
                         layout=w.Layout(grid_template_columns="repeat(5, 150px)"))
        rows = [w.HBox([self.slider, self.index_box, self.id_box, self.id_label]),
                w.HBox([self.opacity, self.show_all, self.show_none, self.point_box])]
        if self.multi:
            rows.append(w.HBox([w.VBox([self.order, self.score_key, self.error_mode]),
                                self.class_filter]))
        rows += [grid, self.message, self.image, self.iou_label, self.point_label, self.table]
        self.widget = w.VBox(rows)
        self._batch = False
        for control in [self.slider, self.opacity, self.error_mode, *self.class_toggles]:
            control.observe(lambda _: self.refresh(), names="value")
        for control in (self.order, self.score_key, self.class_filter):
            control.observe(lambda _: self._reorder(), names="value")
        self.id_box.observe(lambda change: self.go_to_id(change["new"]), names="value")
        self.point_box.observe(lambda _: self._show_point(), names="value")
        self.refresh()

    # -- state ---------------------------------------------------------------------------

    @property
    def image_id(self) -> int:
        """The dataset id of the image shown."""
        return self.shown_ids[self.slider.value]

    @property
    def hidden_classes(self) -> list[int]:
        """Class ids whose checkbox is off."""
        return [i for i, t in enumerate(self.class_toggles) if not t.value]

    def _all_ids(self) -> list[int]:
        folder = self.prepared / "labels"
        names = os.listdir(folder) if folder.is_dir() else []
        return sorted(int(n[:-4]) for n in names if n.endswith(".png") and n[:-4].isdigit())

    def _set_all(self, value: bool) -> None:
        self._batch = True  # one redraw, not nineteen
        try:
            for t in self.class_toggles:
                t.value = value
        finally:
            self._batch = False
        self.refresh()

    # -- order and filter ----------------------------------------------------------------

    def model_scores(self, name: str) -> dict:
        """Per-image scores of model ``name`` over the split, rows in the order of
        ``self.ids`` (cached in ``RUN/per_image_<split>.json``; scored once when missing)."""
        from celebseg_utils.interface.viewer_scores import model_scores

        if name not in self.models:
            raise CelebsegError(f"no model named {name!r}: the viewer has {', '.join(self.models)}")
        if name not in self.scores:
            if self.split is None:
                raise CelebsegError("sorting needs a split: build the viewer with split='test' "
                                    "(or 'val', 'train')")
            # one folder per model under cache_dir: each file is per_image_<split>.json
            folder = (Path(self.cache_dir) / re.sub(r"[^\w.-]+", "_", name)
                      if self.cache_dir is not None else None)
            self.scores[name] = model_scores(self.models[name], self.model_files[name],
                                             self.prepared, self.split, self.ids,
                                             cache_dir=folder, progress=self.progress)
        return self.scores[name]

    def sort_by(self, how: str = "split", *names: str, key: str | None = None) -> None:
        """Set the order: ``sort_by("split")``, ``sort_by("worst", "dice")`` (lowest score
        first) or ``sort_by("gain", "dice", "ce")`` (where dice beats ce most first);
        ``key``: "mean_f1" or "miou" (default: the score menu's). The same as the menus.

        >>> viewer.sort_by("gain", "dice", "sparse_ce", key="miou")  # doctest: +SKIP
        """
        value = (how, *names)
        known = [v for _, v in self.order.options]
        if value not in known:
            raise CelebsegError(f"unknown order {value!r}: use one of {known}")
        self._batch = True
        try:
            if key is not None:
                self.score_key.value = key
            self.order.value = value
        finally:
            self._batch = False
        self._reorder()

    def filter_classes(self, classes) -> None:
        """Browse only faces whose truth holds every class in ``classes`` (names or ids;
        empty: all faces). The same as the "faces with" menu.

        >>> viewer.filter_classes(["hat"])  # doctest: +SKIP
        """
        ids = tuple(L.class_id(c) if isinstance(c, str) else int(c) for c in classes)
        self.class_filter.value = ids

    def _ordered_ids(self) -> list[int]:
        from celebseg_utils.interface import viewer_scores as vs

        how, *names = self.order.value
        if how == "split":
            return list(self.ids)
        key = self.score_key.value
        if how == "worst":
            return vs.worst_first(self.ids, self.model_scores(names[0])[key])
        return vs.largest_gain(self.ids, self.model_scores(names[0])[key],
                               self.model_scores(names[1])[key])

    def _reorder(self) -> None:
        """Apply the order and the class filter; back to the first face of the result."""
        from celebseg_utils.interface import viewer_scores as vs

        if self._batch:
            return
        ids = self._ordered_ids()
        classes = list(self.class_filter.value)
        if classes:
            if self._presence is None:
                self._presence = vs.truth_presence(self.prepared, self.ids, self.progress)
            ids = vs.with_classes(ids, self._presence, classes)
        names = ", ".join(L.DISPLAY_NAMES[L.CLASS_NAMES[c]] for c in classes)
        if not ids:
            self.message.value = (f"<b>no face of this split has all of: {names}</b> "
                                  f"(the view is unchanged)")
            return
        self.message.value = f"{len(ids)} faces with {names}" if classes else ""
        self._set_shown(ids)

    def _set_shown(self, ids: list[int]) -> None:
        self._batch = True  # the slider's max and value: one redraw
        try:
            self.shown_ids = list(ids)
            self.slider.value = 0
            self.slider.max = max(len(ids) - 1, 0)
            self.index_box.max = max(len(ids) - 1, 0)
            self.slider.disabled = len(ids) == 1
        finally:
            self._batch = False
        self.refresh()

    def go_to_id(self, k: int) -> bool:
        """Show the face with dataset id ``k``; False (and a message) when it is not in the
        split as browsed. The same as the "dataset id" box."""
        k = int(k)
        if k == self.image_id:
            return True
        if k in self.shown_ids:
            self.message.value = ""
            self.slider.value = self.shown_ids.index(k)
            return True
        why = ("is filtered out: clear the \"faces with\" choice" if k in self.ids
               else f"is not in the {self.split or 'labelled'} images")
        self.message.value = f"<b>image id {k} {why}</b>"
        return False

    # -- pictures ------------------------------------------------------------------------

    def _load(self, k: int) -> dict:
        k = int(k)
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        # Every model call runs on the one worker thread, in order: the face asked for now
        # waits behind at most the prefetch under way, never beside it.
        future = self._pending.pop(k, None) or self._worker.submit(self._compute, k)
        item = future.result()
        self._cache[k] = item
        if len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        return item

    def _prefetch(self) -> None:
        """Start predicting the next ``prefetch`` faces of the order while this one is looked
        at, so that "next" shows at once (predicting three models takes about a second)."""
        at = self.slider.value
        wanted = [int(k) for k in self.shown_ids[at + 1:at + 1 + self.prefetch]]
        for k in list(self._pending):
            if k not in wanted and self._pending[k].cancel():
                del self._pending[k]
        for k in wanted:
            if k not in self._cache and k not in self._pending:
                self._pending[k] = self._worker.submit(self._compute, k)

    def _compute(self, k: int) -> dict:
        photo_file = layout.photo_path(self.prepared, k, self.info)
        if not photo_file.is_file():
            raise CelebsegError(f"missing photo {photo_file}: the raw data moved? prepare.json "
                                f"records data_root={self.info['data_root']}")
        with Image.open(photo_file) as im:
            full = np.asarray(im.convert("RGB"))
        photo = np.asarray(Image.fromarray(full).resize((self.size, self.size), Image.BILINEAR))
        truth = _read_label(layout.label_path(self.prepared, k))
        item = {"photo": photo, "truth_label": truth, "labels": {}, "photo_labels": {}}
        for name, model in self._compiled.items():
            item["photo_labels"][name], item["labels"][name] = self._predict(model, full, truth.shape)
        if self.predictions_dir is not None:
            pred = _read_label(self.predictions_dir / f"{k}.png")
            item["labels"]["prediction"] = (pred if pred.shape == truth.shape
                                            else viz.resize_label(pred, truth.shape))
        return item

    @staticmethod
    def _predict(model, photo: np.ndarray, label_shape) -> tuple[np.ndarray, np.ndarray]:
        """(what `celebseg predict` writes for the photo file, the same brought to the
        label's shape by nearest neighbour, as a ``predictions_dir`` map would be)."""
        from celebseg_utils.engine import inference

        (pred,) = inference.predict_labels(model, [photo])
        small = pred if pred.shape == tuple(label_shape) else viz.resize_label(pred, label_shape)
        return pred, small

    def render(self) -> dict:
        """What the viewer draws for the current controls, as numpy arrays.

        Keys: ``photo`` (S, S, 3), ``truth_label`` (label size), ``truth`` overlay (S, S, 3),
        ``canvas`` (the PNG shown) and, with one prediction, ``prediction_label``,
        ``prediction`` overlay and ``iou`` (a numpy float). With models, ``models``: {name:
        {``label`` (label size), ``photo_label`` (what ``predict`` writes, photo size),
        ``overlay``, ``errors`` (the error map), ``scores`` (per-class ``f1``/``iou`` and
        ``mean_f1``/``miou`` of this face)}}.
        """
        from celebseg_utils.interface.viewer_scores import face_scores
        from celebseg_utils.visualization.error_map import error_map

        item = self._load(self.image_id)
        hidden, alpha = self.hidden_classes, float(self.opacity.value)
        truth = item["truth_label"]
        out = {"photo": item["photo"], "truth_label": truth,
               "truth": viz.overlay(item["photo"], truth, alpha, hidden)}
        drawn = {}
        for name, label in item["labels"].items():
            drawn[name] = {"label": label,
                           "overlay": viz.overlay(item["photo"], label, alpha, hidden),
                           "scores": face_scores(truth, label)}
            if name in item["photo_labels"]:
                drawn[name]["photo_label"] = item["photo_labels"][name]
            if self.multi:
                drawn[name]["errors"] = error_map(item["photo"], truth, label,
                                                  self.error_mode.value, hidden)
        if drawn:
            out["models"] = drawn
        if not self.multi and drawn:
            (one,) = drawn.values()
            out["prediction_label"], out["prediction"] = one["label"], one["overlay"]
            out["iou"] = np.float64(image_iou(truth, one["label"]))
        out["canvas"] = self._canvas(out)
        return out

    def _canvas(self, out: dict) -> np.ndarray:
        s = self.size
        if not self.multi:  # truth | prediction, as before the error-analysis form
            pictures = [out["truth"]]
            if "prediction" in out:
                pictures += [np.full((s, _GAP, 3), 255, np.uint8), out["prediction"]]
            return np.concatenate(pictures, axis=1)
        blank = np.full((s, s, 3), 255, np.uint8)
        top = [("photo", out["photo"]), ("ground truth", out["truth"])]
        from celebseg_utils.visualization.error_map import ERROR_MODE_TEXT

        bottom = [("", blank), (ERROR_MODE_TEXT[self.error_mode.value], blank)]
        for name, d in out.get("models", {}).items():
            top.append((f"{name}: F1 {_fmt(d['scores']['mean_f1'])}", d["overlay"]))
            bottom.append((f"{name}: errors", d["errors"]))

        def row(panels):
            parts = []
            for i, (title, picture) in enumerate(panels):
                if i:
                    parts.append(np.full((s + _TITLE, _GAP, 3), 255, np.uint8))
                parts.append(np.concatenate([_title_strip(title, s), picture], axis=0))
            return np.concatenate(parts, axis=1)

        first, second = row(top), row(bottom)
        return np.concatenate([first, np.full((_GAP, first.shape[1], 3), 255, np.uint8), second])

    def _table_html(self, out: dict) -> str:
        """The face's per-class F1 / IoU per model, rows: classes in the truth or a map."""
        models = out.get("models", {})
        truth = out["truth_label"]
        present = set(np.unique(truth).tolist())
        for d in models.values():
            present |= set(np.unique(d["label"]).tolist())
        shares = viz.class_shares(truth)
        head = "".join(f"<th colspan=2>{name}</th>" for name in models)
        sub = "".join("<th>F1</th><th>IoU</th>" for _ in models)
        rows = [f"<tr><th>class</th><th>truth px</th>{head}</tr>",
                f"<tr><td></td><td></td>{sub}</tr>"]
        mean = "".join(f"<td><b>{_fmt(d['scores']['mean_f1'])}</b></td>"
                       f"<td><b>{_fmt(d['scores']['miou'])}</b></td>" for d in models.values())
        rows.append(f"<tr><td><b>mean</b></td><td></td>{mean}</tr>")
        for c in sorted(present):
            cells = "".join(f"<td>{_fmt(d['scores']['f1'][c])}</td><td>{_fmt(d['scores']['iou'][c])}</td>"
                            for d in models.values())
            name = L.DISPLAY_NAMES[L.CLASS_NAMES[c]]
            rows.append(f"<tr><td>{name}</td><td>{viz.format_share(shares.get(c, 0.0))}</td>{cells}</tr>")
        return ('<table style="font-size:12px;border-collapse:collapse">'
                + "".join(rows) + "</table>")

    def _sort_note(self) -> str:
        how, *names = self.order.value
        if how == "split":
            return ""
        key = self.score_key.value
        row = self.ids.index(self.image_id)
        values = [float(self.model_scores(n)[key][row]) for n in names]
        from celebseg_utils.interface.viewer_scores import SCORE_KEYS

        words = SCORE_KEYS[key]
        if how == "worst":
            return f" — {names[0]} {words} {_fmt(values[0])} (evaluation loop)"
        return (f" — {names[0]} {_fmt(values[0])} vs {names[1]} {_fmt(values[1])} "
                f"{words} (evaluation loop)")

    def refresh(self) -> None:
        """Redraw the picture and the labels from the controls (called on every change)."""
        if self._batch:
            return
        drawn = self.render()
        self.image.value = _png(drawn["canvas"])
        self.id_label.value = (f"image id <b>{self.image_id}</b> "
                               f"({self.slider.value + 1} of {len(self.shown_ids)})"
                               + (self._sort_note() if self.multi else ""))
        if self.id_box.value != self.image_id:
            self._batch = True
            try:
                self.id_box.value = self.image_id
            finally:
                self._batch = False
        if self.multi:
            self.iou_label.value = ""
            self.table.value = self._table_html(drawn)
        else:
            titles = "ground truth" + (" | prediction" if "iou" in drawn else "")
            self.iou_label.value = titles + (f" — IoU {drawn['iou']:.3f}" if "iou" in drawn else "")
        self._show_point(drawn)
        if self.prefetch:
            self._prefetch()

    # -- the point read-out --------------------------------------------------------------

    def class_at(self, x: int, y: int) -> dict:
        """{"ground truth": class name, <model>: class name, ...} at panel pixel (x, y) of
        the face shown (0 <= x, y < image_size; the label maps are read at the matching
        pixel). CelebsegError outside the panel.

        >>> viewer.class_at(128, 100)  # doctest: +SKIP
        {'ground truth': 'nose', 'sparse_ce': 'nose', 'dice': 'skin'}
        """
        x, y = int(x), int(y)
        if not (0 <= x < self.size and 0 <= y < self.size):
            raise CelebsegError(f"point ({x}, {y}) is outside the {self.size} px panels")
        item = self._load(self.image_id)
        maps = {"ground truth": item["truth_label"], **item["labels"]}
        return {name: L.DISPLAY_NAMES[L.CLASS_NAMES[int(m[y * m.shape[0] // self.size,
                                                          x * m.shape[1] // self.size])]]
                for name, m in maps.items()}

    def _show_point(self, drawn=None) -> None:
        text = self.point_box.value.strip()
        if not text:
            self.point_label.value = ""
            return
        try:
            x, y = (int(v) for v in text.replace(",", " ").split())
            found = self.class_at(x, y)
        except (ValueError, CelebsegError) as exc:
            why = exc if isinstance(exc, CelebsegError) else "write two whole numbers: x, y"
            self.point_label.value = f"point: {why}"
            return
        self.point_label.value = f"at ({x}, {y}): " + "; ".join(f"{k} <b>{v}</b>" for k, v in found.items())

    # -- any photo -----------------------------------------------------------------------

    def show_photo(self, path, detector=None, save_to=None, tta=None,
                   min_eye_distance: float | None = None) -> dict:
        """Parse a photo that is not in the dataset the ``celebseg predict --align`` way
        (every face detected, aligned, parsed by each model and pasted back), show the
        photo and each model's overlay under the viewer, and return {name:
        :class:`~celebseg_utils.engine.predict.AlignedParse`}. ``detector``: a
        :class:`~celebseg_utils.face.detect.FaceDetector` (default: MTCNN, the
        ``[align]`` extra; without it a CelebsegError says how to install it).
        ``save_to``: a folder to write what :meth:`save_photo` writes.

        >>> viewer.show_photo("me.jpg", save_to="out/")  # doctest: +SKIP
        """
        from celebseg_utils.engine.predict import (MIN_EYE_DISTANCE, detect_all, parse_photo,
                                                   read_image)
        from celebseg_utils.face.detect import FaceDetector

        if not self.models:
            raise CelebsegError("show_photo needs a model: build the viewer with model= or models=")
        path = Path(path)
        eye = MIN_EYE_DISTANCE if min_eye_distance is None else float(min_eye_distance)
        try:
            image = read_image(path)
            detector = detector or FaceDetector()
            faces = detect_all([path], detector, eye, skip_bad=False, progress=False)[path]
        except CelebsegError as exc:
            self.message.value = f"<b>{exc}</b>"
            raise
        self.photo_parses = {name: parse_photo(model, image, faces, tta=tta, min_eye_distance=eye)
                             for name, model in self.models.items()}
        self.photo_path, self.photo_rgb = path, image
        if self.photo_image is None:  # added now, so a viewer never shows an empty picture
            import ipywidgets as w

            self.photo_image = w.Image(format="png")
            self.save_photo_button = w.Button(description="save overlay",
                                              layout=w.Layout(width="120px"))
            self.save_photo_button.on_click(lambda _: self.save_photo())
            self.widget.children = (*self.widget.children, self.photo_image, self.save_photo_button)
        self.photo_image.value = _png(self.photo_canvas())
        self.message.value = (f"{path.name}: {len(faces)} face(s), parsed as "
                              f"<code>celebseg predict --align</code> does (below)")
        if save_to is not None:
            self.save_photo(save_to)
        return self.photo_parses

    def photo_canvas(self) -> np.ndarray:
        """The photo and each model's overlay of the last :meth:`show_photo`, side by side,
        ``image_size`` px high (titled when there are several models)."""
        if not self.photo_parses:
            raise CelebsegError("no photo shown yet: call show_photo(path) first")
        image = next(iter(self.photo_parses.values()))
        h, w = image.overlay.shape[:2]
        width = max(1, round(w * self.size / h))

        def fit(picture):
            return np.asarray(Image.fromarray(picture).resize((width, self.size), Image.BILINEAR))

        panels = [("photo", fit(self.photo_rgb))] + [(name, fit(p.overlay))
                                            for name, p in self.photo_parses.items()]
        parts = []
        for i, (title, picture) in enumerate(panels):
            if i:
                parts.append(np.full((self.size + _TITLE, _GAP, 3), 255, np.uint8))
            parts.append(np.concatenate([_title_strip(title, width), picture], axis=0))
        return np.concatenate(parts, axis=1)

    def save_photo(self, folder=None) -> list[Path]:
        """Write, per model, ``<stem>_<name>.png`` (labels) and ``<stem>_<name>_overlay.png``
        of the last :meth:`show_photo` (what ``predict --align`` writes), default folder:
        the photo's own; returns the paths."""
        from celebseg_utils.fileio import atomic_path

        if not self.photo_parses:
            raise CelebsegError("no photo shown yet: call show_photo(path) first")
        folder = Path(folder) if folder is not None else self.photo_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, parse in self.photo_parses.items():
            for suffix, array in (("", parse.labels), ("_overlay", parse.overlay)):
                target = folder / f"{self.photo_path.stem}_{name}{suffix}.png"
                with atomic_path(target) as tmp:
                    Image.fromarray(array).save(tmp, format="PNG")
                written.append(target)
        self.message.value = "saved " + ", ".join(p.name for p in written)
        return written

    # -- display -------------------------------------------------------------------------

    def display(self) -> None:
        """Show the viewer in the running notebook."""
        from IPython.display import display

        display(self.widget)

    def _ipython_display_(self) -> None:
        # IPython asks for _ipython_display_ before _repr_mimebundle_. Handing the widget to
        # display() lets the installed ipywidgets show it its own way: 8 through the widget's
        # _repr_mimebundle_, 7 (Colab ships 7.7.1) through the widget's _ipython_display_ --
        # a 7.x widget has no _repr_mimebundle_, so delegating to it failed there.
        self.display()

    def _repr_mimebundle_(self, **kwargs):
        """The widget's view as a MIME bundle (ipywidgets 8); None on 7, which has none.

        IPython itself goes through :meth:`_ipython_display_`; this serves other callers.
        """
        own = getattr(self.widget, "_repr_mimebundle_", None)
        return own(**kwargs) if own is not None else None

