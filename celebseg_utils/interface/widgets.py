"""An interactive mask viewer for a prepared dataset (ipywidgets), testable without a browser.

:class:`MaskViewer` shows one image of a split at a time: the ground-truth overlay and, when
a model or a folder of predicted label maps is given, the prediction beside it with the
image's IoU. Controls: an index slider linked to a number box, one checkbox per class (with
its palette colour), "all"/"none" buttons and an opacity slider. Pictures are drawn with
:mod:`celebseg_utils.visualization.viz` into one PNG shown by an ``ipywidgets.Image``; :meth:`MaskViewer.render`
returns the same pictures as numpy arrays, which is what the tests check.

ipywidgets is imported only when a viewer is built, so ``import celebseg_utils`` never needs it.

>>> from celebseg_utils.interface.widgets import MaskViewer
>>> viewer = MaskViewer("prepared", split="val", predictions_dir="runs/ce/predictions")  # doctest: +SKIP
>>> viewer  # in Jupyter: the widget  # doctest: +SKIP
>>> viewer.slider.value = 3; viewer.class_toggles[13].value = False  # hide hair  # doctest: +SKIP
>>> sorted(viewer.render())  # doctest: +SKIP
['canvas', 'iou', 'photo', 'prediction', 'prediction_label', 'truth', 'truth_label']
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.visualization import viz
from celebseg_utils.errors import CelebsegError

_GAP = 8  # white pixels between the two pictures of the canvas
_CACHE = 16  # images kept decoded, so that moving a control does not re-read files


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


class MaskViewer:
    """Browse a split of a prepared folder: photo, ground truth and prediction overlays.

    ``split``: "train", "val", "test", or None for every labelled image. ``model``: a keras
    model or a model path (:func:`celebseg_utils.engine.inference.load_model`), whose
    prediction is what ``celebseg predict`` writes for the photo file, resized to the label
    map's shape (nearest neighbour) if it differs; ``predictions_dir``: a folder of
    ``<k>.png`` label maps instead. ``image_size``: side of the pictures drawn (default: the
    label size). IoU is of the prediction itself, whatever classes are hidden.

    >>> v = MaskViewer("prepared", split="val")  # doctest: +SKIP
    >>> v.opacity.value = 1.0; v.render()["truth"].shape  # doctest: +SKIP
    (512, 512, 3)
    """

    def __init__(self, prepared_dir, split: str | None = "val", model=None,
                 predictions_dir=None, image_size: int | None = None):
        import ipywidgets as w

        from celebseg_utils.engine import inference

        self.prepared = Path(prepared_dir)
        self.info = layout.read_prepare_info(self.prepared)
        self.ids = layout.read_split(self.prepared, split) if split else self._all_ids()
        if not self.ids:
            raise CelebsegError(f"split {split!r} of {self.prepared} has no images: pick another split")
        if model is not None and predictions_dir is not None:
            raise CelebsegError("give MaskViewer either model= or predictions_dir=, not both")
        self.model = inference.load_model(model) if model is not None else None
        self.predictions_dir = Path(predictions_dir) if predictions_dir is not None else None
        if self.predictions_dir is not None and not self.predictions_dir.is_dir():
            raise CelebsegError(f"predictions_dir {self.predictions_dir} is not a folder: "
                                f"write one with `celebseg predict` or pass model=")
        self.size = int(image_size or self.info.get("label_size") or 512)
        self._cache: OrderedDict = OrderedDict()

        n = len(self.ids)
        self.slider = w.IntSlider(value=0, min=0, max=n - 1, description="index",
                                  continuous_update=False, disabled=n == 1)
        self.index_box = w.BoundedIntText(value=0, min=0, max=n - 1, layout=w.Layout(width="90px"))
        self._link = w.link((self.slider, "value"), (self.index_box, "value"))
        self.id_label = w.HTML()
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
        self.image = w.Image(format="png")
        self.iou_label = w.HTML()

        grid = w.GridBox([w.HBox([s, c]) for s, c in zip(swatches, self.class_toggles)],
                         layout=w.Layout(grid_template_columns="repeat(5, 150px)"))
        self.widget = w.VBox([
            w.HBox([self.slider, self.index_box, self.id_label]),
            w.HBox([self.opacity, self.show_all, self.show_none]),
            grid, self.image, self.iou_label,
        ])
        self._batch = False
        for control in [self.slider, self.opacity, *self.class_toggles]:
            control.observe(lambda _: self.refresh(), names="value")
        self.refresh()

    # -- state ---------------------------------------------------------------------------

    @property
    def image_id(self) -> int:
        """The dataset id of the image shown."""
        return self.ids[self.slider.value]

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

    # -- pictures ------------------------------------------------------------------------

    def _load(self, k: int) -> dict:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        photo_file = layout.photo_path(self.prepared, k, self.info)
        if not photo_file.is_file():
            raise CelebsegError(f"missing photo {photo_file}: the raw data moved? prepare.json "
                                f"records data_root={self.info['data_root']}")
        with Image.open(photo_file) as im:
            full = im.convert("RGB")
        photo = np.asarray(full.resize((self.size, self.size), Image.BILINEAR))
        truth = _read_label(layout.label_path(self.prepared, k))
        item = {"photo": photo, "truth_label": truth}
        if self.model is not None:
            item["prediction_label"] = self._predict(full, truth.shape)
        elif self.predictions_dir is not None:
            pred = _read_label(self.predictions_dir / f"{k}.png")
            item["prediction_label"] = (pred if pred.shape == truth.shape
                                        else viz.resize_label(pred, truth.shape))
        self._cache[k] = item
        if len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        return item

    def _predict(self, photo: Image.Image, label_shape) -> np.ndarray:
        """What `celebseg predict` writes for the photo file, brought to the label's shape
        (nearest neighbour) as a ``predictions_dir`` map would be."""
        from celebseg_utils.engine import inference

        (pred,) = inference.predict_labels(self.model, [np.asarray(photo)])
        return pred if pred.shape == tuple(label_shape) else viz.resize_label(pred, label_shape)

    def render(self) -> dict:
        """What the viewer draws for the current controls, as numpy arrays.

        Keys: ``photo`` (S, S, 3), ``truth_label`` (label size), ``truth`` overlay (S, S, 3),
        ``canvas`` (the PNG shown) and, with a prediction, ``prediction_label``,
        ``prediction`` overlay and ``iou`` (a numpy float).
        """
        item = self._load(self.image_id)
        hidden, alpha = self.hidden_classes, float(self.opacity.value)
        out = {"photo": item["photo"], "truth_label": item["truth_label"],
               "truth": viz.overlay(item["photo"], item["truth_label"], alpha, hidden)}
        pictures = [out["truth"]]
        if "prediction_label" in item:
            out["prediction_label"] = item["prediction_label"]
            out["prediction"] = viz.overlay(item["photo"], item["prediction_label"], alpha, hidden)
            out["iou"] = np.float64(image_iou(item["truth_label"], item["prediction_label"]))
            gap = np.full((self.size, _GAP, 3), 255, np.uint8)
            pictures += [gap, out["prediction"]]
        out["canvas"] = np.concatenate(pictures, axis=1)
        return out

    def refresh(self) -> None:
        """Redraw the picture and the labels from the controls (called on every change)."""
        if self._batch:
            return
        drawn = self.render()
        self.image.value = _png(drawn["canvas"])
        self.id_label.value = (f"image id <b>{self.image_id}</b> "
                               f"({self.slider.value + 1} of {len(self.ids)})")
        titles = "ground truth" + (" | prediction" if "iou" in drawn else "")
        self.iou_label.value = titles + (f" — IoU {drawn['iou']:.3f}" if "iou" in drawn else "")

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
