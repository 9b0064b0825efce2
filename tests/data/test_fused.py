"""Fused-label datasets as a source (``celebseg prepare --images DIR --labels DIR``)."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import assert_user_error, run_cli

from celebseg_utils import labels as L
from celebseg_utils.data import fused, layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.data.fused import parse_split, prepare_fused, read_fused_label, stratified_split



def test_module_examples_run():
    assert doctest.testmod(fused).failed == 0


def _label_map(k: int, size: int = 16) -> np.ndarray:
    """A label map using every class id, different for every k."""
    rng = np.random.default_rng(k)
    return rng.integers(0, L.NUM_CLASSES, (size, size)).astype(np.uint8)


def _save_label(path: Path, label: np.ndarray, mode: str) -> None:
    if mode == "L":
        Image.fromarray(label, "L").save(path)
    elif mode == "P":
        im = Image.fromarray(label, "P")
        im.putpalette(L.PALETTE.ravel().tolist())
        im.save(path)
    elif mode == "RGB":
        Image.fromarray(L.PALETTE[label]).save(path)


def _dataset(root: Path, count: int = 6, mode: str = "L", size: int = 16) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for k in range(count):
        Image.fromarray(np.full((2 * size, 2 * size, 3), 10 * k, np.uint8)).save(images / f"{k}.jpg")
        _save_label(labels / f"{k}.png", _label_map(k, size), mode)
    return images, labels


@pytest.mark.parametrize("mode", ["L", "P", "RGB"])
def test_labels_import_exactly_for_grey_palette_and_colour_files(tmp_path, mode):
    images, labels = _dataset(tmp_path, mode=mode)
    info = prepare_fused(images, labels, tmp_path / "prep", split="train=0.5,val=0.5",
                         workers=1, progress=False)
    assert info["num_images"] == 6 and info["label_size"] == 16
    for k in range(6):
        with Image.open(layout.label_path(tmp_path / "prep", k)) as im:
            assert im.mode == "L"
            np.testing.assert_array_equal(np.asarray(im), _label_map(k))
        # the photo stands in the prepared folder, which is its own data root
        photo = layout.photo_path(tmp_path / "prep", k)
        assert photo.read_bytes() == (images / f"{k}.jpg").read_bytes()


def test_palette_png_gives_indices_not_the_colours_tensorflow_decodes(tmp_path):
    """The trap: tf.io.decode_png returns a P-mode PNG's palette colours, not its ids."""
    import tensorflow as tf

    label = _label_map(3)
    path = tmp_path / "p.png"
    _save_label(path, label, "P")
    np.testing.assert_array_equal(read_fused_label(path), label)
    decoded = tf.io.decode_png(path.read_bytes(), channels=3).numpy()
    np.testing.assert_array_equal(decoded, L.PALETTE[label])  # colours, e.g. hair = (0, 0, 204)
    assert not np.array_equal(decoded[..., 0], label)


def test_real_palette_labels_import_as_their_indices(tmp_path, real_mini_dir):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for k in range(5):
        (images / f"{k}.jpg").symlink_to(real_mini_dir / "images" / f"{k}.jpg")
        (labels / f"{k}.png").symlink_to(real_mini_dir / "labels" / f"{k}.png")
    prepare_fused(images, labels, tmp_path / "prep", split="test=1", workers=1, progress=False)
    for k in range(5):
        with Image.open(real_mini_dir / "labels" / f"{k}.png") as im:
            assert im.mode == "P"
            want = np.asarray(im)
        with Image.open(layout.label_path(tmp_path / "prep", k)) as im:
            np.testing.assert_array_equal(np.asarray(im), want)
    assert layout.read_split(tmp_path / "prep", "test") == list(range(5))


def test_non_numeric_stems_are_numbered_in_sorted_order(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for i, stem in enumerate(["bob", "alice", "carol"]):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(images / f"{stem}.png")  # PNG photos
        _save_label(labels / f"{stem}.png", np.full((16, 16), i + 1, np.uint8), "L")
    prepare_fused(images, labels, tmp_path / "prep", split="test=1", workers=1, progress=False)
    rows = (tmp_path / "prep" / "names.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[1].rsplit("/", 1)[1] for r in rows] == ["alice.png", "bob.png", "carol.png"]
    with Image.open(layout.label_path(tmp_path / "prep", 0)) as im:  # alice
        assert np.asarray(im).max() == 2
    with Image.open(layout.photo_path(tmp_path / "prep", 0)) as im:  # re-encoded as JPEG
        assert im.format == "JPEG"


# --------------------------------------------------------------------------- split

def test_split_fractions_parse_and_must_sum_to_one():
    assert parse_split("train=0.8,val=0.1,test=0.1") == {"train": 0.8, "val": 0.1, "test": 0.1}
    for bad, words in [("train=0.9", "sum to 0.9"), ("train=0.5,tst=0.5", "unknown split 'tst'"),
                       ("train", "NAME=FRACTION"), ("train=x,test=1", "not a number"),
                       ("train=1.5,test=-0.5", "between 0 and 1")]:
        with pytest.raises(CelebsegError, match=words):
            parse_split(bad)


def test_split_is_reproducible_and_stratified_on_the_rare_classes():
    rng = np.random.default_rng(1)
    # 1,000 faces; each rare class in 5-25% of them, as in the real data
    presence = {k: tuple(bool(v) for v in rng.random(4) < [0.05, 0.05, 0.25, 0.05]) for k in range(1000)}
    fractions = parse_split("train=0.8,val=0.1,test=0.1")
    first = stratified_split(presence, fractions, seed=0)
    assert first == stratified_split(presence, fractions, seed=0)
    assert first != stratified_split(presence, fractions, seed=1)
    assert sorted(sum(first.values(), [])) == list(range(1000))
    assert [len(first[s]) for s in ("train", "val", "test")] == [800, 100, 100]
    for j in range(4):
        total = sum(p[j] for p in presence.values())
        for split, fraction in fractions.items():
            got = sum(presence[k][j] for k in first[split])
            assert abs(got - fraction * total) <= 1.5, (j, split, got, fraction * total)


def test_test_only_folder_puts_everything_in_test(tmp_path):
    images, labels = _dataset(tmp_path)
    info = prepare_fused(images, labels, tmp_path / "prep", split="test=1", workers=1, progress=False)
    assert info["splits"] == {"train": 0, "val": 0, "test": 6}
    assert info["split"] == {"fractions": {"train": 0.0, "val": 0.0, "test": 1.0}, "seed": 0,
                             "stratified_by": list(L.RARE_CLASSES)}


# --------------------------------------------------------------------------- bad input

def _break(images: Path, labels: Path, case: str) -> str:
    """Damage the dataset; returns the words the error must hold."""
    if case == "photo-without-label":
        (labels / "2.png").unlink()
        return "2.jpg: photo without a label"
    if case == "label-without-photo":
        (images / "2.jpg").unlink()
        return "2.png: label without a photo"
    if case == "value-above-18":
        bad = _label_map(2)
        bad[3, 5] = 19
        _save_label(labels / "2.png", bad, "L")
        return "label value 19 at pixel (x=5, y=3) is above 18"
    if case == "colour-outside-palette":
        rgb = L.PALETTE[_label_map(2)].copy()
        rgb[1, 4] = (1, 2, 3)
        Image.fromarray(rgb).save(labels / "2.png")
        return "colour (1, 2, 3) at pixel (x=4, y=1) is not in the official CelebAMask-HQ palette"
    if case == "mixed-sizes":
        _save_label(labels / "2.png", _label_map(2, size=32), "L")
        return "label of 32x32 px where the others are 16x16"
    if case == "unreadable":
        (labels / "2.png").write_bytes(b"not a png at all")
        return "2.png: unreadable label"
    raise AssertionError(case)


BAD = ["photo-without-label", "label-without-photo", "value-above-18", "colour-outside-palette",
       "mixed-sizes", "unreadable"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gets_one_line_naming_the_file(tmp_path, case):
    images, labels = _dataset(tmp_path)
    words = _break(images, labels, case)
    result = run_cli(["prepare", "--images", images, "--labels", labels,
                      "--out", tmp_path / "prep", "--workers", "1"])
    assert_user_error(result, words, "--skip-bad")


@pytest.mark.parametrize("case", BAD)
def test_skip_bad_lists_the_problem_and_prepares_the_rest(tmp_path, case):
    images, labels = _dataset(tmp_path)
    _break(images, labels, case)
    info = prepare_fused(images, labels, tmp_path / "prep", split="train=0.5,test=0.5", workers=1,
                         skip_bad=True, progress=False)
    assert info["num_images"] == 5 and info["problems"] == 1
    line = (tmp_path / "prep" / "problems.txt").read_text().splitlines()
    assert len(line) == 1 and line[0].startswith("2\t")
    assert 2 not in sum((layout.read_split(tmp_path / "prep", s) for s in layout.SPLITS), [])


@pytest.mark.parametrize("argv, words", [
    (["--images", "{i}", "--out", "{o}"], "--labels is missing"),
    (["--labels", "{l}", "--out", "{o}"], "--images is missing"),
    (["--data-root", "{i}", "--images", "{i}", "--labels", "{l}", "--out", "{o}"], "not both"),
    (["--images", "{i}", "--labels", "{l}", "--out", "{o}", "--split", "train=2"], "between 0 and 1"),
    (["--data-root", "{i}", "--out", "{o}", "--split", "test=1"], "--split and --split-seed apply"),
    (["--out", "{o}"], "--data-root"),
])
def test_cli_option_mistakes_get_one_line(tmp_path, argv, words):
    images, labels = _dataset(tmp_path, count=2)
    args = [a.format(i=images, l=labels, o=tmp_path / "prep") for a in argv]
    assert_user_error(run_cli(["prepare", *args]), words)
    assert not (tmp_path / "prep").exists()


def test_rerun_keeps_labels_and_refuses_other_data(tmp_path, capsys):
    images, labels = _dataset(tmp_path)
    first = prepare_fused(images, labels, tmp_path / "prep", workers=1, progress=False)
    again = prepare_fused(images, labels, tmp_path / "prep", workers=1, progress=False)
    assert (first["written"], again["written"], again["existing"]) == (6, 0, 6)
    assert again["splits"] == first["splits"]
    other = tmp_path / "other"
    images2, labels2 = _dataset(other, count=4)
    with pytest.raises(CelebsegError, match="labels made from other data"):
        prepare_fused(images2, labels2, tmp_path / "prep", workers=1, progress=False)


def test_a_fused_folder_trains_through_make_dataset(tmp_path):
    from celebseg_utils.data.pipeline import make_dataset

    images, labels = _dataset(tmp_path, count=4, size=32)
    prepare_fused(images, labels, tmp_path / "prep", split="train=0.5,val=0.5", workers=1,
                  progress=False)
    x, y = next(iter(make_dataset(tmp_path / "prep", "train", image_size=32, batch_size=2)))
    assert x.shape == (2, 32, 32, 3) and y.shape == (2, 32, 32, 1)
    ids = layout.read_split(tmp_path / "prep", "train")
    np.testing.assert_array_equal(y.numpy()[0, ..., 0], _label_map(ids[0], 32))
