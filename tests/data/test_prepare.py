"""`celebseg prepare`: real samples byte for byte, the published algorithm, bad inputs, re-runs."""

from __future__ import annotations

import doctest
import json
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils.data import layout, prepare
from celebseg_utils.cli import main
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_path
from celebseg_utils.labels import ATTRIBUTES


def reference_g_mask(root: Path, k: int, size: int) -> np.ndarray:
    """g_mask.py as published (kept independent of celebseg_utils.data.masks)."""
    im_base = np.zeros((size, size), dtype=np.uint8)
    for idx, attribute in enumerate(ATTRIBUTES):
        path = layout.mask_path(root, k, attribute)
        if path.exists():
            im = np.asarray(Image.open(path).convert("RGB"))[:, :, 2]  # cv2's BGR channel 0
            im_base[im != 0] = idx + 1
    return im_base


def split_label_into_masks(root: Path, k: int, label: np.ndarray, modes=("L", "RGB", "P")) -> int:
    """Per-attribute mask PNGs whose fusion is ``label``: each mask also covers, inside its
    own bounding box, pixels that a later attribute owns, so precedence decides them."""
    written = 0
    for class_id in np.unique(label)[1:].tolist():
        own = label == class_id
        ys, xs = np.nonzero(own)
        box = np.zeros_like(own)
        box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
        mask = own | (box & (label > class_id))
        grey = mask.astype(np.uint8) * 255
        mode = modes[written % len(modes)]
        path = layout.mask_path(root, k, ATTRIBUTES[class_id - 1])
        path.parent.mkdir(parents=True, exist_ok=True)
        if mode == "RGB":
            Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path)
        elif mode == "P":
            im = Image.fromarray(mask.astype(np.uint8)).convert("P")
            im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
            im.save(path)
        else:
            Image.fromarray(grey).save(path)
        written += 1
    return written


def write_mapping(root: Path, orig_by_k: dict[int, int]) -> None:
    lines = ["idx         orig_idx    orig_file   "]
    lines += [f"{k:<12}{o:<12}{o + 1:06d}.jpg" for k, o in sorted(orig_by_k.items())]
    layout.mapping_path(root).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def synth_raw(tmp_path_factory) -> Path:
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "raw", 6, image_size=32,
                                   seed=1, progress=False)


@pytest.fixture
def raw(synth_raw, tmp_path) -> Path:
    """A private copy of a 6-image synthetic folder (32 px masks) to break."""
    return Path(shutil.copytree(synth_raw, tmp_path / "raw"))


def read_label(out: Path, k: int) -> np.ndarray:
    with Image.open(layout.label_path(out, k)) as im:
        assert im.mode == "L" and im.format == "PNG"
        return np.asarray(im)


def test_module_examples_run():
    assert doctest.testmod(prepare).failed == 0


def test_real_samples_byte_for_byte(tmp_path, real_samples_dir):
    root, out = tmp_path / "raw", tmp_path / "prep"
    (root / layout.IMAGE_DIR).mkdir(parents=True)
    labels = {}
    for k in (0, 1):
        labels[k] = np.asarray(Image.open(real_samples_dir / f"{k}.png"))
        assert split_label_into_masks(root, k, labels[k]) >= 10
        shutil.copy(real_samples_dir / f"{k}.jpg", layout.image_path(root, k))
    write_mapping(root, {0: 170000, 1: 12})
    info = prepare.prepare_dataset(root, out, workers=1, progress=False)
    for k in (0, 1):
        assert np.array_equal(read_label(out, k), labels[k])
        assert np.array_equal(reference_g_mask(root, k, 512), labels[k])  # the split is faithful
    assert layout.read_split(out, "val") == [0] and layout.read_split(out, "train") == [1]
    assert layout.read_split(out, "test") == []
    assert json.loads(layout.info_path(out).read_text()) == {
        "data_root": str(root.resolve()), "label_size": 512, "num_images": 2,
        "splits": {"train": 1, "val": 1, "test": 0}, "problems": 0}
    assert info["written"] == 2 and info["problems"] == 0
    assert not (out / "problems.txt").exists()


@pytest.mark.slow
def test_parallel_prepare_matches_published_algorithm_on_synthetic_faces(tmp_path):
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    root = write_synthetic_dataset(tmp_path / "raw", 40, image_size=64, seed=2, progress=False)
    info = prepare.prepare_dataset(root, tmp_path / "prep", workers=2, progress=False)
    assert info["num_images"] == 40 and info["written"] == 40
    for k in range(40):
        assert np.array_equal(read_label(tmp_path / "prep", k), reference_g_mask(root, k, 64))
    ids = sorted(sum((layout.read_split(tmp_path / "prep", s) for s in layout.SPLITS), []))
    assert ids == list(range(40))
    assert info["splits"] == {"train": 32, "val": 4, "test": 4}


def test_missing_folders_say_what_and_how_to_get_it(tmp_path, raw):
    with pytest.raises(CelebsegError, match="celebseg download") as info:
        prepare.prepare_dataset(tmp_path / "nope", tmp_path / "out", progress=False)
    assert str(tmp_path / "nope") in str(info.value) and "celebseg synth" in str(info.value)
    shutil.rmtree(raw / layout.MASK_DIR)
    with pytest.raises(CelebsegError, match="celebseg download") as info:
        prepare.prepare_dataset(raw, tmp_path / "out", progress=False)
    assert str(raw / layout.MASK_DIR) in str(info.value)
    layout.mapping_path(raw).unlink()
    (raw / layout.MASK_DIR).mkdir()
    with pytest.raises(CelebsegError, match=layout.MAPPING_FILE):
        prepare.prepare_dataset(raw, tmp_path / "out", progress=False)


def _break(raw: Path, case: str) -> Path:
    """Damage image 2 (or add orphans) one way; returns the file the error must name."""
    if case == "corrupt mask":
        path = layout.mask_path(raw, 2, "skin")
        path.write_bytes(path.read_bytes()[:40])
    elif case == "wrong-size mask":
        path = layout.mask_path(raw, 2, "hair")
        Image.fromarray(np.full((16, 16), 255, np.uint8)).save(path)
    elif case == "no masks":
        for p in (raw / layout.MASK_DIR / "0").glob("00002_*.png"):
            p.unlink()
        path = layout.mask_path(raw, 2, "*")
    elif case == "missing photo":
        path = layout.image_path(raw, 2)
        path.unlink()
    elif case == "truncated photo":
        path = layout.image_path(raw, 2)
        path.write_bytes(path.read_bytes()[:-200])
    elif case == "empty photo":
        path = layout.image_path(raw, 2)
        path.write_bytes(b"")
    elif case == "empty mask":
        path = layout.mask_path(raw, 2, "nose")
        path.write_bytes(b"")
    elif case == "garbage photo":
        path = layout.image_path(raw, 2)
        path.write_bytes(b"\xff\xd8 not really a jpeg")
    elif case == "masks without photo":
        path = layout.mask_path(raw, 9, "*")
        shutil.copy(layout.mask_path(raw, 0, "skin"), layout.mask_path(raw, 9, "skin"))
    else:
        raise ValueError(case)
    return path


CASES = ["corrupt mask", "wrong-size mask", "no masks", "missing photo", "truncated photo",
         "garbage photo", "masks without photo", "empty photo", "empty mask"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_the_run_naming_the_file(tmp_path, raw, case):
    path = _break(raw, case)
    with pytest.raises(CelebsegError) as info:
        prepare.prepare_dataset(raw, tmp_path / "out", workers=1, progress=False)
    assert str(path) in str(info.value) and "--skip-bad" in str(info.value)
    assert not layout.info_path(tmp_path / "out").exists()


@pytest.mark.parametrize("case", CASES)
def test_skip_bad_lists_the_image_and_leaves_it_out(tmp_path, raw, case):
    path = _break(raw, case)
    out = tmp_path / "out"
    info = prepare.prepare_dataset(raw, out, workers=1, skip_bad=True, progress=False)
    k = 9 if case == "masks without photo" else 2
    lines = (out / "problems.txt").read_text().splitlines()
    assert len(lines) == 1 and info["problems"] == 1
    assert json.loads(layout.info_path(out).read_text())["problems"] == 1
    got_k, got_file, reason = lines[0].split("\t")
    assert (int(got_k), got_file) == (k, str(path)) and reason
    ids = sorted(sum((layout.read_split(out, s) for s in layout.SPLITS), []))
    assert ids == [i for i in range(6) if i != k]
    assert info["num_images"] == len(ids)
    assert not layout.label_path(out, k).exists()


def test_empty_files_are_called_empty(tmp_path, raw, synth_raw):
    for case in ("empty photo", "empty mask"):
        path = _break(raw, case)
        with pytest.raises(CelebsegError, match=r"empty (photo|mask) file \(0 bytes\)") as info:
            prepare.prepare_dataset(raw, tmp_path / "out", workers=1, progress=False)
        assert str(path) in str(info.value)
        shutil.copy(synth_raw / path.relative_to(raw), path)


def test_skip_bad_with_no_good_image_left_is_an_error(tmp_path, raw):
    for k in range(6):
        layout.image_path(raw, k).unlink()
    out = tmp_path / "out"
    with pytest.raises(CelebsegError, match="none of the 6 images") as info:
        prepare.prepare_dataset(raw, out, workers=1, skip_bad=True, progress=False)
    # a failed run writes nothing, so the reasons are in the message, not in problems.txt
    assert "6 x missing photo" in str(info.value) and f"{out} was left as it was" in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["raw"]


def test_raw_folder_problems_are_named(tmp_path, raw, synth_raw):
    mapping = layout.mapping_path(raw)
    mapping.write_text(mapping.read_text().splitlines()[0] + "\n")
    with pytest.raises(CelebsegError, match="lists no images"):
        prepare.prepare_dataset(raw, tmp_path / "out", progress=False)
    shutil.copy(layout.mapping_path(synth_raw), mapping)
    folder = raw / layout.MASK_DIR / "0"
    shutil.rmtree(folder)
    folder.write_text("")  # a file where the masks of images 0..1999 belong
    with pytest.raises(CelebsegError, match=r"0 is not a folder: it should hold the masks of images 0\.\.1999"):
        prepare.prepare_dataset(raw, tmp_path / "out", progress=False)
    with pytest.raises(CelebsegError, match=f"did you mean --data-root {raw}"):
        prepare.prepare_dataset(tmp_path, tmp_path / "out", progress=False)  # one level too high


def test_out_made_from_other_data_is_refused_and_kept(tmp_path, raw):
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    out = tmp_path / "out"
    prepare.prepare_dataset(raw, out, workers=1, progress=False)
    source = json.loads(layout.source_path(out).read_text())
    assert source["label_size"] == 32 and len(source["mapping_sha256"]) == 64
    before = {p.name: p.read_bytes() for p in (out / "labels").iterdir()}
    other = write_synthetic_dataset(tmp_path / "other", 6, image_size=32, seed=9, progress=False)
    with pytest.raises(CelebsegError, match="another mapping file") as info:
        prepare.prepare_dataset(other, out, workers=1, progress=False)
    assert f"delete {out / 'labels'} and {layout.source_path(out)}" in str(info.value)
    assert {p.name: p.read_bytes() for p in (out / "labels").iterdir()} == before
    moved = raw.rename(tmp_path / "moved")  # the same data elsewhere is no other data
    assert prepare.prepare_dataset(moved, out, workers=1, progress=False)["existing"] == 6
    (tmp_path / "file").write_text("x")
    with pytest.raises(CelebsegError, match="is a file, not a folder"):
        prepare.prepare_dataset(moved, tmp_path / "file", workers=1, progress=False)


def test_skip_bad_via_cli_prints_how_many(tmp_path, raw, capsys):
    _break(raw, "corrupt mask")
    _break(raw, "masks without photo")
    code = main(["prepare", "--data-root", str(raw), "--out", str(tmp_path / "o"), "--skip-bad",
                 "--workers", "1"])
    assert code == 0
    assert "2 bad images left out, listed in" in capsys.readouterr().out


def test_rerun_skips_complete_labels_and_cleans_temporaries(tmp_path, raw):
    out = tmp_path / "out"
    first = prepare.prepare_dataset(raw, out, workers=1, progress=False)
    assert first["written"] == 6 and first["existing"] == 0
    mtimes = {k: layout.label_path(out, k).stat().st_mtime_ns for k in range(6)}
    layout.label_path(out, 4).unlink()
    leftover = out / "labels" / ".3.x1y2z3.tmp.png"  # what a killed writer leaves behind
    leftover.write_bytes(b"half a png")
    small = [out / ".source.k2j4.tmp.json", out / ".prepare.a8d7.tmp.json",
             out / "splits" / ".train.q1w2.tmp.txt"]  # a run killed while writing these
    for path in small:
        path.write_text("{")
    again = prepare.prepare_dataset(raw, out, workers=1, progress=False)
    assert not any(path.exists() for path in small)
    assert again["written"] == 1 and again["existing"] == 5
    for k in (0, 1, 2, 3, 5):
        assert layout.label_path(out, k).stat().st_mtime_ns == mtimes[k]
    assert np.array_equal(read_label(out, 4), reference_g_mask(raw, 4, 32))
    assert not leftover.exists()
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{k}.png" for k in range(6)]


def test_interrupted_run_leaves_only_complete_labels(tmp_path, raw, monkeypatch):
    out, calls = tmp_path / "out", []

    def flaky_write(path, data):  # dies half-way through writing the third label
        calls.append(path)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data[: len(data) // 2])
            if len(calls) == 3:
                raise KeyboardInterrupt
            tmp.write_bytes(data)

    monkeypatch.setattr(prepare, "atomic_write_bytes", flaky_write)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_dataset(raw, out, workers=1, progress=False)
    # all or nothing: no --out, and no hidden work folder beside it
    assert sorted(os.listdir(tmp_path)) == ["raw"]
    monkeypatch.undo()
    info = prepare.prepare_dataset(raw, out, workers=1, progress=False)
    assert info["written"] == 6 and info["existing"] == 0 and info["num_images"] == 6
    for k in range(6):
        assert np.array_equal(read_label(out, k), reference_g_mask(raw, k, 32))


def test_cli_errors_are_one_line_with_exit_status_2(tmp_path, raw, capsys):
    code = main(["prepare", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert str(tmp_path / "missing") in err[0]
    _break(raw, "corrupt mask")
    code = main(["prepare", "--data-root", str(raw), "--out", str(tmp_path / "o"), "--workers", "1"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert code == 2 and len(err) == 1 and str(layout.mask_path(raw, 2, "skin")) in err[0]
    code = main(["prepare", "--data-root", str(raw), "--out", str(tmp_path / "o"), "--workers", "0"])
    assert code == 2 and "--workers must be at least 1" in capsys.readouterr().err


def test_cli_success_and_tfrecords_hook(tmp_path, raw, capsys, monkeypatch):
    seen = []
    fake = types.ModuleType("celebseg_utils.data.shards")
    fake.write_tfrecord_shards = lambda prepared, progress=True: seen.append((Path(prepared), progress))
    monkeypatch.setitem(sys.modules, "celebseg_utils.data.shards", fake)
    out = tmp_path / "o"
    code = main(["prepare", "--data-root", str(raw), "--out", str(out), "--tfrecords"])
    assert code == 0 and seen == [(out, True)]
    assert capsys.readouterr().out.startswith("prepared 6 images (train/val/test ")
    assert layout.info_path(out).exists()  # shards come after a complete prepared folder


def test_error_in_parallel_run_stops_workers_and_leaves_no_temporary(tmp_path, raw):
    _break(raw, "corrupt mask")
    out = tmp_path / "out"
    with pytest.raises(CelebsegError, match="00002_skin.png"):
        prepare.prepare_dataset(raw, out, workers=2, progress=False)
    # the workers are stopped and their work folder removed: nothing beside the raw folder
    assert sorted(os.listdir(tmp_path)) == ["raw"]
