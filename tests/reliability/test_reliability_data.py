"""Reliability: broken, odd and hostile raw data given to `celebseg prepare` (and `stats`,
`prepare_dataset`, `masks.fuse_masks`, `data.make_dataset` where they decide).

Every case starts from a private copy of one tiny synthetic CelebAMask-HQ folder (six images,
64 px masks, 128 px photos; image 0 is val, 1 test, 2..5 train) and damages it one way. The
common witnesses (``round_trip``):

* without ``--skip-bad``: a one-line ``error: ...`` naming the file and ``--skip-bad``, exit 2,
  the raw folder unchanged (file digests), no ``prepare.json``, no temporary files, and every
  label already written is complete and correct;
* with ``--skip-bad``: exit 0, the bad image (only it) in ``problems.txt``, the others prepared;
* after restoring the file, a plain re-run completes: every label is byte for byte the PNG
  of ``fuse_masks`` of the undamaged data, the splits are the official ones.

Decisions recorded here (see each test's docstring): an image with no mask file at all is a
problem, not an all-background label; stray files are ignored; a mapping file must keep its
header but may have blank lines, CRLF endings and a UTF-8 byte-order mark.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.data.masks import existing_masks, fuse_masks
from celebseg_utils.data.prepare import encode_label_png, prepare_dataset
from celebseg_utils.data.splits import official_splits
from harness import (assert_user_error, partial_files, run_cli, run_cli_subprocess,
                         tree_digest)

N, SIZE, BAD = 6, 64, 2
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("good") / "raw", N, image_size=SIZE,
                                   seed=3, progress=False)


@pytest.fixture(scope="module")
def expected(good) -> dict:
    """What a correct run yields: label PNG bytes per image and the official splits."""
    return {"labels": {k: encode_label_png(fuse_masks(good, k)) for k in range(N)},
            "splits": official_splits(good)}


@pytest.fixture
def raw(good, tmp_path) -> Path:
    """A private copy of the good folder, to damage."""
    return Path(shutil.copytree(good, tmp_path / "raw"))


def prepare(raw: Path, out: Path, *extra: str):
    return run_cli(["prepare", "--data-root", raw, "--out", out, "--workers", "1", *extra])


def assert_prepared(out: Path, expected: dict, ids) -> None:
    """Exactly the labels of ``ids``, each byte for byte right; official splits; no leftovers."""
    ids = sorted(ids)
    assert sorted(os.listdir(out / "labels")) == sorted(f"{k}.png" for k in ids)
    for k in ids:
        assert layout.label_path(out, k).read_bytes() == expected["labels"][k], k
    for split in layout.SPLITS:
        assert layout.read_split(out, split) == [k for k in expected["splits"][split] if k in ids]
    info = json.loads(layout.info_path(out).read_text())
    assert info["num_images"] == len(ids) and info["label_size"] == SIZE
    assert partial_files(out) == []


def assert_nothing_half_done(out: Path, expected: dict) -> None:
    """After a stopped run: no prepare.json, no temporaries, any label present is right."""
    if not out.exists():
        return
    assert not layout.info_path(out).exists()
    assert partial_files(out) == []
    for path in (out / "labels").glob("*"):
        assert path.read_bytes() == expected["labels"][int(path.stem)], path


def raw_digest(root: Path) -> dict:
    """``tree_digest`` that survives files this user cannot read (the chmod 000 cases)."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                       if os.access(p, os.R_OK) else "unreadable")
            for p in sorted(root.rglob("*")) if p.is_file()}


def round_trip(raw: Path, tmp_path: Path, expected: dict, fragment: str, restore, bad=BAD,
               left_out=(BAD,)) -> str:
    """Stop naming ``fragment``; ``--skip-bad`` lists ``bad``; restore; a re-run completes."""
    out = tmp_path / "out"
    before = raw_digest(raw)
    line = assert_user_error(prepare(raw, out), fragment, "--skip-bad")
    assert raw_digest(raw) == before  # prepare never touches its input
    assert_nothing_half_done(out, expected)

    result = prepare(raw, out, "--skip-bad")
    assert result.code == 0, result
    problems = (out / "problems.txt").read_text().splitlines()
    assert len(problems) == 1 and problems[0].split("\t")[0] == str(bad), problems
    assert fragment in problems[0]
    assert_prepared(out, expected, [k for k in range(N) if k not in left_out])
    assert json.loads(layout.info_path(out).read_text())["problems"] == 1

    restore()
    result = prepare(raw, out)
    assert result.code == 0, result
    assert_prepared(out, expected, range(N))
    assert not (out / "problems.txt").exists()
    return line


def restorer(good: Path, raw: Path, *paths: Path):
    """Put the good copies of ``paths`` (inside ``raw``) back; remove what good lacks."""
    def restore():
        for path in paths:
            source = good / path.relative_to(raw)
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.chmod(0o644)
                path.unlink()
            if source.is_dir():
                shutil.copytree(source, path)
            elif source.exists():
                shutil.copy2(source, path)
    return restore


# --- damaged files --------------------------------------------------------------------------

@pytest.mark.reliability("data", "a truncated photo `CelebA-HQ-img/2.jpg` (first half only)",
                         "error names the photo, exit 2; --skip-bad lists it, others right; "
                         "restored, re-run completes")
def test_truncated_photo(good, raw, tmp_path, expected):
    photo = layout.image_path(raw, BAD)
    photo.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    line = round_trip(raw, tmp_path, expected, str(photo), restorer(good, raw, photo))
    assert "truncated photo" in line


@pytest.mark.reliability("data", "a zero-byte photo `CelebA-HQ-img/2.jpg`",
                         "error names the photo as empty, exit 2; --skip-bad lists it; "
                         "restored, re-run completes")
def test_zero_byte_photo(good, raw, tmp_path, expected):
    photo = layout.image_path(raw, BAD)
    photo.write_bytes(b"")
    line = round_trip(raw, tmp_path, expected, str(photo), restorer(good, raw, photo))
    assert "empty" in line


@pytest.mark.reliability("data", "a truncated mask `00002_hair.png` (first half only)",
                         "error names the mask, exit 2; --skip-bad lists it, others right; "
                         "restored, re-run completes")
def test_truncated_mask(good, raw, tmp_path, expected):
    mask = layout.mask_path(raw, BAD, "hair")
    mask.write_bytes(mask.read_bytes()[: mask.stat().st_size // 2])
    with pytest.raises(CelebsegError, match="00002_hair.png: unreadable mask"):
        fuse_masks(raw, BAD)
    line = round_trip(raw, tmp_path, expected, str(mask), restorer(good, raw, mask))
    assert "truncated" in line


@pytest.mark.reliability("data", "a zero-byte mask `00002_skin.png`",
                         "error names the mask as empty, exit 2; --skip-bad lists it; "
                         "restored, re-run completes")
def test_zero_byte_mask(good, raw, tmp_path, expected):
    mask = layout.mask_path(raw, BAD, "skin")
    mask.write_bytes(b"")
    line = round_trip(raw, tmp_path, expected, str(mask), restorer(good, raw, mask))
    assert "empty" in line


@pytest.mark.reliability("data", "a 300x300 mask `00002_nose.png` among 64x64 masks",
                         "error names the mask and both sizes, exit 2; --skip-bad lists it; "
                         "restored, re-run completes")
def test_wrong_size_mask(good, raw, tmp_path, expected):
    mask = layout.mask_path(raw, BAD, "nose")
    Image.fromarray(np.full((300, 300), 255, np.uint8)).save(mask)
    line = round_trip(raw, tmp_path, expected, str(mask), restorer(good, raw, mask))
    assert "300x300" in line and f"{SIZE}x{SIZE}" in line


@pytest.mark.reliability("data", "masks holding 1, 37, 128 and 254 instead of 255 where set",
                         "success: nonzero counts as set, labels byte-equal to the 0/255 "
                         "masks' fusion")
def test_mask_values_other_than_255(raw, tmp_path, expected):
    values = np.array([1, 37, 128, 254], np.uint8)
    for k in (BAD, 4):
        for _, path in existing_masks(raw, k):
            mask = np.asarray(Image.open(path))
            assert set(np.unique(mask).tolist()) <= {0, 255}  # the synthetic masks are 0/255
            odd = np.where(mask > 0, values[np.arange(mask.size).reshape(mask.shape) % 4], 0)
            Image.fromarray(odd.astype(np.uint8)).save(path)
    assert (np.asarray(Image.open(layout.mask_path(raw, BAD, "skin"))) == 37).any()
    assert encode_label_png(fuse_masks(raw, BAD)) == expected["labels"][BAD]
    result = prepare(raw, tmp_path / "out")
    assert result.code == 0, result
    assert_prepared(tmp_path / "out", expected, range(N))


@pytest.mark.reliability("data", "the masks of one image saved as RGB, P (palette), LA, 1-bit, "
                         "16-bit and L PNGs", "success: labels byte-equal to the all-L masks' fusion")
def test_mask_modes(raw, tmp_path, expected):
    modes = ["RGB", "P", "LA", "1", "I;16", "L"]
    for i, (_, path) in enumerate(existing_masks(raw, BAD)):
        grey = np.asarray(Image.open(path))
        mode = modes[i % len(modes)]
        if mode == "I;16":
            im = Image.fromarray(grey.astype(np.uint16) * 257)
        elif mode == "P":
            im = Image.fromarray((grey > 0).astype(np.uint8), "L").convert("P")
            im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        else:
            im = Image.fromarray(grey).convert(mode)
        im.save(path)
        with Image.open(path) as check:
            assert check.mode == mode
    result = prepare(raw, tmp_path / "out")
    assert result.code == 0, result
    assert_prepared(tmp_path / "out", expected, range(N))


@pytest.mark.parametrize("which", [
    pytest.param("photo", id="png-photo", marks=pytest.mark.reliability(
        "data", "a PNG saved as `CelebA-HQ-img/2.jpg` (right name, wrong format)",
        "error names the photo and says PNG, exit 2; --skip-bad lists it; restored, completes")),
    pytest.param("mask", id="jpeg-mask", marks=pytest.mark.reliability(
        "data", "a JPEG saved as `00002_hair.png` (right name, wrong format)",
        "error names the mask, exit 2; --skip-bad lists it; restored, re-run completes")),
])
def test_file_of_the_wrong_format(good, raw, tmp_path, expected, which):
    if which == "photo":
        path = layout.image_path(raw, BAD)
        Image.open(path).save(path, format="PNG")
    else:
        path = layout.mask_path(raw, BAD, "hair")
        Image.open(path).convert("RGB").save(path, format="JPEG")
    line = round_trip(raw, tmp_path, expected, str(path), restorer(good, raw, path))
    assert ("PNG, not JPEG" if which == "photo" else "not a PNG file") in line


# --- missing and extra files ----------------------------------------------------------------

@pytest.mark.reliability("data", "an image in the mapping with no mask file at all",
                         "error names `00002_*.png` (no all-background label), exit 2; "
                         "--skip-bad lists it; restored, completes")
def test_image_without_masks(good, raw, tmp_path, expected):
    """Decision: a problem, not an all-background label. Every face has skin, and the raw
    layout cannot say "annotated, nothing there": an image with no mask at all means masks
    lost in download or extraction (a mask folder holds 2000 images), and labelling that face
    all background would silently teach the model faces are background."""
    masks = [path for _, path in existing_masks(raw, BAD)]
    for path in masks:
        path.unlink()
    with pytest.raises(CelebsegError, match="no mask files"):
        fuse_masks(raw, BAD)
    line = round_trip(raw, tmp_path, expected, str(layout.mask_path(raw, BAD, "*")),
                      restorer(good, raw, *masks))
    assert "no mask files" in line


@pytest.mark.reliability("data", "masks `00009_*.png` of an image with no photo, not in the mapping",
                         "error names `00009_*.png`, exit 2; --skip-bad lists it, all 6 "
                         "prepared; removed, completes")
def test_masks_without_photo(good, raw, tmp_path, expected):
    orphans = []
    for attribute in ("skin", "hair"):
        orphans.append(layout.mask_path(raw, 9, attribute))
        shutil.copy(layout.mask_path(raw, 0, attribute), orphans[-1])
    line = round_trip(raw, tmp_path, expected, str(layout.mask_path(raw, 9, "*")),
                      restorer(good, raw, *orphans), bad=9, left_out=())
    assert "without a photo" in line


@pytest.mark.reliability("data", "a photo missing for an image the mapping lists (its masks there)",
                         "error names the photo, exit 2; --skip-bad lists it; restored, "
                         "re-run completes")
def test_missing_photo(good, raw, tmp_path, expected):
    photo = layout.image_path(raw, BAD)
    photo.unlink()
    line = round_trip(raw, tmp_path, expected, str(photo), restorer(good, raw, photo))
    assert "missing photo" in line


@pytest.mark.reliability("data", "stray `.DS_Store`, `Thumbs.db`, `00000_skin (1).png`, "
                         "`__MACOSX/`, subfolders",
                         "success, none read: labels byte-equal to the clean folder's, "
                         "no problems listed")
def test_stray_files_are_ignored(raw, tmp_path, expected):
    white = np.full((SIZE, SIZE), 255, np.uint8)  # would change a label if it were read
    mask_dir0 = layout.mask_path(raw, 0, "skin").parent
    for folder in (raw, raw / layout.IMAGE_DIR, raw / layout.MASK_DIR, mask_dir0):
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
        (folder / "notes.txt").write_text("my notes\n")
        (folder / "subfolder").mkdir()
        (folder / "subfolder" / "0.jpg").write_bytes(b"junk")
    (raw / "CelebAMask-HQ-attribute-anno.txt").write_text("30000\n")  # real root has these
    (raw / "README.txt").write_text("CelebAMask-HQ\n")
    for name in ("00000_skin (1).png", "00000_hair.png~", "00000_Skin.PNG", "00000_skin.png.part",
                 "00000_unknown.png", "00000_skin.jpg", "._00000_skin.png"):
        Image.fromarray(white).save(mask_dir0 / name, format="PNG")
    Image.fromarray(white).save(layout.mask_path(raw, 0, "hat").parent.parent / "00000_hat.png")
    wrong_folder = raw / layout.MASK_DIR / "7"  # image 0 belongs in folder 0
    wrong_folder.mkdir()
    Image.fromarray(white).save(wrong_folder / "00000_hat.png")
    for name in ("._0.jpg", "0 (1).jpg", "0.jpeg", "0.JPG", "0.jpg.part"):
        (raw / layout.IMAGE_DIR / name).write_bytes(b"\x00junk")
    macosx = raw / "__MACOSX" / layout.MASK_DIR / "0"  # what a zip made on a Mac adds
    macosx.mkdir(parents=True)
    (macosx / "._00000_skin.png").write_bytes(b"\x00\x05\x16\x07")
    out = tmp_path / "out"
    result = prepare(raw, out)
    assert result.code == 0, result
    assert_prepared(out, expected, range(N))
    assert "no problems" in result.out


# --- the mapping file -----------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    return text.split("\n")


MAPPING_CASES = [
    # id, what was done, change(text) -> bytes, error fragments (None: success), outcome
    ("non-numeric", "a mapping line `3 abc 000004.jpg` (non-numeric orig_idx)",
     lambda t: t.replace("3           18916 ", "3 abc ").encode(), [":5:", "orig_idx"],
     "error names `mapping.txt:5`, exit 2; fixed, re-run completes"),
    ("missing-column", "a mapping line `3 18916` (a column missing)",
     lambda t: t.replace("3           18916       018917.jpg", "3 18916").encode(), [":5:"],
     "error names `mapping.txt:5`, exit 2; fixed, re-run completes"),
    ("duplicate-id", "a mapping that lists image 2 twice",
     lambda t: (t + "2 5 000006.jpg\n").encode(), [":8:", "listed again"],
     "error names `mapping.txt:8` and the first line, exit 2; fixed, re-run completes"),
    ("no-header", "a mapping file without its header line",
     lambda t: t.split("\n", 1)[1].encode(), [":1:", "idx orig_idx orig_file"],
     "error names `mapping.txt:1` and the header expected, exit 2; fixed, re-run completes"),
    ("empty", "a zero-byte mapping file", lambda t: b"", [":1:", "header"],
     "error names `mapping.txt:1`, exit 2; fixed, re-run completes"),
    ("header-only", "a mapping file with the header and no image",
     lambda t: t.split("\n", 1)[0].encode() + b"\n", ["lists no images"],
     "error says the mapping lists no images, exit 2; fixed, re-run completes"),
    ("not-utf8", "a mapping file with a Latin-1 byte (not UTF-8)",
     lambda t: t.replace("093537.jpg", "09353\xe9.jpg").encode("latin-1"), ["cannot read mapping"],
     "error names the mapping file, exit 2; fixed, re-run completes"),
    ("blank-lines", "blank and whitespace-only lines in the mapping, at the end too",
     lambda t: "\n\n  \t\n".join(t.split("\n", 3)).encode() + b"\n\n \n", None,
     "success: labels and official splits as with the clean file"),
    ("crlf", "a mapping file with CRLF line endings", lambda t: t.replace("\n", "\r\n").encode(),
     None, "success: labels and official splits as with the clean file"),
    ("bom", "a mapping file saved with a UTF-8 byte-order mark (Windows Notepad)",
     lambda t: "\ufeff".encode() + t.encode(), None,
     "success: labels and official splits as with the clean file"),
]


@pytest.mark.parametrize("change, fragments", [
    pytest.param(change, fragments, id=case_id,
                 marks=pytest.mark.reliability("data", tried, outcome))
    for case_id, tried, change, fragments, outcome in MAPPING_CASES])
def test_mapping_file(good, raw, tmp_path, expected, change, fragments):
    mapping = layout.mapping_path(raw)
    mapping.write_bytes(change(mapping.read_text()))
    out = tmp_path / "out"
    if fragments is None:
        result = prepare(raw, out)
        assert result.code == 0, result
        assert_prepared(out, expected, range(N))
        return
    before = tree_digest(raw)
    line = assert_user_error(prepare(raw, out, "--skip-bad"), layout.MAPPING_FILE, *fragments)
    assert "Traceback" not in line and tree_digest(raw) == before
    assert not out.exists()  # the mapping is read before anything is written
    restorer(good, raw, mapping)()
    result = prepare(raw, out)
    assert result.code == 0, result
    assert_prepared(out, expected, range(N))


# --- folders ----------------------------------------------------------------------------------

@pytest.mark.reliability("data", "an empty `--data-root` folder",
                         "error names the missing `CelebA-HQ-img` and how to get the data, exit 2; "
                         "nothing written")
def test_empty_data_root(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    line = assert_user_error(prepare(root, tmp_path / "out"), str(root / layout.IMAGE_DIR),
                             "celebseg download")
    assert "celebseg synth" in line
    assert not (tmp_path / "out").exists() and os.listdir(root) == []


@pytest.mark.reliability("data", "a `--data-root` that does not exist",
                         "error names the path and how to get the data, exit 2; nothing written")
def test_missing_data_root(tmp_path):
    line = assert_user_error(prepare(tmp_path / "nowhere", tmp_path / "out"),
                             str(tmp_path / "nowhere"), "celebseg download")
    assert "not a folder" in line
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.reliability("data", "`--data-root` one level too high (the folder holding "
                         "`CelebAMask-HQ/`)",
                         "error names the missing folder and suggests the inner one, exit 2")
def test_data_root_one_level_up(good, tmp_path):
    shutil.copytree(good, tmp_path / "data" / "CelebAMask-HQ")
    line = assert_user_error(prepare(tmp_path / "data", tmp_path / "out"),
                             str(tmp_path / "data" / layout.IMAGE_DIR),
                             f"--data-root {tmp_path / 'data' / 'CelebAMask-HQ'}")
    assert not (tmp_path / "out").exists()


def _make_unreadable(path: Path) -> str:
    """chmod 000 where permissions bite; as root (they do not) a file in the folder's place.
    Returns which was done."""
    if not IS_ROOT:
        path.chmod(0)
        if not os.access(path, os.R_OK):
            return "chmod"
        path.chmod(0o755)
    shutil.rmtree(path)
    path.write_bytes(b"not a folder")
    return "file"


@pytest.mark.parametrize("which", [
    pytest.param("images", id="image-folder", marks=pytest.mark.reliability(
        "data", "an unreadable `CelebA-HQ-img` folder (chmod 000; as root: a file in its place)",
        "error names the folder, exit 2, nothing written; restored, re-run completes")),
    pytest.param("masks", id="mask-subfolder", marks=pytest.mark.reliability(
        "data", "an unreadable mask folder `…-mask-anno/0` (chmod 000; as root: a file)",
        "error names the folder, exit 2; --skip-bad stops too; restored, re-run completes")),
])
def test_unreadable_folder(good, raw, tmp_path, expected, which):
    folder = raw / layout.IMAGE_DIR if which == "images" else layout.mask_path(raw, 0, "x").parent
    _make_unreadable(folder)
    out = tmp_path / "out"
    for extra in ([], ["--skip-bad"]):  # a whole folder is not one bad image
        assert_user_error(prepare(raw, out, *extra), str(folder))
        assert not out.exists()
    restorer(good, raw, folder)()
    result = prepare(raw, out)
    assert result.code == 0, result
    assert_prepared(out, expected, range(N))


@pytest.mark.parametrize("how", [
    pytest.param("flat", id="flattened", marks=pytest.mark.reliability(
        "data", "masks moved up into `CelebAMask-HQ-mask-anno/` (the `0/` subfolder flattened)",
        "error names the folder and where masks belong, exit 2, also with --skip-bad; fixed, "
        "completes")),
    pytest.param("empty", id="emptied", marks=pytest.mark.reliability(
        "data", "an empty `CelebAMask-HQ-mask-anno/0/` (masks not extracted)",
        "error names the mask folder, exit 2, also with --skip-bad; restored, re-run completes")),
])
def test_masks_not_where_they_belong(good, raw, tmp_path, expected, how):
    mask_dir, sub = raw / layout.MASK_DIR, raw / layout.MASK_DIR / "0"
    for path in list(sub.iterdir()):
        if how == "flat":
            path.rename(mask_dir / path.name)
        else:
            path.unlink()
    if how == "flat":
        sub.rmdir()
    out = tmp_path / "out"
    for extra in ([], ["--skip-bad"]):  # no image could be prepared: not one bad image
        line = assert_user_error(prepare(raw, out, *extra), str(mask_dir))
        assert not layout.info_path(out).exists()
    assert ("belong in subfolders" in line) == (how == "flat")
    restorer(good, raw, mask_dir)()
    result = prepare(raw, out)
    assert result.code == 0, result
    assert_prepared(out, expected, range(N))


@pytest.mark.reliability("data", "an unreadable mask file (chmod 000; as root: a folder in its place)",
                         "error names the mask, exit 2; --skip-bad lists it; restored, "
                         "re-run completes")
def test_unreadable_mask_file(good, raw, tmp_path, expected):
    mask = layout.mask_path(raw, BAD, "mouth")
    if IS_ROOT:
        mask.unlink()
        mask.mkdir()
    else:
        mask.chmod(0)
    round_trip(raw, tmp_path, expected, str(mask), restorer(good, raw, mask))


@pytest.mark.reliability("data", "`--out` is an existing file",
                         "error names `--out` and the file, exit 2; the file unchanged")
def test_out_is_a_file(raw, tmp_path):
    out = tmp_path / "out"
    out.write_text("precious\n")
    assert_user_error(prepare(raw, out), f"--out {out}", "is a file")
    assert out.read_text() == "precious\n"


@pytest.mark.parametrize("seed, size", [
    pytest.param(4, SIZE, id="other-seed", marks=pytest.mark.reliability(
        "data", "`prepare` into an `--out` holding labels of other data (another seed)",
        "error names `--out` and the fix, exit 2, labels untouched; done as told, labels right")),
    pytest.param(3, 32, id="other-size", marks=pytest.mark.reliability(
        "data", "`prepare` into an `--out` holding labels made from 32 px masks, now 64 px",
        "error says masks of another size, exit 2, labels untouched; done as told, labels right")),
])
def test_out_holds_labels_of_other_data(raw, tmp_path, expected, seed, size):
    """Before the fix a re-run kept every label it found: the old data's labels stayed."""
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    other = write_synthetic_dataset(tmp_path / "other", N, image_size=size, seed=seed,
                                    progress=False)
    out = tmp_path / "out"
    assert prepare(other, out).code == 0
    before = tree_digest(out)
    line = assert_user_error(prepare(raw, out), f"--out {out}", "choose another --out")
    assert ("another size" in line) == (size != SIZE)
    assert tree_digest(out) == before
    shutil.rmtree(out / "labels")  # as the error says
    layout.source_path(out).unlink()
    result = prepare(raw, out)
    assert result.code == 0, result
    assert_prepared(out, expected, range(N))


@pytest.mark.reliability("data", "the raw folder moved after `prepare` (same data, new path), "
                         "then prepare again", "success: all 6 labels kept (none rewritten), "
                         "prepare.json points to the new path")
def test_moved_raw_folder_keeps_labels(raw, tmp_path, expected):
    out = tmp_path / "out"
    assert prepare(raw, out).code == 0
    labels = tree_digest(out / "labels")
    moved = raw.rename(tmp_path / "moved raw")
    result = prepare(moved, out)
    assert result.code == 0, result
    assert "0 labels written, 6 kept from an earlier run" in result.out
    assert tree_digest(out / "labels") == labels
    assert_prepared(out, expected, range(N))
    assert json.loads(layout.info_path(out).read_text())["data_root"] == str(moved)


@pytest.mark.reliability("data", "every image bad (photos folder emptied) with `--skip-bad`",
                         "error 'none of the 6 images … could be prepared (6 x missing photo; the "
                         "first: …0.jpg); OUT was left as it was', exit 2; no OUT at all (no "
                         "problems.txt pointed to and missing)")
def test_all_images_bad_with_skip_bad(good, raw, tmp_path, expected):
    for k in range(N):
        layout.image_path(raw, k).unlink()
    out = tmp_path / "out"
    with pytest.raises(CelebsegError, match=f"none of the {N} images"):
        prepare_dataset(raw, tmp_path / "direct", workers=1, skip_bad=True, progress=False)
    line = assert_user_error(prepare(raw, out, "--skip-bad"), f"none of the {N} images",
                             f"{N} x missing photo", str(layout.image_path(raw, 0)),
                             f"{out} was left as it was")
    assert "problems.txt" not in line  # the run wrote nothing, so it points to nothing
    assert sorted(os.listdir(tmp_path)) == ["raw"]
    restorer(good, raw, raw / layout.IMAGE_DIR)()
    result = prepare(raw, out)
    assert result.code == 0, result
    assert_prepared(out, expected, range(N))


def _photo_with_exif(path: Path, array: np.ndarray, orientation: int) -> None:
    im = Image.fromarray(array)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.reliability("data", "a raw photo `2.jpg` stored sideways with EXIF Orientation=6 "
                         "(a phone photo)",
                         "error '…2.jpg: photo has EXIF orientation 6 (viewers show it turned 90 "
                         "degrees clockwise)…', exit 2; --skip-bad lists it; restored, completes")
def test_raw_photo_with_exif_orientation(good, raw, tmp_path, expected):
    photo = layout.image_path(raw, BAD)
    with Image.open(photo) as im:
        pixels = np.asarray(im.convert("RGB"))
    _photo_with_exif(photo, np.rot90(pixels).copy(), 6)  # square: only the tag tells
    line = round_trip(raw, tmp_path, expected, str(photo), restorer(good, raw, photo))
    assert "photo has EXIF orientation 6 (viewers show it turned 90 degrees clockwise)" in line


@pytest.mark.parametrize("shape, fragment", [
    pytest.param((128, 75), "photo is 75x128 px but its label", id="other-shape",
                 marks=pytest.mark.reliability(
                     "data", "a raw photo `2.jpg` of 75x128 px (its masks 64x64)",
                     "error '…2.jpg: photo is 75x128 px but its label … is 64x64: their aspect "
                     "ratios differ…', exit 2; --skip-bad lists it; restored, completes")),
    pytest.param((1, 1), "photo too small (1x1 px)", id="1x1",
                 marks=pytest.mark.reliability(
                     "data", "a raw photo `2.jpg` of 1x1 px (its masks 64x64)",
                     "error '…2.jpg: photo too small (1x1 px): a face needs at least 16 px on "
                     "each side', exit 2; --skip-bad lists it; restored, completes")),
])
def test_raw_photo_geometry(good, raw, tmp_path, expected, shape, fragment):
    photo = layout.image_path(raw, BAD)
    Image.fromarray(np.full((*shape, 3), 128, np.uint8)).save(photo, "JPEG")
    line = round_trip(raw, tmp_path, expected, str(photo), restorer(good, raw, photo))
    assert fragment in line


# --- after prepare ----------------------------------------------------------------------------

@pytest.mark.parametrize("damage", [
    pytest.param("truncated", id="truncated", marks=pytest.mark.reliability(
        "data", "a label PNG truncated after prepare (a bad copy), then `celebseg stats`",
        "error names the label, says delete + re-run prepare, exit 2; done so, stats counts right")),
    pytest.param("deleted", id="deleted", marks=pytest.mark.reliability(
        "data", "a label PNG deleted after prepare, then `celebseg stats`",
        "error names the missing label, says re-run prepare, exit 2; done so, stats counts right")),
])
def test_damaged_label_then_stats(raw, tmp_path, expected, damage):
    out, figure = tmp_path / "out", tmp_path / "freq.png"
    assert prepare(raw, out).code == 0
    label = layout.label_path(out, 3)  # a train image
    if damage == "truncated":
        label.write_bytes(label.read_bytes()[:30])
        fix = ["delete it", "re-run `celebseg prepare`"]
    else:
        label.unlink()
        fix = ["missing label", "re-run `celebseg prepare`"]
    stats = ["stats", "--prepared", out, "--figure", figure]
    assert_user_error(run_cli(stats), str(label), *fix)
    assert not layout.stats_path(out).exists() and not figure.exists()
    label.unlink(missing_ok=True)  # what the error says to do
    result = prepare(raw, out)
    assert result.code == 0, result
    assert_prepared(out, expected, range(N))
    result = run_cli(stats)
    assert result.code == 0, result
    counts = sum(np.bincount(fuse_masks(raw, k).ravel(), minlength=19)
                 for k in expected["splits"]["train"])
    assert json.loads(layout.stats_path(out).read_text())["pixel_counts"] == counts.tolist()
    assert figure.exists() and partial_files(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("which", [
    pytest.param("photo", id="photo", marks=pytest.mark.reliability(
        "data", "a photo (`CelebA-HQ-img/4.jpg`) deleted after `prepare`, then `make_dataset`",
        "CelebsegError naming the photo (not a tf NotFoundError mid-epoch)")),
    pytest.param("label", id="label", marks=pytest.mark.reliability(
        "data", "a label (`labels/4.png`) deleted after `prepare`, then `make_dataset`",
        "CelebsegError naming the label (not a tf NotFoundError mid-epoch)")),
])
def test_file_deleted_after_prepare_then_make_dataset(raw, tmp_path, which):
    from celebseg_utils.data.pipeline import make_dataset

    out = tmp_path / "out"
    assert prepare(raw, out).code == 0
    gone = layout.image_path(raw, 4) if which == "photo" else layout.label_path(out, 4)
    gone.unlink()  # 4 is a train image, not the first one
    with pytest.raises(CelebsegError, match=re.escape(str(gone))):
        for _ in make_dataset(out, "train", image_size=SIZE, batch_size=2):
            pass


@pytest.mark.slow
@pytest.mark.reliability("data", "raw and `--out` under `Fäces données/日本`: prepare, stats, "
                         "make_dataset",
                         "success: labels byte-right, stats written, make_dataset batches match; "
                         "also under LC_ALL=C")
def test_spaces_and_non_ascii_paths(good, tmp_path, expected):
    import tensorflow as tf

    from celebseg_utils.data.pipeline import make_dataset

    base = tmp_path / "Fäces données" / "日本"
    raw = Path(shutil.copytree(good, base / "raw data"))
    out = base / "prépa ré"
    result = prepare(raw, out)
    assert result.code == 0, result
    assert str(out) in result.out
    assert_prepared(out, expected, range(N))
    assert json.loads(layout.info_path(out).read_text())["data_root"] == str(raw)
    figure = base / "fréquences.png"
    result = run_cli(["stats", "--prepared", out, "--figure", figure])
    assert result.code == 0, result
    assert figure.exists() and layout.stats_path(out).exists()

    train = expected["splits"]["train"]
    ds = make_dataset(out, "train", image_size=SIZE, batch_size=len(train))
    images, labels = next(iter(ds))
    assert images.shape == (len(train), SIZE, SIZE, 3) and images.dtype == tf.float32
    want = np.stack([fuse_masks(good, k) for k in train])[..., None]
    assert np.array_equal(labels.numpy(), want.astype(np.int32))

    out2 = base / "sortie 2"
    child = run_cli_subprocess(["prepare", "--data-root", raw, "--out", out2, "--workers", "1"],
                               env={"LC_ALL": "C", "LANG": "C"})
    assert child.code == 0 and "Traceback" not in child.err, child
    assert_prepared(out2, expected, range(N))
    bad = run_cli_subprocess(["prepare", "--data-root", base / "nirgends ü", "--out", out2],
                             env={"LC_ALL": "C", "LANG": "C"})
    assert_user_error(bad, str(base / "nirgends ü"))


@pytest.mark.reliability("data", "a mask `00003_hair.png` edited after `prepare` (hair painted "
                         "over the whole image), then prepare again",
                         "success: image 3 fused again (the edit is in its label), the 5 others "
                         "kept: '1 labels written, 5 kept'")
def test_edited_mask_is_fused_again(raw, tmp_path, expected):
    out = tmp_path / "out"
    assert prepare(raw, out).code == 0
    hair = layout.mask_path(raw, 3, "hair")
    Image.fromarray(np.full((SIZE, SIZE), 255, np.uint8)).save(hair)
    result = prepare(raw, out)
    assert result.code == 0 and "1 labels written, 5 kept from an earlier run" in result.out, result
    assert layout.label_path(out, 3).read_bytes() == encode_label_png(fuse_masks(raw, 3))
    assert layout.label_path(out, 3).read_bytes() != expected["labels"][3]
    assert_prepared(out, {**expected, "labels": {**expected["labels"], 3: encode_label_png(
        fuse_masks(raw, 3))}}, range(N))
