import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError

widgets = pytest.importorskip("celebseg_utils.interface.widgets")

S = 16  # label size; photos are 2 * S like the real data (1024 photos, 512 masks)
IDS = (3, 7, 12)
SKIN, HAIR, NOSE = 1, 13, 2


def truth_of(k: int) -> np.ndarray:
    """Left half skin, right half hair; image k also has a nose square of side k // 3 + 1."""
    label = np.zeros((S, S), np.uint8)
    label[2:14, :8] = SKIN
    label[2:14, 8:] = HAIR
    n = k // 3 + 1
    label[5:5 + n, 5:5 + n] = NOSE
    return label


def make_prepared(tmp_path: Path, val=IDS) -> Path:
    raw, prep = tmp_path / "raw", tmp_path / "prep"
    rng = np.random.default_rng(1)
    for k in IDS:
        photo = rng.integers(40, 200, (2 * S, 2 * S, 3), dtype=np.uint8)
        photo[:, :S, 0] = 250  # left half strongly red (used by the model test)
        photo[:, S:, 0] = 10
        layout.image_path(raw, k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo).save(layout.image_path(raw, k), quality=95)
        layout.label_path(prep, k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(truth_of(k)).save(layout.label_path(prep, k))
    layout.split_path(prep, "val").parent.mkdir(parents=True)
    layout.split_path(prep, "val").write_text("".join(f"{k}\n" for k in val))
    layout.info_path(prep).write_text(json.dumps({
        "data_root": str(raw), "label_size": S, "num_images": len(IDS),
        "splits": {"train": 0, "val": len(val), "test": 0}, "problems": 0}))
    return prep


@pytest.fixture
def prep(tmp_path):
    return make_prepared(tmp_path)


def test_importing_the_package_does_not_import_ipywidgets():
    import subprocess

    code = "import sys, celebseg_utils, celebseg_utils.interface.widgets; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_truth_overlay_follows_opacity_and_class_toggles(prep):
    v = widgets.MaskViewer(prep, split="val")
    first = v.render()
    assert set(first) == {"photo", "truth_label", "truth", "canvas"}
    assert first["photo"].shape == (S, S, 3) and first["truth"].shape == (S, S, 3)
    np.testing.assert_array_equal(first["truth_label"], truth_of(3))
    photo, label = first["photo"].astype(float), first["truth_label"]

    # opacity 0.5: each labelled pixel is the rounded mean of photo and palette colour
    expected = np.floor(0.5 * photo + 0.5 * L.OVERLAY_PALETTE[label] + 0.5).astype(np.uint8)
    expected[label == 0] = first["photo"][label == 0]  # background stays the photo
    np.testing.assert_array_equal(first["truth"], expected)

    v.opacity.value = 1.0
    drawn = v.render()["truth"]
    np.testing.assert_array_equal(drawn[label == HAIR], np.tile(L.OVERLAY_PALETTE[HAIR], ((label == HAIR).sum(), 1)))

    v.class_toggles[HAIR].value = False
    assert v.hidden_classes == [HAIR]
    drawn = v.render()
    np.testing.assert_array_equal(drawn["truth"][label == HAIR], drawn["photo"][label == HAIR])
    np.testing.assert_array_equal(drawn["truth"][label == SKIN],
                                  np.tile(L.OVERLAY_PALETTE[SKIN], ((label == SKIN).sum(), 1)))
    # What the widget shows is exactly the rendered canvas.
    shown = np.asarray(Image.open(io.BytesIO(v.image.value)))
    np.testing.assert_array_equal(shown, drawn["canvas"])

    v.opacity.value = 0.0
    np.testing.assert_array_equal(v.render()["truth"], drawn["photo"])

    v.show_none.click()
    assert v.hidden_classes == list(range(L.NUM_CLASSES))
    v.show_all.click()
    assert v.hidden_classes == []


def test_slider_and_box_move_together_and_change_the_image(prep):
    v = widgets.MaskViewer(prep, split="val")
    assert (v.slider.max, v.index_box.max) == (2, 2)
    assert "image id <b>3</b> (1 of 3)" in v.id_label.value
    before = v.image.value
    v.slider.value = 2
    assert v.index_box.value == 2 and v.image_id == 12
    assert "image id <b>12</b> (3 of 3)" in v.id_label.value
    np.testing.assert_array_equal(v.render()["truth_label"], truth_of(12))
    assert v.image.value != before
    v.index_box.value = 1
    assert v.slider.value == 1 and v.image_id == 7


# Run in a fresh interpreter: an IPython shell is a process-wide singleton, and the notebook
# tests of the same session must not inherit one. The interpreter is the one running pytest,
# so the browser test's ipywidgets-7 environment runs this same check under 7.
_DISPLAY_SCRIPT = r"""
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
import ipywidgets
from celebseg_utils.interface.widgets import MaskViewer

shell = InteractiveShell.instance()
shell.user_ns["v"] = MaskViewer(sys.argv[1], split="val")
outputs = []
for cell in ["v", "v.display()", "from IPython.display import display; display(v)"]:
    with capture_output() as cap:
        shell.run_cell(cell).raise_error()  # the Colab failure was an AttributeError here
    outputs.append([o.data for o in cap.outputs])
bundle = shell.user_ns["v"]._repr_mimebundle_()
print(json.dumps({"ipywidgets": ipywidgets.__version__, "model_id": shell.user_ns["v"].widget.model_id,
                  "outputs": outputs, "bundle": bundle}))
"""


def test_the_viewer_displays_as_its_widget_under_this_ipywidgets(prep, tmp_path):
    import subprocess

    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    done = subprocess.run([sys.executable, "-c", _DISPLAY_SCRIPT, str(prep)], capture_output=True,
                          text=True, env=env, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    view = {"version_major": 2, "version_minor": 0, "model_id": got["model_id"]}
    # The notebook's last expression, viewer.display() and display(viewer): each publishes
    # exactly one bundle, the widget's view (what the front end renders) plus its text.
    for published in got["outputs"]:
        assert len(published) == 1
        assert published[0]["application/vnd.jupyter.widget-view+json"] == view
        assert published[0]["text/plain"].startswith("VBox(")
    if got["ipywidgets"].startswith("7."):
        assert got["bundle"] is None  # a 7.x widget has no bundle of its own to hand over
    else:
        assert got["bundle"]["application/vnd.jupyter.widget-view+json"] == view


def test_prediction_folder_side_by_side_with_iou(prep, tmp_path):
    same, shifted = tmp_path / "same", tmp_path / "shifted"
    same.mkdir()
    shifted.mkdir()
    for k in IDS:
        # twice the label size on purpose: the viewer brings predictions to the label size
        Image.fromarray(truth_of(k).repeat(2, axis=0).repeat(2, axis=1)).save(same / f"{k}.png")
        Image.fromarray(np.roll(truth_of(k), 2, axis=1)).save(shifted / f"{k}.png")

    v = widgets.MaskViewer(prep, split="val", predictions_dir=same)
    drawn = v.render()
    assert drawn["iou"] == 1.0 and "IoU 1.000" in v.iou_label.value
    assert drawn["canvas"].shape == (S, 2 * S + 8, 3)
    np.testing.assert_array_equal(drawn["canvas"][:, S + 8:], drawn["prediction"])
    np.testing.assert_array_equal(drawn["prediction"], drawn["truth"])

    v = widgets.MaskViewer(prep, split="val", predictions_dir=shifted)
    v.slider.value = 0  # image 3: nose is the 2x2 square at rows 5-6, cols 5-6
    drawn = v.render()
    truth, pred = drawn["truth_label"], drawn["prediction_label"]
    np.testing.assert_array_equal(pred, np.roll(truth_of(3), 2, axis=1))
    # by hand, per class: |T & P| / |T | P|
    # background: rows 0-1, 14-15 all 64 px in both -> 64/64
    # skin  T: 12x8 minus nose 4 = 92 ; P: cols 2-9 = 96 minus nose (cols 7-8) 4 = 92 ; both cols 2-7 minus
    #   T nose (cols 5-6, 4 px) minus P nose at cols 7 (2 px) -> 72-4-2 = 66 ; union 92+92-66 = 118
    # hair  T: cols 8-15 = 96 ; P: cols 10-15 and 0-1 = 96 ; both cols 10-15 = 72 ; union 120
    # nose  T: cols 5-6 ; P: cols 7-8 ; no overlap -> 0 / 8
    expected = (64 / 64 + 66 / 118 + 72 / 120 + 0 / 8) / 4
    assert drawn["iou"] == pytest.approx(expected, abs=1e-12)
    assert drawn["iou"] == pytest.approx(widgets.image_iou(truth, pred))
    assert f"IoU {expected:.3f}" in v.iou_label.value


def test_image_iou_by_hand():
    t = np.array([[0, 0, 1, 1]])
    assert widgets.image_iou(t, t) == 1.0
    assert widgets.image_iou(t, np.array([[0, 1, 1, 1]])) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert widgets.image_iou(t, np.array([[2, 2, 2, 2]])) == 0.0  # classes 0, 1, 2 all at 0


def test_bad_inputs_name_the_fix(prep, tmp_path):
    with pytest.raises(CelebsegError, match="predictions_dir .* is not a folder"):
        widgets.MaskViewer(prep, predictions_dir=tmp_path / "nope")
    with pytest.raises(CelebsegError, match="not a prepared folder"):
        widgets.MaskViewer(tmp_path)
    with pytest.raises(CelebsegError, match="model .* not found"):
        widgets.MaskViewer(prep, model=tmp_path / "m.keras")
    empty = tmp_path / "pred_empty"
    empty.mkdir()
    with pytest.raises(CelebsegError, match=r"missing label map .*3\.png"):
        widgets.MaskViewer(prep, predictions_dir=empty)
    all_ids = widgets.MaskViewer(prep, split=None)
    assert all_ids.ids == [3, 7, 12]


@pytest.mark.slow
def test_model_prediction_is_argmax_at_model_input_size(prep, tmp_path):
    keras = pytest.importorskip("keras")
    # 1x1 conv: skin logit = R - 128, background 0, others -1000 -> skin exactly where red > 128
    inp = keras.Input((2 * S, 2 * S, 3))
    conv = keras.layers.Conv2D(L.NUM_CLASSES, 1)
    model = keras.Model(inp, conv(inp))
    kernel = np.zeros((1, 1, 3, L.NUM_CLASSES), np.float32)
    kernel[0, 0, 0, SKIN] = 1.0
    bias = np.full(L.NUM_CLASSES, -1000.0, np.float32)
    bias[0], bias[SKIN] = 0.0, -128.0
    conv.set_weights([kernel, bias])
    path = tmp_path / "tiny.keras"
    model.save(path)

    for m in (model, path):
        v = widgets.MaskViewer(prep, split="val", model=m)
        v.slider.value = 1
        drawn = v.render()
        photo = np.asarray(Image.open(layout.image_path(tmp_path / "raw", 7)).convert("RGB"))
        expected = np.where(photo[::2, ::2, 0] > 128, SKIN, 0)  # model at 32 px, labels at 16
        np.testing.assert_array_equal(drawn["prediction_label"], expected)
        assert drawn["iou"] == pytest.approx(widgets.image_iou(truth_of(7), expected))


@pytest.mark.slow
def test_viewer_and_figures_show_what_celebseg_predict_writes(prep, tmp_path):
    # One way to run a model (engine.inference): the viewer's and the figures' prediction of
    # a photo is, pixel for pixel, the label map `celebseg predict` writes for its file,
    # brought to the 16 px labels by nearest neighbour (every second pixel of the 32 px map).
    import keras

    from celebseg_utils.engine.predict import predict_images
    from celebseg_utils.interface import notebook_figures as F
    from celebseg_utils.visualization import viz

    keras.utils.set_random_seed(3)
    inputs = keras.Input((24, 24, 3))  # not the photos' 32 px: the resize is part of the path
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(L.NUM_CLASSES, 3, padding="same")(x))
    path = tmp_path / "tiny.keras"
    model.save(path)
    photos = [layout.image_path(tmp_path / "raw", k) for k in IDS]
    predict_images(path, photos, tmp_path / "pred", progress=False)

    viewer = widgets.MaskViewer(prep, split="val", model=path)
    from_folder = widgets.MaskViewer(prep, split="val", predictions_dir=tmp_path / "pred")
    stretched_differs = []
    for i, (k, photo_file) in enumerate(zip(IDS, photos)):
        written = np.asarray(Image.open(tmp_path / "pred" / f"{k}.png"))
        assert written.shape == (2 * S, 2 * S)
        assert len(np.unique(written)) >= 3  # a model that says several things, not one
        viewer.slider.value = from_folder.slider.value = i
        np.testing.assert_array_equal(viewer.render()["prediction_label"], written[::2, ::2])
        np.testing.assert_array_equal(from_folder.render()["prediction_label"], written[::2, ::2])
        photo = np.asarray(Image.open(photo_file).convert("RGB"))
        np.testing.assert_array_equal(F.predict_label(model, photo, 2 * S), written)
        np.testing.assert_array_equal(F.predict_label(path, photo, S), written[::2, ::2])
        # what the viewer drew before issue #23: the photo stretched (bilinear, no antialias)
        # to the model's 24 px, the argmax there, nearest neighbour to the labels
        stretched = np.asarray(Image.fromarray(photo).resize((24, 24), Image.BILINEAR), np.float32)
        old = np.argmax(np.asarray(model(stretched[None], training=False))[0], -1).astype(np.uint8)
        stretched_differs.append(not np.array_equal(viz.resize_label(old, (S, S)),
                                                    written[::2, ::2]))
    assert any(stretched_differs)  # the parity is not a coincidence of the two paths
