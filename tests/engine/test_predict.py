"""predict: label maps at the photo's size, overlays, flip TTA, errors, CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import cli
from celebseg_utils.errors import CelebsegError
from celebseg_utils.labels import FLIP_PERMUTATION, class_id
from celebseg_utils.engine.inference import pad_to_square, predict_logits
from celebseg_utils.engine.predict import image_files, predict_images


def _conv_model(size, kernel, channels=19):
    """A 1x1 convolution without bias: logits are a fixed linear map of the RGB values."""
    import keras

    inp = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(channels, 1, use_bias=False)
    model = keras.Model(inp, conv(inp))
    conv.set_weights([np.asarray(kernel, np.float32).reshape(1, 1, 3, channels)])
    return model


@pytest.fixture(scope="module")
def mobilenet_path(tmp_path_factory):
    """A random-init MobileNetV3-Large DeepLabV3+ at 128 px, saved as .keras (built once).

    Random weights are enough here: these tests check geometry and symmetry, not accuracy.
    """
    from celebseg_utils.models.deeplab import build_model

    path = tmp_path_factory.mktemp("model") / "m.keras"
    with warnings.catch_warnings():  # Keras's own saving code trips a numpy-2 deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        build_model(backbone="mobilenet_v3_large", image_size=128).save(path)
    return path


@pytest.fixture(scope="module")
def mobilenet(mobilenet_path):
    from celebseg_utils.engine.train import load_trained_model

    return load_trained_model(mobilenet_path)


def test_pad_to_square_centres_with_edge_or_zeros():
    img = np.tile(np.arange(1, 7, dtype=np.uint8).reshape(1, 6, 1), (2, 1, 1))  # (2, 6, 1)
    edge = pad_to_square(img)
    assert edge.shape == (6, 6, 1)
    assert (edge[..., 0] == np.arange(1, 7)).all()  # rows replicated above and below
    zero = pad_to_square(img, mode="constant")
    assert zero[..., 0].tolist() == [[0] * 6] * 2 + [[1, 2, 3, 4, 5, 6]] * 2 + [[0] * 6] * 2


def test_labels_land_on_the_right_pixels_of_a_non_square_photo():
    # skin logit = R / 255, background logit = 0.5 * G / 255; the photo is green everywhere
    # and also red in its 30 left columns: those must come out skin (1), the rest background
    kernel = np.zeros((3, 19))
    kernel[0, 1] = 1 / 255
    kernel[1, 0] = 0.5 / 255
    model = _conv_model(32, kernel)
    photo = np.zeros((40, 100, 3), np.uint8)
    photo[:, :, 1] = 255
    photo[:, :30, 0] = 255
    (logits,) = predict_logits(model, [photo])
    assert logits.shape == (40, 100, 19)
    label = logits.argmax(-1)
    # away from the edge (blurred by the 100 -> 32 -> 100 resizes) the labels are exact
    assert (label[:, :26] == 1).all()
    assert (label[:, 34:] == 0).all()
    np.testing.assert_allclose(logits[:, 50:, 0], 0.5, atol=1e-5)


def test_predict_writes_labels_and_overlay_of_the_photo_size(mobilenet, tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "wide.png"
    Image.fromarray(rng.integers(0, 256, (90, 150, 3), dtype=np.uint8)).save(src)
    written = predict_images(mobilenet, [src], tmp_path / "out", progress=False)
    assert [p.name for p in written] == ["wide.png", "wide_overlay.png"]
    label = Image.open(written[0])
    assert label.mode == "L" and label.size == (150, 90)
    assert np.asarray(label).max() < 19
    overlay = Image.open(written[1])
    assert overlay.mode == "RGB" and overlay.size == (150, 90)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["wide.png", "wide_overlay.png"]


def test_predict_on_a_real_sample_keeps_its_size(mobilenet_path, real_samples_dir, tmp_path):
    written = predict_images(mobilenet_path, [real_samples_dir / "0.jpg"], tmp_path,
                             progress=False, batch_size=1)
    size = Image.open(real_samples_dir / "0.jpg").size
    assert Image.open(written[0]).size == size
    assert Image.open(written[1]).size == size


def test_flip_tta_hand_check_on_a_linear_model():
    # l_eye logit = R / 255, everything else 0; photo red on its left half only.
    # plain: l_eye = 1 on the left. mirrored photo: red on the right -> l_eye = 1 there;
    # mirrored back it is on the left again, and swapping channels makes it r_eye.
    # average: left half l_eye = r_eye = 0.5, all other logits 0.
    l_eye, r_eye = class_id("l_eye"), class_id("r_eye")
    kernel = np.zeros((3, 19))
    kernel[0, l_eye] = 1 / 255
    model = _conv_model(8, kernel)
    photo = np.zeros((8, 8, 3), np.uint8)
    photo[:, :4, 0] = 255
    (plain,) = predict_logits(model, [photo])
    (tta,) = predict_logits(model, [photo], tta="flip")
    assert np.allclose(plain[:, :4, l_eye], 1.0) and np.allclose(plain[:, 4:], 0.0)
    expected = np.zeros((8, 8, 19), np.float32)
    expected[:, :4, l_eye] = 0.5
    expected[:, :4, r_eye] = 0.5
    np.testing.assert_allclose(tta, expected, atol=1e-6)


def test_flip_tta_is_mirror_equivariant_for_any_model(mobilenet):
    # tta(mirror(x)) == swap(mirror(tta(x))) holds for every model f; padding here is
    # vertical only, so mirroring commutes with the pad/resize/crop too.
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    tta, tta_mirrored = predict_logits(mobilenet, [photo, photo[:, ::-1]], tta="flip")
    (plain,) = predict_logits(mobilenet, [photo])
    scale = np.abs(tta).max()
    np.testing.assert_allclose(tta_mirrored, tta[:, ::-1][..., FLIP_PERMUTATION],
                               atol=1e-4 * scale)
    # and TTA really changed something (a random model is not mirror-symmetric)
    assert np.abs(plain - tta).max() > 1e-2 * scale


def test_not_an_image_or_missing_raises_naming_it(mobilenet, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    with pytest.raises(CelebsegError, match="notes.jpg"):
        predict_images(mobilenet, [bad], tmp_path / "out", progress=False)
    with pytest.raises(CelebsegError, match="nothere.png"):
        predict_images(mobilenet, [tmp_path / "nothere.png"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_model_with_wrong_channel_count_is_refused(tmp_path):
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src)
    with pytest.raises(CelebsegError, match="predicts 5 classes"):
        predict_images(_conv_model(8, np.zeros((3, 5)), channels=5), [src], tmp_path / "out",
                       progress=False)


def test_cli_predict_prints_outputs_and_exits_2_on_errors(mobilenet_path, tmp_path, capsys):
    src = tmp_path / "face.png"
    Image.fromarray(np.full((64, 48, 3), 128, np.uint8)).save(src)
    out = tmp_path / "pred"
    code = cli.main(["predict", "--model", str(mobilenet_path), str(src), "--out", str(out),
                     "--tta", "flip", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "face.png"), str(out / "face_overlay.png")]
    assert Image.open(out / "face.png").size == (48, 64)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    assert cli.main(["predict", "--model", str(mobilenet_path), str(bad), "--out",
                     str(out)]) == 2
    assert "bad.png" in capsys.readouterr().err
    assert cli.main(["predict", "--model", str(tmp_path / "none.keras"), str(src), "--out",
                     str(out)]) == 2
    assert "none.keras" in capsys.readouterr().err
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip archive")
    assert cli.main(["predict", "--model", str(junk), str(src), "--out", str(out)]) == 2
    assert "junk.keras" in capsys.readouterr().err


def test_image_files_expands_folders_to_their_photos(tmp_path):
    for name in ("b.png", "a.JPG", "c.jpeg", ".hidden.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deeper.jpg").write_bytes(b"")
    assert [p.name for p in image_files([tmp_path])] == ["a.JPG", "b.png", "c.jpeg"]
    # files stay as given, in order (a missing one is reported later by read_image)
    assert image_files(["z.jpg", tmp_path / "b.png"]) == [Path("z.jpg"), tmp_path / "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(CelebsegError, match="empty has no images"):
        image_files([tmp_path / "empty"])


def test_skip_bad_writes_the_readable_photos_only(tmp_path):
    good = tmp_path / "in" / "good.png"
    good.parent.mkdir()
    Image.fromarray(np.zeros((18, 30, 3), np.uint8)).save(good)
    (tmp_path / "in" / "bad.jpg").write_text("not a photo")
    model = _conv_model(8, np.zeros((3, 19)))
    with pytest.raises(CelebsegError, match="bad.jpg.*nothing was written.*--skip-bad"):
        predict_images(model, [tmp_path / "in"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    written = predict_images(model, [tmp_path / "in"], tmp_path / "out", progress=False,
                             skip_bad=True)
    assert [p.name for p in written] == ["good.png", "good_overlay.png"]
    assert Image.open(written[0]).size == (30, 18)
    with pytest.raises(CelebsegError, match="would overwrite an input photo"):
        predict_images(model, [good], good.parent, progress=False)
    with pytest.raises(CelebsegError, match="--batch-size must be at least 1"):
        predict_images(model, [good], tmp_path / "out2", batch_size=0, progress=False)


# --------------------------------------------------------------------------- --align

@pytest.fixture(scope="module")
def skin_model_path(tmp_path_factory):
    """A 64 px model that calls every pixel that is not black skin: what it parses shows
    exactly where the aligned crops lay."""
    kernel = np.zeros((3, 19))
    kernel[:, class_id("skin")] = 1 / 255
    path = tmp_path_factory.mktemp("skin") / "skin.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _conv_model(64, kernel).save(path)
    return path


def _two_face_photo(mini: Path, path: Path) -> list[tuple[float, float]]:
    """Two held-out real faces (test split of the default prepare split) in a 480x800 photo,
    one turned 15 degrees; returns where their middles are."""
    from celebseg_utils.face.align import apply, warp

    canvas = np.full((480, 800, 3), 90, np.uint8)
    middles = []
    for k, (s, deg, tx, ty) in ((14, (0.7, 0, 10, 60)), (17, (0.6, 15, 470, 100))):
        photo = np.asarray(Image.open(mini / "images" / f"{k}.jpg").convert("RGB"))
        t = np.radians(deg)
        m = np.array([[s * np.cos(t), -s * np.sin(t), tx], [s * np.sin(t), s * np.cos(t), ty],
                      [0, 0, 1]])
        warped, inside = warp(photo, m, canvas.shape[:2])
        canvas[inside] = warped[inside].astype(np.uint8)
        middles.append(tuple(apply(m, [[255.5, 300]])[0]))
    Image.fromarray(canvas).save(path)
    return middles


@pytest.mark.slow
def test_align_parses_every_face_where_it_is_and_saves_crops(real_mini_dir, skin_model_path,
                                                             tmp_path, capsys):
    from celebseg_utils.face.align import face_matrix, paste_back
    from celebseg_utils.face.detect import FaceDetector

    photo = tmp_path / "two.png"
    middles = _two_face_photo(real_mini_dir, photo)
    out = tmp_path / "pred"
    assert cli.main(["predict", "--model", str(skin_model_path), str(photo), "--out", str(out),
                     "--align", "--save-crops", "--tta", "flip", "--no-progress"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["two.png", "two_overlay.png"] + [
        f"two_face{i}{s}.png" for i in (0, 1) for s in ("", "_labels", "_overlay")])
    labels = np.asarray(Image.open(out / "two.png"))
    assert labels.shape == (480, 800)
    for i in (0, 1):
        assert Image.open(out / f"two_face{i}.png").size == (64, 64)
        assert (np.asarray(Image.open(out / f"two_face{i}_labels.png")) == 1).mean() > 0.95
    # skin exactly where one of the two aligned crops reaches, background elsewhere
    image = np.asarray(Image.open(photo))
    faces = FaceDetector()(image)
    assert len(faces) == 2
    reach = np.zeros(labels.shape, bool)
    for f in faces:
        p = paste_back(np.ones((64, 64), np.uint8), face_matrix(f.landmarks, 64), labels.shape)
        y0, y1, x0, x1 = p.box
        reach[y0:y1, x0:x1] |= p.claimed
    assert (labels[reach] == 1).mean() > 0.99 and (labels[~reach] == 0).all()
    for x, y in middles:
        assert labels[int(y), int(x)] == 1
    overlay = np.asarray(Image.open(out / "two_overlay.png")).astype(int)
    assert (overlay[~reach] == image[~reach]).all() and (overlay[reach] != image[reach]).any()


@pytest.mark.slow
def test_align_without_a_face_is_one_line_and_skip_bad_goes_on(skin_model_path, tmp_path,
                                                               capsys, real_mini_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(folder / "wall.png")
    Image.open(real_mini_dir / "images" / "15.jpg").save(folder / "face.jpg")
    out = tmp_path / "pred"
    args = ["predict", "--model", str(skin_model_path), str(folder), "--out", str(out),
            "--align", "--no-progress"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wall.png" in err[0] and "no face found" in err[0]
    assert "nothing was written" in err[0] and not out.exists()
    assert cli.main(args + ["--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(out / "face.png"), str(out / "face_overlay.png")]
    assert "warning: skipped" in captured.err and "wall.png" in captured.err
    # the face is there but, for this floor, too small: said so, with its size
    assert cli.main(["predict", "--model", str(skin_model_path), str(folder / "face.jpg"),
                     "--out", str(out), "--align", "--min-eye-distance", "500"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "too small" in line and "face.jpg" in line and "500 px" in line


def test_align_options_are_checked_before_work(skin_model_path, tmp_path, monkeypatch):
    import sys

    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(photo)
    with pytest.raises(CelebsegError, match="--save-crops .* add --align"):
        predict_images(skin_model_path, [photo], tmp_path / "o", save_crops=True)
    with pytest.raises(CelebsegError, match="--min-eye-distance must be positive"):
        predict_images(skin_model_path, [photo], tmp_path / "o", align=True, min_eye_distance=0)
    monkeypatch.setitem(sys.modules, "mtcnn", None)
    with pytest.raises(CelebsegError, match=r"pip install celebseg\[align\]"):
        predict_images(skin_model_path, [photo], tmp_path / "o", align=True)
    assert not (tmp_path / "o").exists()
