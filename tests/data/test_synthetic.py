"""Tests of celebseg_utils.data.synthetic.generator: layout, determinism, splits, attributes, CLI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import cli
from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.labels import ATTRIBUTES
from celebseg_utils.data.synthetic.generator import mapping_text, split_plan, write_image, write_synthetic_dataset

MASK_NAME = re.compile(r"^(\d{5})_(" + "|".join(ATTRIBUTES) + r")\.png$")


def official_split(orig_idx: int) -> str:
    """The published rule, written out independently of the package."""
    if 162771 <= orig_idx < 182638:
        return "val"
    return "test" if orig_idx >= 182638 else "train"


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def load_masks(root: Path, k: int) -> dict[str, np.ndarray]:
    masks = {}
    for a in ATTRIBUTES:
        path = layout.mask_path(root, k, a)
        if path.exists():
            masks[a] = np.asarray(Image.open(path)) > 0
    return masks


def fuse(masks: dict[str, np.ndarray], size: int) -> np.ndarray:
    label = np.zeros((size, size), np.uint8)
    for i, a in enumerate(ATTRIBUTES, start=1):
        if a in masks:
            label[masks[a]] = i
    return label


@pytest.fixture(scope="module")
def sixty(tmp_path_factory) -> Path:
    """60 faces at 64 px: enough for every attribute and every kind of overlap."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("sixty"), 60, image_size=64, seed=3,
                                   progress=False, workers=1)


def test_layout_and_file_names_are_exactly_the_real_ones(tmp_path):
    root = write_synthetic_dataset(tmp_path / "raw", 5, image_size=32, seed=0, progress=False)
    assert root == tmp_path / "raw"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [layout.IMAGE_DIR, layout.MASK_DIR, layout.MAPPING_FILE])
    assert sorted(p.name for p in (root / layout.IMAGE_DIR).iterdir()) == [f"{k}.jpg" for k in range(5)]
    assert [p.name for p in (root / layout.MASK_DIR).iterdir()] == ["0"]
    names = [p.name for p in (root / layout.MASK_DIR / "0").iterdir()]
    assert names and all(MASK_NAME.match(n) and int(n[:5]) < 5 for n in names)
    assert not [n for n in all_files(root) if ".tmp" in n]  # nothing half-written left behind
    for k in range(5):
        with Image.open(layout.image_path(root, k)) as photo:
            assert (photo.format, photo.mode, photo.size) == ("JPEG", "RGB", (64, 64))
        masks = 0
        for a in ATTRIBUTES:
            path = layout.mask_path(root, k, a)
            if not path.exists():
                continue
            masks += 1
            with Image.open(path) as m:
                assert (m.format, m.mode, m.size) == ("PNG", "L", (32, 32))
                values = set(np.unique(np.asarray(m)).tolist())
            assert values <= {0, 255} and 255 in values, (path, values)
        assert layout.mask_path(root, k, "skin").exists() and masks >= 8


def test_mask_folder_is_k_div_2000(tmp_path):
    written = write_image(tmp_path, 4001, 32, 0)
    assert "skin" in written
    assert (tmp_path / "CelebAMask-HQ-mask-anno" / "2" / "04001_skin.png").exists()
    assert (tmp_path / "CelebA-HQ-img" / "4001.jpg").exists()
    assert sorted(p.name for p in (tmp_path / "CelebAMask-HQ-mask-anno" / "2").iterdir()) == sorted(
        f"04001_{a}.png" for a in written)


def parse_mapping(text: str):
    lines = text.splitlines()
    assert lines[0].split() == ["idx", "orig_idx", "orig_file"]
    return [(int(a), int(b), c) for a, b, c in (line.split() for line in lines[1:])]


def test_mapping_follows_the_official_rule_and_proportions():
    rows = parse_mapping(mapping_text(100, seed=4))
    assert [r[0] for r in rows] == list(range(100))
    assert len({r[1] for r in rows}) == 100
    assert all(0 <= o < 202599 and f == f"{o + 1:06d}.jpg" for _, o, f in rows)  # CelebA numbering
    splits = [official_split(o) for _, o, _ in rows]
    # 24183 / 2993 / 2824 of 30000 -> 80.61 / 9.98 / 9.41 per 100
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (81, 10, 9)
    assert splits == split_plan(100, seed=4)
    big = [official_split(o) for _, o, _ in parse_mapping(mapping_text(3000, seed=0))]
    # 3000 x 2993 / 30000 = 299.3 val, 3000 x 2824 / 30000 = 282.4 test
    assert (big.count("train"), big.count("val"), big.count("test")) == (2419, 299, 282)


@pytest.mark.parametrize("count, expected", [(1, (1, 0, 0)), (2, (1, 0, 1)), (3, (1, 1, 1)),
                                             (8, (6, 1, 1)), (20, (16, 2, 2))])
def test_small_counts_still_reach_val_and_test(count, expected):
    splits = [official_split(o) for _, o, _ in parse_mapping(mapping_text(count, seed=0))]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == expected


def test_same_seed_same_bytes_any_worker_count_and_other_seed_differs(tmp_path):
    a = all_files(write_synthetic_dataset(tmp_path / "a", 6, image_size=32, seed=7, progress=False, workers=1))
    b = all_files(write_synthetic_dataset(tmp_path / "b", 6, image_size=32, seed=7, progress=False, workers=2))
    c = all_files(write_synthetic_dataset(tmp_path / "c", 6, image_size=32, seed=8, progress=False, workers=1))
    assert a == b
    photos = [f"CelebA-HQ-img/{k}.jpg" for k in range(6)]
    assert all(a[p] != c[p] for p in photos)
    assert a["CelebA-HQ-to-CelebA-mapping.txt"] != c["CelebA-HQ-to-CelebA-mapping.txt"]


def test_worker_processes_started_by_forkserver_give_the_same_bytes(tmp_path, monkeypatch):
    """The start method used once TensorFlow is loaded (forking its threads can deadlock)."""
    from celebseg_utils.data.synthetic import generator as synthetic

    monkeypatch.setitem(__import__("sys").modules, "tensorflow", object())
    assert synthetic._start_method() in ("forkserver", "spawn")
    a = all_files(write_synthetic_dataset(tmp_path / "a", 4, image_size=32, seed=9, progress=False, workers=2))
    b = all_files(write_synthetic_dataset(tmp_path / "b", 4, image_size=32, seed=9, progress=False, workers=1))
    assert a == b


def test_rerun_with_another_seed_leaves_no_stale_masks(tmp_path):
    write_synthetic_dataset(tmp_path / "x", 6, image_size=32, seed=1, progress=False)
    over = all_files(write_synthetic_dataset(tmp_path / "x", 6, image_size=32, seed=2, progress=False))
    fresh = all_files(write_synthetic_dataset(tmp_path / "y", 6, image_size=32, seed=2, progress=False))
    assert over == fresh


def test_every_attribute_occurs_and_masks_overlap(sixty):
    seen, overlaps = set(), {"hair/ear": 0, "eye_g/eye": 0, "hat/hair": 0, "hair/brow": 0, "lips/mouth": 0}
    for k in range(60):
        m = load_masks(sixty, k)
        seen |= set(m)
        both = lambda a, b: a in m and b in m and bool((m[a] & m[b]).any())  # noqa: E731
        overlaps["hair/ear"] += both("hair", "l_ear") or both("hair", "r_ear")
        overlaps["eye_g/eye"] += both("eye_g", "l_eye") or both("eye_g", "r_eye")
        overlaps["hat/hair"] += both("hat", "hair")
        overlaps["hair/brow"] += both("hair", "l_brow") or both("hair", "r_brow")
        overlaps["lips/mouth"] += both("u_lip", "mouth") and both("l_lip", "mouth")
    assert seen == set(ATTRIBUTES)
    assert all(n >= 1 for n in overlaps.values()), overlaps
    assert overlaps["hair/ear"] >= 10


def test_every_written_mask_is_visible_after_precedence(sixty):
    for k in range(60):
        m = load_masks(sixty, k)
        label = fuse(m, 64)
        for i, a in enumerate(ATTRIBUTES, start=1):
            assert (a in m) == bool((label == i).any()), (k, a)


def test_subjects_left_is_on_the_images_right(sixty):
    xs = {a: [] for a in ("l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear")}
    for k in range(60):
        m = load_masks(sixty, k)
        if "l_eye" in m and "r_eye" in m:
            assert np.nonzero(m["l_eye"])[1].mean() > np.nonzero(m["r_eye"])[1].mean(), k
        for a in xs:
            if a in m:
                xs[a].append(np.nonzero(m[a])[1].mean())
    for left, right in (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear")):
        assert np.mean(xs[left]) > 32 + 4 > 32 - 4 > np.mean(xs[right]), (left, right)


def test_photo_shows_the_attribute_that_wins(sixty):
    """Where hair covers an ear, the photo looks like the hair, not the ear; brows are dark."""
    hair_wins, cases, darker_brows, brows = 0, 0, 0, 0
    for k in range(60):
        m = load_masks(sixty, k)
        label = fuse(m, 64)
        with Image.open(layout.image_path(sixty, k)) as photo:
            rgb = np.asarray(photo.resize((64, 64), Image.BOX), dtype=np.float64)
        covered = np.zeros((64, 64), bool)
        for ear in ("l_ear", "r_ear"):
            if ear in m and "hair" in m:
                covered |= m[ear] & (label == 13)
        if covered.sum() >= 4 and (label == 13).sum() > covered.sum() + 20:
            ear_px = (label == 8) | (label == 9)
            if ear_px.sum() >= 4:
                cases += 1
                c = rgb[covered].mean(0)
                hair_wins += np.linalg.norm(c - rgb[(label == 13) & ~covered].mean(0)) < \
                    np.linalg.norm(c - rgb[ear_px].mean(0))
        luma = rgb @ np.array([0.299, 0.587, 0.114])
        brow = (label == 6) | (label == 7)
        if brow.sum() >= 6:
            brows += 1
            darker_brows += np.median(luma[brow]) < np.median(luma[label == 1])
    assert cases >= 5 and hair_wins >= 0.8 * cases, (hair_wins, cases)
    assert brows >= 30 and darker_brows >= 0.9 * brows, (darker_brows, brows)


@pytest.mark.slow
def test_long_tail_frequencies_and_sizes(tmp_path):
    """Over 300 faces: the real data's long tail, and rare parts big enough to learn at 128 px."""
    n = 300
    root = write_synthetic_dataset(tmp_path / "tail", n, image_size=128, seed=11, progress=False)
    present = {a: 0 for a in ATTRIBUTES}
    smallest = {"ear_r": 10**9, "neck_l": 10**9}
    for k in range(n):
        names = {MASK_NAME.match(p.name).group(2)
                 for p in (root / layout.MASK_DIR / "0").glob(f"{k:05d}_*.png")}
        for a in names:
            present[a] += 1
        for a in smallest:
            if a in names:
                smallest[a] = min(smallest[a], int((np.asarray(Image.open(layout.mask_path(root, k, a))) > 0).sum()))
    freq = {a: c / n for a, c in present.items()}
    for rare in ("eye_g", "hat", "neck_l"):
        assert 0.03 <= freq[rare] <= 0.12, (rare, freq[rare])
    assert 0.15 <= freq["ear_r"] <= 0.3
    assert 0.45 <= freq["l_ear"] <= 0.8 and 0.45 <= freq["r_ear"] <= 0.8  # ears often under hair
    assert 0.25 <= freq["mouth"] <= 0.6 and freq["skin"] == freq["nose"] == 1.0
    assert smallest["ear_r"] >= 9 and smallest["neck_l"] >= 9, smallest  # a few px across at 128 px


def test_cli_writes_the_folder_and_prints_one_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["synth", "--out", str(out), "--count", "3", "--image-size", "32", "--seed", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "wrote 3 synthetic faces" in lines[0] and "1/1/1" in lines[0]
    assert all_files(out) == all_files(write_synthetic_dataset(tmp_path / "api", 3, 32, seed=5, progress=False))


@pytest.mark.parametrize("kwargs, option", [({"count": 0}, "--count"), ({"count": -2}, "--count"),
                                            ({"count": 30001}, "--count"), ({"image_size": 31}, "--image-size"),
                                            ({"seed": -1}, "--seed"), ({"workers": 0}, "--workers")])
def test_bad_arguments_raise_and_write_nothing(tmp_path, kwargs, option):
    args = {"count": 2, "image_size": 32} | kwargs
    with pytest.raises(CelebsegError, match=option):
        write_synthetic_dataset(tmp_path / "bad", progress=False, **args)
    assert not (tmp_path / "bad").exists()


def test_cli_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "o"), "--count", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --count")
    assert cli.main(["synth", "--out", str(tmp_path / "o"), "--count", "2", "--image-size", "16"]) == 2
    assert capsys.readouterr().err.startswith("error: --image-size")
    (tmp_path / "file").write_text("x")
    assert cli.main(["synth", "--out", str(tmp_path / "file"), "--count", "2", "--image-size", "32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0]
