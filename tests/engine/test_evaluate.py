"""evaluate: one confusion matrix over the split, the numpy metric's numbers, the report
files; ``celebseg evaluate`` and ``compare`` end to end."""

import json
import warnings

import keras
import numpy as np
import pytest

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.cli import main
from celebseg_utils.errors import CelebsegError
from celebseg_utils.engine.compare import compare_runs
from celebseg_utils.engine.evaluate import evaluate_model, results_path
from celebseg_utils.engine.inference import load_model


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from celebseg_utils.data.prepare import prepare_dataset
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    root = tmp_path_factory.mktemp("eval")
    write_synthetic_dataset(root / "raw", 24, image_size=64, seed=3, progress=False)
    prepare_dataset(root / "raw", root / "prep", workers=1, progress=False)
    return root / "prep"


def tiny_model(seed=0, classes=L.NUM_CLASSES):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, keras.layers.Conv2D(classes, 1)(x))


def independent_counts(model, prepared, split="test"):
    """Per-class true/false positives and false negatives, counted pixel by pixel in numpy.

    Photos come from the same pipeline evaluate uses (one at a time); the truth is read
    straight from the label PNGs, so a mix-up of order or size in evaluate would show.
    """
    from PIL import Image

    from celebseg_utils.data.pipeline import make_dataset

    ids = layout.read_split(prepared, split)
    photos = [x.numpy() for x, _ in make_dataset(prepared, split, image_size=64, batch_size=1)]
    assert len(photos) == len(ids)
    tp, fp, fn = (np.zeros(L.NUM_CLASSES, np.int64) for _ in range(3))
    for k, photo in zip(ids, photos):
        truth = np.asarray(Image.open(layout.label_path(prepared, k)))
        pred = np.argmax(model.predict(photo, verbose=0)[0], axis=-1)
        assert truth.shape == pred.shape == (64, 64)
        for c in range(L.NUM_CLASSES):
            tp[c] += np.sum((truth == c) & (pred == c))
            fp[c] += np.sum((truth != c) & (pred == c))
            fn[c] += np.sum((truth == c) & (pred != c))
    return tp, fp, fn


def test_evaluate_equals_numpy_counts_on_the_same_images(prepared, tmp_path):
    model = tiny_model()
    out = tmp_path / "report" / "results.json"
    results = evaluate_model(model, prepared, split="test", out=out, batch_size=3,
                             progress=False)
    tp, fp, fn = independent_counts(model, prepared)
    cm = np.array(results["confusion_matrix"])
    n_pixels = len(layout.read_split(prepared, "test")) * 64 * 64
    assert cm.sum() == n_pixels
    np.testing.assert_array_equal(np.diag(cm), tp)
    np.testing.assert_array_equal(cm.sum(axis=0) - np.diag(cm), fp)
    np.testing.assert_array_equal(cm.sum(axis=1) - np.diag(cm), fn)
    assert tp.sum() > 0 and fp.sum() > 0  # a random model: neither all right nor all wrong
    # The scores, from the hand counts with the textbook formulas.
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        f1 = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
    assert results["miou"] == pytest.approx(np.nanmean(iou), abs=1e-12)
    assert results["mean_f1"] == pytest.approx(np.nanmean(f1[1:]), abs=1e-12)
    assert results["pixel_accuracy"] == pytest.approx(tp.sum() / n_pixels, abs=1e-12)
    for c, name in enumerate(L.CLASS_NAMES):
        for key, want in (("iou", iou[c]), ("f1", f1[c]), ("precision", precision[c]),
                          ("recall", recall[c])):
            got = results["per_class"][name][key]
            assert (got is None and np.isnan(want)) or got == pytest.approx(want, abs=1e-12)
    # One matrix over the split: the batch size changes nothing.
    again = evaluate_model(model, prepared, split="test", batch_size=1, progress=False)
    assert again["confusion_matrix"] == results["confusion_matrix"]
    assert results["split"] == "test" and results["num_images"] == len(layout.read_split(prepared, "test"))
    saved = json.loads(out.read_text())  # strict JSON: no NaN tokens
    assert "NaN" not in out.read_text() and saved["miou"] == pytest.approx(results["miou"])
    assert {p.name for p in out.parent.iterdir()} == {"results.json", "results.md",
                                                     "confusion_matrix.png", "per_class.png"}
    assert "| hair |" in (out.parent / "results.md").read_text()


def test_perfect_predictions_score_one(prepared, tmp_path, monkeypatch):
    """A model that returns the truth as logits scores 1.0 everywhere it is defined."""
    from celebseg_utils.engine import evaluate as E

    truths = {}
    import celebseg_utils.data.pipeline as D

    real = D.make_dataset

    def capture(*args, **kwargs):
        ds = real(*args, **kwargs)
        for images, labels in ds:
            truths[int(np.sum(images.numpy()))] = labels.numpy()[..., 0]
        return ds

    class Oracle(keras.Model):
        def __init__(self):
            super().__init__()
            self._input_shape = (None, 64, 64, 3)

        @property
        def input_shape(self):
            return (None, 64, 64, 3)

        @property
        def output_shape(self):
            return (None, 64, 64, L.NUM_CLASSES)

        def predict_on_batch(self, images):
            return np.eye(L.NUM_CLASSES)[truths[int(np.sum(np.asarray(images)))]] * 10

    monkeypatch.setattr(D, "make_dataset", capture)
    results = E.evaluate_model(Oracle(), prepared, split="val", progress=False)
    assert results["miou"] == pytest.approx(1.0) and results["mean_f1"] == pytest.approx(1.0)
    assert results["pixel_accuracy"] == pytest.approx(1.0)


def test_wrong_class_count_and_missing_model(prepared, tmp_path, capsys):
    with pytest.raises(CelebsegError, match="19"):
        evaluate_model(tiny_model(classes=5), prepared, progress=False)
    code = main(["evaluate", "--model", str(tmp_path / "nope.keras"), "--prepared", str(prepared)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nope.keras" in err[0]


def test_cli_evaluate_and_compare(prepared, tmp_path, capsys):
    runs = []
    for i, loss in enumerate(("sparse_ce", "dice")):
        run = tmp_path / f"run{i}"
        run.mkdir()
        with warnings.catch_warnings():  # Keras's own saving code trips a numpy-2 deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            tiny_model(seed=i).save(run / "final.keras")
        (run / "config.yaml").write_text(f"loss:\n  name: {loss}\n")
        assert main(["evaluate", "--model", str(run / "final.keras"),
                     "--prepared", str(prepared)]) == 0
        assert (run / "eval_test" / "results.json").exists()
        runs.append(run)
    capsys.readouterr()
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "sparse_ce IoU / F1" in table and "dice IoU / F1" in table
    assert "neck_l" not in table and "necklace *(rare)*" in table  # display names, not codes
    assert "sparse_ce P / R" in table and "| earring |" in table  # the rare classes' P / R table
    result = compare_runs(runs)
    first = json.loads((runs[0] / "eval_test" / "results.json").read_text())
    assert result["runs"]["sparse_ce"]["miou"] == first["miou"]
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 10_000
    with pytest.raises(CelebsegError, match="no results.json"):
        compare_runs([tmp_path])


@pytest.mark.slow
def test_evaluate_a_deeplab_model_from_the_factory(prepared):
    """Random-init MobileNetV3 DeepLabV3+ at 64 px: the real model class goes through too."""
    from celebseg_utils.models.deeplab import build_model

    model = build_model(backbone="mobilenet_v3_large", image_size=64)
    results = evaluate_model(model, prepared, split="val", batch_size=4, progress=False)
    cm = np.array(results["confusion_matrix"])
    assert cm.sum() == len(layout.read_split(prepared, "val")) * 64 * 64
    assert results["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())


def test_results_path_file_folder_or_beside_the_model(tmp_path):
    model = tmp_path / "run" / "final.keras"
    assert results_path(model, "val") == tmp_path / "run" / "eval_val" / "results.json"
    assert results_path(model, "val", tmp_path / "r.json") == tmp_path / "r.json"
    assert results_path(model, "val", tmp_path / "eval") == tmp_path / "eval" / "results.json"
    (tmp_path / "odd.json").mkdir()  # an existing folder wins over the suffix
    assert results_path(None, "test", tmp_path / "odd.json") == tmp_path / "odd.json" / "results.json"
    assert results_path(None, "test") is None


def test_the_one_loader_names_the_problem(tmp_path):
    with pytest.raises(CelebsegError, match="nope.keras not found"):
        load_model(tmp_path / "nope.keras")
    with pytest.raises(CelebsegError, match="folder without a final.keras"):
        load_model(tmp_path)
    (tmp_path / "cut.keras").write_bytes(b"PK\x03\x04 and then nothing")
    with pytest.raises(CelebsegError, match="cut.keras is not a .keras archive"):
        load_model(tmp_path / "cut.keras")
    with pytest.raises(CelebsegError, match="predicts 5 classes"):
        load_model(tiny_model(classes=5))
    model = tiny_model()
    assert load_model(model) is model
