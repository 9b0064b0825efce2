"""Reliability: photos and labels as they come from phones, scanners and image editors, given
to every command that reads one (``prepare --images/--labels``, ``predict``), and fused
re-runs into an existing ``--out`` (issue #25).

Fused cases start from six 32x32 JPEG photos with 16x16 grey id labels (``_fused``); the
common witnesses are those of the suite: a one-line ``error: ...`` with exit 2 naming the
file, and a failed run leaves ``--out`` exactly as it was (``out_state``: every file's
digest, every link's target, every folder) with nothing beside it.

Predict cases use a 1x1-convolution "model" saved as ``.keras`` (logits a fixed linear map
of each pixel's RGB): two photos that decode to the same pixels give the same label map,
exactly, so "the rotated photo parses as the upright one" is an equality, not a score.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils.data import layout
from harness import assert_user_error, partial_files, run_cli

N, PHOTO, LABEL = 6, 32, 16
ORIENTATION = 0x0112


# --------------------------------------------------------------------------- helpers

def _photo(k: int, h: int = PHOTO, w: int = PHOTO) -> np.ndarray:
    """A smooth photo (JPEG keeps it within a few grey levels), different for every k."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                     np.full((h, w), 40 * k % 256)], axis=-1).astype(np.uint8)


def _label(k: int, h: int = LABEL, w: int = LABEL, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(1000 * seed + k).integers(0, 19, (h, w)).astype(np.uint8)


def _fused(root: Path, seed: int = 0) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for k in range(N):
        Image.fromarray(_photo(k)).save(images / f"{k}.jpg", quality=95)
        Image.fromarray(_label(k, seed=seed), "L").save(labels / f"{k}.png")
    return images, labels


def prepare(images: Path, labels: Path, out: Path, *extra):
    return run_cli(["prepare", "--images", images, "--labels", labels, "--out", out,
                    "--workers", "1", "--split", "train=0.5,val=0.5", *extra])


def out_state(root: Path) -> dict:
    """Every file's bytes digest, every link's target and every folder under ``root``."""
    import hashlib

    state = {}
    for path in sorted(Path(root).rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            state[rel] = "link -> " + os.readlink(path)
        elif path.is_dir():
            state[rel] = "folder"
        else:
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def read_label(out: Path, k: int) -> np.ndarray:
    with Image.open(layout.label_path(out, k)) as im:
        return np.asarray(im)


def siblings(out: Path) -> list[str]:
    """Hidden work folders of prepare beside ``out`` (none after any run that ended)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def assert_failed_and_untouched(result, out: Path, before: dict, *fragments: str) -> str:
    line = assert_user_error(result, *fragments)
    assert out_state(out) == before
    assert siblings(out) == [] and partial_files(out.parent) == []
    return line


def _exif_jpeg(path: Path, stored: np.ndarray, orientation: int) -> None:
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[ORIENTATION] = orientation
    im.save(path, "JPEG", quality=95, exif=exif.tobytes())


# --------------------------------------------------------------------------- prepare: re-runs

@pytest.mark.reliability("data", "`prepare --images B --labels B` into an OUT prepared from A "
                         "(same six stems, other labels and photos)",
                         "success: all 6 labels re-imported (B's, pixel for pixel), photos link "
                         "to B's, '6 labels written, 0 kept'")
def test_fused_other_folder_same_stems_is_reimported(tmp_path):
    a_images, a_labels = _fused(tmp_path / "a", seed=1)
    b_images, b_labels = _fused(tmp_path / "b", seed=2)
    out = tmp_path / "out"
    assert prepare(a_images, a_labels, out).code == 0
    result = prepare(b_images, b_labels, out)
    assert result.code == 0, result
    assert "6 labels written, 0 kept from an earlier run" in result.out
    for k in range(N):
        np.testing.assert_array_equal(read_label(out, k), _label(k, seed=2))
        assert os.readlink(layout.image_path(out, k)) == str(b_images / f"{k}.jpg")


@pytest.mark.reliability("data", "a label edited in place (same name, same size in bytes is not "
                         "required) after `prepare`, then prepare again",
                         "success: that label re-imported (the edit is in OUT), the 5 others kept: "
                         "'1 labels written, 5 kept'")
def test_fused_edited_label_is_reimported(tmp_path):
    images, labels = _fused(tmp_path / "in")
    out = tmp_path / "out"
    assert prepare(images, labels, out).code == 0
    edited = _label(3)
    edited[:4, :4] = 13  # hair in a corner
    Image.fromarray(edited, "L").save(labels / "3.png")
    result = prepare(images, labels, out)
    assert result.code == 0 and "1 labels written, 5 kept from an earlier run" in result.out, result
    np.testing.assert_array_equal(read_label(out, 3), edited)


@pytest.mark.reliability("data", "a label made invalid in place (a pixel of value 25) after "
                         "`prepare`, then prepare again",
                         "error '…labels/3.png: label value 25 at pixel (x=5, y=2) is above 18…', "
                         "exit 2; OUT exactly as it was")
def test_fused_label_made_invalid_is_refused(tmp_path):
    images, labels = _fused(tmp_path / "in")
    out = tmp_path / "out"
    assert prepare(images, labels, out).code == 0
    before = out_state(out)
    bad = _label(3)
    bad[2, 5] = 25
    Image.fromarray(bad, "L").save(labels / "3.png")
    assert_failed_and_untouched(prepare(images, labels, out), out, before,
                                str(labels / "3.png"), "label value 25 at pixel (x=5, y=2)")


def _damage(case: str, images: Path, labels: Path) -> tuple[Path, str]:
    """Damage input 2 one way; returns (the file, the fragment the error must give)."""
    if case == "label-size":
        path = labels / "2.png"
        Image.fromarray(_label(2, 32, 32), "L").save(path)
        return path, "label of 32x32 px where the others are 16x16"
    if case == "label-value":
        path = labels / "2.png"
        label = _label(2)
        label[0, 0] = 200
        Image.fromarray(label, "L").save(path)
        return path, "label value 200 at pixel (x=0, y=0)"
    if case == "label-colour":
        path = labels / "2.png"
        from celebseg_utils import labels as L

        rgb = L.PALETTE[_label(2)].copy()
        rgb[1, 1] = (1, 2, 3)
        Image.fromarray(rgb).save(path)
        return path, "colour (1, 2, 3) at pixel (x=1, y=1)"
    if case == "empty-photo":
        path = images / "2.jpg"
        path.write_bytes(b"")
        return path, "empty photo file (0 bytes)"
    path = labels / "2.png"  # truncated label
    path.write_bytes(path.read_bytes()[:40])
    return path, "unreadable label"


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c, marks=pytest.mark.reliability(
        "data", f"`prepare --images/--labels` into a prepared OUT, input 2 broken: {what}",
        f"error names the file ('{says}'), exit 2; OUT exactly as it was (files, links, "
        f"folders), nothing beside it; fixed, the re-run completes with every label right"))
    for c, what, says in [
        ("label-size", "a 32x32 label among 16x16 ones", "label of 32x32 px where the others are 16x16"),
        ("label-value", "a label pixel of value 200", "label value 200 at pixel (x=0, y=0)"),
        ("label-colour", "a colour label with one colour outside the palette",
         "colour (1, 2, 3) … is not in the official CelebAMask-HQ palette"),
        ("empty-photo", "a 0-byte photo", "empty photo file (0 bytes)"),
        ("truncated-label", "a label PNG cut after 40 bytes", "unreadable label"),
    ]])
def test_fused_failed_run_leaves_out_as_it_was(case, tmp_path):
    images, labels = _fused(tmp_path / "in")
    out = tmp_path / "out"
    assert prepare(images, labels, out).code == 0
    # the run that fails: new labels for every image, one of them broken
    for k in range(N):
        Image.fromarray(_label(k, seed=5), "L").save(labels / f"{k}.png")
    path, fragment = _damage(case, images, labels)
    before = out_state(out)
    assert_failed_and_untouched(prepare(images, labels, out), out, before, str(path), fragment)
    # the first run into a new OUT fails the same way and leaves nothing at all
    assert_user_error(prepare(images, labels, tmp_path / "new"), str(path))
    assert not (tmp_path / "new").exists() and siblings(tmp_path / "new") == []
    # fixed: the re-run does not quote stale state, and every label is the new one
    Image.fromarray(_label(2, seed=5), "L").save(labels / "2.png")
    Image.fromarray(_photo(2)).save(images / "2.jpg", quality=95)
    result = prepare(images, labels, out)
    assert result.code == 0, result
    for k in range(N):
        np.testing.assert_array_equal(read_label(out, k), _label(k, seed=5))


@pytest.mark.reliability("data", "Ctrl-C during `prepare --images/--labels` into a prepared OUT "
                         "(new labels, the third write interrupted)",
                         "KeyboardInterrupt; OUT exactly as it was, no work folder beside it")
def test_fused_interrupted_rerun_leaves_out_as_it_was(tmp_path, monkeypatch):
    from celebseg_utils.data import fused
    from celebseg_utils.fileio import atomic_write_bytes

    images, labels = _fused(tmp_path / "in")
    out = tmp_path / "out"
    assert prepare(images, labels, out).code == 0
    for k in range(N):
        Image.fromarray(_label(k, seed=7), "L").save(labels / f"{k}.png")
    before, calls = out_state(out), []

    def interrupted(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        atomic_write_bytes(path, data)

    monkeypatch.setattr(fused, "atomic_write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fused.prepare_fused(images, labels, out, workers=1, progress=False)
    assert out_state(out) == before and siblings(out) == []


@pytest.mark.reliability("data", "leftovers of killed runs beside OUT: a work folder "
                         "`.out.prepare-<dead pid>-…`, and OUT moved aside as "
                         "`.out.previous-<dead pid>-…` (killed between the two renames)",
                         "the next run rolls the moved OUT back, removes the work folder, "
                         "completes: labels right, nothing left beside OUT")
def test_killed_run_leftovers_are_recovered(tmp_path):
    images, labels = _fused(tmp_path / "in")
    out = tmp_path / "out"
    assert prepare(images, labels, out).code == 0
    dead = 2 ** 22 + 12345  # above the kernel's default pid_max: no such process
    (tmp_path / f".out.prepare-{dead}-00aa11bb" / "labels").mkdir(parents=True)
    os.rename(out, tmp_path / f".out.previous-{dead}-00cc22dd")
    result = prepare(images, labels, out)
    assert result.code == 0 and "0 labels written, 6 kept" in result.out, result
    assert siblings(out) == []
    for k in range(N):
        np.testing.assert_array_equal(read_label(out, k), _label(k))


# --------------------------------------------------------------------------- prepare: nothing left

@pytest.mark.reliability("data", "`prepare --images/--labels --skip-bad` where every photo is "
                         "0 bytes (nothing preparable)",
                         "error 'none of the 6 photo/label pairs could be prepared (6 x empty "
                         "photo file (0 bytes); the first: …0.jpg); OUT was left as it was', "
                         "exit 2; no OUT, no problems.txt pointed to")
def test_fused_skip_bad_with_nothing_preparable(tmp_path):
    images, labels = _fused(tmp_path / "in")
    for k in range(N):
        (images / f"{k}.jpg").write_bytes(b"")
    out = tmp_path / "out"
    line = assert_user_error(prepare(images, labels, out, "--skip-bad"),
                             "none of the 6 photo/label pairs could be prepared",
                             "6 x empty photo file (0 bytes)", str(images / "0.jpg"),
                             f"{out} was left as it was")
    assert "problems.txt" not in line
    assert not out.exists() and siblings(out) == []


# --------------------------------------------------------------------------- prepare: geometry

@pytest.mark.parametrize("photo_hw, label_hw, file, fragment", [
    pytest.param((18, 32), (16, 16), "photo", "photo is 32x18 px but its label", id="other-shape",
                 marks=pytest.mark.reliability(
                     "data", "`prepare --images/--labels`: a 32x18 photo with a 16x16 label",
                     "error '…2.jpg: photo is 32x18 px but its label …2.png is 16x16: their "
                     "aspect ratios differ…', exit 2; --skip-bad lists it, the other 5 prepared")),
    pytest.param((1, 1), (16, 16), "photo", "photo too small (1x1 px)", id="1x1-photo",
                 marks=pytest.mark.reliability(
                     "data", "`prepare --images/--labels`: a 1x1 photo with a 16x16 label",
                     "error '…2.jpg: photo too small (1x1 px): a face needs at least 16 px on "
                     "each side', exit 2; --skip-bad lists it, the other 5 prepared")),
    pytest.param((32, 32), (8, 8), "label", "label too small (8x8 px)", id="8x8-label",
                 marks=pytest.mark.reliability(
                     "data", "`prepare --images/--labels`: all labels 8x8 for 32x32 photos",
                     "error '…2.png: label too small (8x8 px): at least 16 px on each side', "
                     "exit 2 (each label in turn; here the first, 0.png)")),
])
def test_fused_geometry(photo_hw, label_hw, file, fragment, tmp_path):
    images, labels = _fused(tmp_path / "in")
    if file == "photo":
        Image.fromarray(_photo(2, *photo_hw)).save(images / "2.jpg", quality=95)
        named = images / "2.jpg"
    else:
        for k in range(N):
            Image.fromarray(_label(k, *label_hw), "L").save(labels / f"{k}.png")
        named = labels / "0.png"
    out = tmp_path / "out"
    assert_user_error(prepare(images, labels, out), str(named), fragment)
    assert not out.exists()
    if file == "photo":
        result = prepare(images, labels, out, "--skip-bad")
        assert result.code == 0, result
        problems = (out / "problems.txt").read_text().splitlines()
        assert len(problems) == 1 and problems[0].startswith("2\t") and fragment in problems[0]
        assert sorted(os.listdir(out / "labels")) == [f"{k}.png" for k in (0, 1, 3, 4, 5)]


# --------------------------------------------------------------------------- prepare: photo forms

@pytest.mark.reliability("data", "`prepare --images/--labels`: photo 2 a phone photo stored "
                         "turned (EXIF Orientation=6), white along its top as a viewer shows it",
                         "success: the prepared photo is upright (what tf.data decodes equals the "
                         "upright photo within JPEG noise, the white band on top)")
def test_fused_exif_rotated_photo_is_prepared_upright(tmp_path):
    import tensorflow as tf

    images, labels = _fused(tmp_path / "in")
    upright = _photo(2)
    upright[:8] = 255  # a white band on top: on the left if the stored pixels were used
    _exif_jpeg(images / "2.jpg", np.rot90(upright).copy(), 6)  # 6: turn clockwise to show
    out = tmp_path / "out"
    result = prepare(images, labels, out)
    assert result.code == 0, result
    decoded = tf.image.decode_jpeg(layout.image_path(out, 2).read_bytes(), channels=3).numpy()
    assert np.abs(decoded.astype(int) - upright).mean() < 4
    assert decoded[:6].min() > 230 and decoded[10:, :6].mean() < 150  # not on the left


@pytest.mark.reliability("data", "`prepare --images/--labels`: a phone photo stored 48x32 with "
                         "EXIF Orientation=6, its 24x16 label drawn on the stored pixels",
                         "error '…2.jpg: photo is 32x48 px but its label … is 24x16: their aspect "
                         "ratios differ…; the photo is stored 48x32 and its EXIF orientation 6 "
                         "shows it turned 90 degrees clockwise…', exit 2")
def test_fused_label_drawn_on_stored_pixels_is_named(tmp_path):
    images, labels = _fused(tmp_path / "in")
    _exif_jpeg(images / "2.jpg", _photo(2, 32, 48), 6)
    Image.fromarray(_label(2, 16, 24), "L").save(labels / "2.png")
    assert_user_error(prepare(images, labels, tmp_path / "out"), str(images / "2.jpg"),
                      "photo is 32x48 px but its label", "is 24x16",
                      "stored 48x32 and its EXIF orientation 6 shows it turned 90 degrees "
                      "clockwise")


def _photo_forms(folder: Path) -> dict[str, np.ndarray]:
    """Photos 0..5 in other forms; stem -> the RGB a viewer shows (what must be prepared)."""
    expected = {}
    grey = np.tile(np.linspace(0, 65535, PHOTO).astype(np.uint16), (PHOTO, 1))
    Image.fromarray(grey).save(folder / "0.png")  # 16-bit grey (PIL mode I;16)
    g8 = np.round(grey / 257).astype(np.uint8)
    expected["0"] = np.repeat(g8[..., None], 3, 2)
    pal = Image.fromarray(_photo(1)).quantize(64)
    pal.save(folder / "1.png")
    expected["1"] = np.asarray(pal.convert("RGB"))
    rgba = np.dstack([_photo(2), np.full((PHOTO, PHOTO), 255, np.uint8)])
    rgba[:, :8, 3] = 0  # transparent left edge: shown on white
    Image.fromarray(rgba, "RGBA").save(folder / "2.png")
    shown = _photo(2).copy()
    shown[:, :8] = 255
    expected["2"] = shown
    Image.fromarray(_photo(3)).convert("CMYK").save(folder / "3.jpg", quality=95)
    expected["3"] = _photo(3)
    Image.fromarray(_photo(4)[..., 0] > 127).save(folder / "4.png")  # 1-bit
    expected["4"] = np.repeat(np.where(_photo(4)[..., :1] > 127, 255, 0), 3, 2).astype(np.uint8)
    frames = [Image.fromarray(_photo(5)), Image.fromarray(255 - _photo(5))]
    frames[0].save(folder / "5.webp", save_all=True, append_images=frames[1:], lossless=True)
    expected["5"] = _photo(5)
    return expected


@pytest.mark.reliability("data", "`prepare --images/--labels` with photos as 16-bit grey PNG, "
                         "palette PNG, RGBA PNG with transparent pixels, CMYK JPEG, 1-bit PNG and "
                         "an animated WebP",
                         "success: each prepared photo (what tf.data decodes) is what a viewer "
                         "shows, within JPEG noise: 16-bit grey not white, transparency on white, "
                         "the WebP's first frame with a 'note:' line")
def test_fused_photo_forms_are_prepared_as_shown(tmp_path):
    import tensorflow as tf

    images, labels = _fused(tmp_path / "in")
    for k in range(N):
        (images / f"{k}.jpg").unlink()
    expected = _photo_forms(images)
    out = tmp_path / "out"
    result = prepare(images, labels, out)
    assert result.code == 0, result
    assert "note: " in result.err and "5.webp: it is animated or holds 2 frames: the first is " \
        "parsed" in result.err
    assert "2.png: its transparent pixels are shown on white" in result.err
    for stem, want in expected.items():
        got = tf.image.decode_jpeg(layout.image_path(out, int(stem)).read_bytes(), channels=3)
        err = np.abs(got.numpy().astype(int) - want.astype(int)).mean()
        assert err < 6, (stem, err)
    assert tf.image.decode_jpeg(layout.image_path(out, 0).read_bytes()).numpy().mean() < 160


# --------------------------------------------------------------------------- predict

SIZE = 32


@pytest.fixture(scope="module")
def pixel_model(tmp_path_factory) -> Path:
    """A 1x1 convolution as a .keras model: the label of a pixel is its brightness in 19
    steps (logit c = c * mean(RGB) - 7 c^2, largest for c near mean / 14)."""
    import keras

    inp = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(19, 1)
    model = keras.Model(inp, conv(inp))
    c = np.arange(19, dtype=np.float32)
    conv.set_weights([np.tile(c / 3, (3, 1)).reshape(1, 1, 3, 19), -7 * c ** 2])
    path = tmp_path_factory.mktemp("model") / "pixel.keras"
    model.save(path)
    return path


def predict(model: Path, photos, out: Path, *extra):
    return run_cli(["predict", "--model", model, *photos, "--out", out, "--no-progress", *extra])


def label_of(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _face(h: int = 60, w: int = 40) -> np.ndarray:
    rng = np.random.default_rng(4)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", [
    pytest.param(o, id=f"orientation-{o}", marks=pytest.mark.reliability(
        "cli", f"`predict phone.png`: a 40x60 face stored turned ({o}: {what}) with that EXIF "
               f"Orientation",
        "success: the label map is 40 wide, 60 high (as shown) and equals the upright photo's "
        "pixel for pixel"))
    for o, what in [(6, "60x40, to turn clockwise"), (8, "60x40, to turn anticlockwise"),
                    (3, "upside down"), (2, "mirrored")]])
def test_predict_applies_exif_orientation(orientation, pixel_model, tmp_path):
    upright = _face()
    stored = {6: np.rot90(upright, 1), 8: np.rot90(upright, -1), 3: np.rot90(upright, 2),
              2: upright[:, ::-1]}[orientation]
    folder = tmp_path / "in"
    folder.mkdir()
    im = Image.fromarray(np.ascontiguousarray(stored))
    exif = im.getexif()
    exif[ORIENTATION] = orientation
    im.save(folder / "phone.png", exif=exif.tobytes())  # PNG: lossless, pixels exact
    Image.fromarray(upright).save(folder / "upright.png")
    result = predict(pixel_model, [folder / "phone.png", folder / "upright.png"], tmp_path / "o")
    assert result.code == 0, result
    phone, ref = label_of(tmp_path / "o" / "phone.png"), label_of(tmp_path / "o" / "upright.png")
    assert phone.shape == (60, 40)
    np.testing.assert_array_equal(phone, ref)


@pytest.mark.reliability("cli", "`predict grey16.png` (a 16-bit grey PNG, mode I;16)",
                         "success: parsed as the same photo at 8 bits (label maps equal), not as "
                         "a white image")
def test_predict_16_bit_grey(pixel_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    grey16 = (np.random.default_rng(2).integers(0, 256, (40, 40)) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    Image.fromarray((grey16 // 257).astype(np.uint8), "L").save(folder / "grey8.png")
    Image.fromarray(np.full((40, 40), 255, np.uint8), "L").save(folder / "white.png")
    result = predict(pixel_model, [folder], tmp_path / "o")
    assert result.code == 0, result
    g16, g8, white = (label_of(tmp_path / "o" / f"{s}.png") for s in ("grey16", "grey8", "white"))
    np.testing.assert_array_equal(g16, g8)
    assert (g16 != white).mean() > 0.9  # white is label 18; a grey of 0..255, all labels
    assert len(np.unique(g16)) > 10  # grey levels parse apart (a white image: one label)


@pytest.mark.reliability("cli", "`predict anim.gif` (two frames) and `predict cutout.png` (RGBA, "
                         "left half transparent)",
                         "success: one 'note:' line each (first frame parsed; transparent pixels "
                         "on white), label maps equal those of the first frame and of the photo "
                         "on white")
def test_predict_animation_and_transparency(pixel_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    face = _face(40, 40)
    Image.fromarray(face).save(folder / "first.png")
    frames = [Image.fromarray(face), Image.fromarray(255 - face)]
    frames[0].save(folder / "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    rgba = np.dstack([face, np.full((40, 40), 255, np.uint8)])
    rgba[:, :20, 3] = 0
    Image.fromarray(rgba, "RGBA").save(folder / "cutout.png")
    on_white = face.copy()
    on_white[:, :20] = 255
    Image.fromarray(on_white).save(folder / "on_white.png")
    result = predict(pixel_model, [folder], tmp_path / "o")
    assert result.code == 0, result
    notes = [ln for ln in result.err.splitlines() if ln.startswith("note: ")]
    assert len(notes) == 2, result
    assert any("anim.webp: it is animated or holds 2 frames: the first is parsed" in n
               for n in notes)
    assert any("cutout.png: its transparent pixels are shown on white" in n for n in notes)
    out = tmp_path / "o"
    np.testing.assert_array_equal(label_of(out / "anim.png"), label_of(out / "first.png"))
    np.testing.assert_array_equal(label_of(out / "cutout.png"), label_of(out / "on_white.png"))


@pytest.mark.reliability("cli", "`predict` a CMYK JPEG, a palette PNG, a 1-bit PNG and a grey+"
                         "alpha PNG",
                         "success: a label map and overlay of each photo's size")
def test_predict_other_colour_modes(pixel_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    face = _face(30, 50)
    Image.fromarray(face).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(face).quantize(32).save(folder / "palette.png")
    Image.fromarray(face[..., 0] > 127).save(folder / "bits.png")
    Image.fromarray(face[..., :2].copy(), "LA").save(folder / "grey_alpha.png")
    result = predict(pixel_model, [folder], tmp_path / "o")
    assert result.code == 0, result
    for stem in ("cmyk", "palette", "bits", "grey_alpha"):
        for name in (f"{stem}.png", f"{stem}_overlay.png"):
            with Image.open(tmp_path / "o" / name) as im:
                assert im.size == (50, 30), name


@pytest.mark.parametrize("size", [
    pytest.param(wh, id=f"{wh[0]}x{wh[1]}", marks=pytest.mark.reliability(
        "cli", f"`predict dot.png` of {wh[0]}x{wh[1]} px",
        f"error '…dot.png: photo too small ({wh[0]}x{wh[1]} px): a face needs at least 16 px on "
        f"each side', exit 2, nothing written"))
    for wh in [(1, 1), (200, 15)]])
def test_predict_refuses_a_tiny_photo(size, pixel_model, tmp_path):
    photo = tmp_path / "dot.png"
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(photo)
    assert_user_error(predict(pixel_model, [photo], tmp_path / "o"), str(photo),
                      f"photo too small ({size[0]}x{size[1]} px)", "at least 16 px")
    assert not (tmp_path / "o").exists()


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header says width x height, with one row of data (a decompression bomb
    shape: Pillow opens it lazily, so only the size check can stop it cheaply)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * (1 + 3 * width))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data)
                     + chunk(b"IEND", b""))


@pytest.mark.reliability("cli", "`predict huge.png` whose header says 20000x10000 px (200 "
                         "megapixels, 100 KB on disk)",
                         "error '…huge.png: photo too large (200 megapixels; …): downscale it…', "
                         "exit 2, nothing written, nothing decoded")
def test_predict_refuses_a_huge_photo(pixel_model, tmp_path):
    photo = tmp_path / "huge.png"
    _png_header_only(photo, 20000, 10000)
    assert_user_error(predict(pixel_model, [photo], tmp_path / "o"), str(photo),
                      "photo too large", "200 megapixels", "downscale it")
    assert not (tmp_path / "o").exists()


@pytest.mark.reliability("cli", "`predict big.jpg` (60x40) on a machine with memory for 1,000 "
                         "photo pixels (available memory patched)",
                         "error '…big.jpg: photo too large (60x40 px, …): downscale it, e.g. to "
                         "38x25', exit 2, nothing written; with --skip-bad a 'warning: skipped' "
                         "and the small photo parsed")
def test_predict_refuses_a_photo_beyond_memory(pixel_model, tmp_path, monkeypatch):
    from celebseg_utils.data import photo as P

    monkeypatch.setattr(P, "available_memory", lambda: 1000 * P.BYTES_PER_PIXEL)
    big = tmp_path / "in" / "big.jpg"
    big.parent.mkdir()
    Image.fromarray(_face(40, 60)).save(big)
    Image.fromarray(_face(20, 20)).save(tmp_path / "in" / "small.png")
    assert_user_error(predict(pixel_model, [big], tmp_path / "o"), str(big),
                      "photo too large (60x40 px", "downscale it, e.g. to 38x25")
    assert not (tmp_path / "o").exists()
    result = predict(pixel_model, [tmp_path / "in"], tmp_path / "o", "--skip-bad")
    assert result.code == 0 and "warning: skipped" in result.err, result
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["small.png", "small_overlay.png"]


@pytest.mark.reliability("cli", "`predict float.tif` (32-bit floating-point pixels, PIL mode F)",
                         "error '…float.tif is not a readable image (unreadable photo (32-bit "
                         "floating-point pixels (PIL mode F): save the photo as 8- or 16-bit))…', "
                         "exit 2")
def test_predict_refuses_float_pixels(pixel_model, tmp_path):
    photo = tmp_path / "float.tif"
    Image.fromarray(np.random.default_rng(0).random((32, 32)).astype(np.float32), "F").save(photo)
    assert_user_error(predict(pixel_model, [photo], tmp_path / "o"), str(photo),
                      "32-bit floating-point pixels", "8- or 16-bit")


# --------------------------------------------------------------------------- evaluate

@pytest.mark.reliability("cli", "`evaluate --out notes.txt` where notes.txt is an existing file",
                         "error '--out …notes.txt: …notes.txt is a file, not a folder…', exit 2, "
                         "before any work (the model is not even loaded); the file unchanged")
def test_evaluate_out_existing_file_is_checked_first(tmp_path, monkeypatch):
    from celebseg_utils.engine import evaluate

    def must_not_run(*args, **kwargs):
        raise AssertionError("evaluate ran before checking --out")

    monkeypatch.setattr(evaluate, "evaluate_model", must_not_run)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert_user_error(run_cli(["evaluate", "--model", tmp_path / "missing.keras", "--prepared",
                               tmp_path / "nowhere", "--out", notes]),
                      f"--out {notes}", "is a file, not a folder")
    assert notes.read_text() == "my notes\n"
    assert_user_error(run_cli(["evaluate", "--model", tmp_path / "missing.keras", "--prepared",
                               tmp_path / "nowhere", "--out", notes / "sub" / "r.json"]),
                      f"{notes} is a file, not a folder")
