"""export: SavedModel / TFLite / ONNX agree with the Keras model on the real samples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import cli
from celebseg_utils.errors import CelebsegError
from celebseg_utils.engine.export import export_model, run_onnx, run_savedmodel, run_tflite

SIZE = 128
RUNNERS = {"savedmodel": run_savedmodel, "tflite": run_tflite, "onnx": run_onnx}
OUT_NAMES = {"savedmodel": "model_sm", "tflite": "model.tflite", "onnx": "model.onnx"}


@pytest.fixture(scope="module")
def keras_model_path(tmp_path_factory):
    """A random-init MobileNetV3-Large DeepLabV3+ at 128 px, saved as .keras (built once).

    Random weights are acceptable for parity: the exports must reproduce whatever function
    the Keras model computes, trained or not (a trained one only has larger logit margins).
    """
    from celebseg_utils.models.deeplab import build_model

    path = tmp_path_factory.mktemp("model") / "m.keras"
    with warnings.catch_warnings():  # Keras's own saving code trips a numpy-2 deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        build_model(backbone="mobilenet_v3_large", image_size=SIZE).save(path)
    return path


@pytest.fixture(scope="module")
def real_batch(real_samples_dir):
    """The two real photos resized to 128 px, float32 0..255 (2, 128, 128, 3)."""
    photos = [Image.open(real_samples_dir / f"{k}.jpg").convert("RGB")
              .resize((SIZE, SIZE), Image.BILINEAR) for k in (0, 1)]
    return np.stack([np.asarray(p, np.float32) for p in photos])


@pytest.fixture(scope="module")
def keras_logits(keras_model_path, real_batch):
    from celebseg_utils.engine.train import load_trained_model

    return np.asarray(load_trained_model(keras_model_path)(real_batch, training=False))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["savedmodel", "tflite", "onnx"])
def test_export_argmax_agrees_with_keras_on_real_samples(fmt, keras_model_path, real_batch,
                                                         keras_logits, tmp_path):
    out = tmp_path / OUT_NAMES[fmt]
    assert export_model(keras_model_path, format=fmt, out=out) == out
    # nothing but the export itself is left in the folder (temporary names were renamed)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    logits = RUNNERS[fmt](out, real_batch)
    assert logits.shape == (2, SIZE, SIZE, 19) and logits.dtype == np.float32
    agree = (logits.argmax(-1) == keras_logits.argmax(-1)).mean()
    assert agree >= 0.999, f"{fmt}: argmax agrees on only {agree:.4%} of pixels"
    # the random model's logits are not all equal, so agreement is not by a constant argmax
    assert len(np.unique(keras_logits.argmax(-1))) > 1


@pytest.mark.slow
def test_cli_export_savedmodel_replaces_an_existing_folder(keras_model_path, real_batch,
                                                           keras_logits, tmp_path, capsys):
    out = tmp_path / "sm"
    out.mkdir()
    (out / "stale.txt").write_text("old export")
    (out / "saved_model.pb").write_bytes(b"old")  # an earlier export: replaced, not refused
    code = cli.main(["export", "--model", str(keras_model_path), "--format", "savedmodel",
                     "--out", str(out)])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert not (out / "stale.txt").exists() and (out / "saved_model.pb").stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["sm"]
    np.testing.assert_allclose(run_savedmodel(out, real_batch), keras_logits, atol=1e-4)


def test_bad_format_or_model_is_a_user_error(keras_model_path, tmp_path, capsys):
    with pytest.raises(CelebsegError, match="coreml"):
        export_model(keras_model_path, format="coreml", out=tmp_path / "m")
    assert cli.main(["export", "--model", str(tmp_path / "none.keras"), "--format", "onnx",
                     "--out", str(tmp_path / "m.onnx")]) == 2
    assert "none.keras" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CelebsegError, match="folder"):
        export_model(keras_model_path, format="savedmodel", out=blocker)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_outputs_that_would_destroy_user_files_are_refused_before_loading(tmp_path):
    # the model does not exist: these checks must come first (before a slow conversion)
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"user data")
    for fmt in ("onnx", "tflite"):
        with pytest.raises(CelebsegError, match=f"folder; the {fmt} export is one file"):
            export_model(tmp_path / "none.keras", format=fmt, out=folder)
    with pytest.raises(CelebsegError, match="not a SavedModel and not empty"):
        export_model(tmp_path / "none.keras", format="savedmodel", out=folder)
    assert [p.name for p in folder.iterdir()] == ["a.jpg"]
    assert (folder / "a.jpg").read_bytes() == b"user data"
    # an empty folder or an earlier SavedModel is fine to replace: the model check comes next
    (tmp_path / "empty").mkdir()
    with pytest.raises(CelebsegError, match="none.keras not found"):
        export_model(tmp_path / "none.keras", format="savedmodel", out=tmp_path / "empty")
