"""The official partition rule, mapping parsing, and counting end to end."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from celebseg_utils.data import layout, splits
from celebseg_utils.errors import CelebsegError

HEADER = f"{'idx':<12}{'orig_idx':<12}{'orig_file':<12}\n"  # the real file's spacing


def test_module_examples_run():
    assert doctest.testmod(splits).failed == 0


@pytest.mark.parametrize("orig_idx, expected", [
    (0, "train"), (162769, "train"), (162770, "train"), (162771, "val"), (162772, "val"),
    (182636, "val"), (182637, "val"), (182638, "test"), (182639, "test"), (202598, "test"),
])
def test_boundaries_exactly(orig_idx, expected):
    assert splits.split_of(orig_idx) == expected


def test_counts_end_to_end_on_a_mapping_built_from_the_published_counts(tmp_path):
    """30000 rows, 24183/2993/2824 drawn from each split's orig_idx range (boundaries
    included), shuffled, in the real file's format: parsing + rule count them back."""
    rng = np.random.default_rng(0)
    train = np.concatenate([[0, 162770], rng.choice(np.arange(1, 162770), 24181, replace=False)])
    val = np.concatenate([[162771, 182637], rng.choice(np.arange(162772, 182637), 2991, replace=False)])
    test = np.concatenate([[182638, 202598], rng.choice(np.arange(182639, 202598), 2822, replace=False)])
    orig = rng.permutation(np.concatenate([train, val, test]))
    lines = [f"{k:<12}{o:<12}{o + 1:06d}.jpg\n" for k, o in enumerate(orig.tolist())]
    layout.mapping_path(tmp_path).write_text(HEADER + "".join(lines))
    result = splits.official_splits(tmp_path)
    assert {name: len(ids) for name, ids in result.items()} == {"train": 24183, "val": 2993, "test": 2824}
    assert {name: len(ids) for name, ids in result.items()} == splits.OFFICIAL_COUNTS
    assert sorted(sum(result.values(), [])) == list(range(30000))
    assert all(ids == sorted(ids) for ids in result.values())
    k_val = int(np.flatnonzero(orig == 162771)[0])
    assert k_val in result["val"] and int(np.flatnonzero(orig == 162770)[0]) in result["train"]


def test_read_mapping_rows(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text(HEADER + "0           119613      119614.jpg\n\n1           99094       099095.jpg\n")
    assert splits.read_mapping(path) == [(0, 119613, "119614.jpg"), (1, 99094, "099095.jpg")]


@pytest.mark.parametrize("body, line, what", [
    ("0 5 a.jpg\n1 x b.jpg\n", 3, "expected 'idx orig_idx orig_file'"),
    ("0 5 a.jpg\n1 6\n", 3, "expected 'idx orig_idx orig_file'"),
    ("0 5 a.jpg\n-1 6 b.jpg\n", 3, "non-negative"),
    ("0 5 a.jpg\n1 6 b.jpg\n0 7 c.jpg\n", 4, "listed again (first on line 2)"),
])
def test_bad_lines_name_file_and_line(tmp_path, body, line, what):
    path = tmp_path / "m.txt"
    path.write_text(HEADER + body)
    with pytest.raises(CelebsegError) as info:
        splits.read_mapping(path)
    assert f"{path}:{line}:" in str(info.value) and what in str(info.value)


def test_crlf_endings_and_a_byte_order_mark_are_accepted(tmp_path):
    path = tmp_path / "m.txt"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "0 5 a.jpg\n\n1 6 b.jpg\n").replace("\n", "\r\n").encode())
    assert splits.read_mapping(path) == [(0, 5, "a.jpg"), (1, 6, "b.jpg")]


def test_bad_header_and_missing_file(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text("0 5 a.jpg\n")
    with pytest.raises(CelebsegError, match=r"m\.txt:1: expected the header"):
        splits.read_mapping(path)
    with pytest.raises(CelebsegError, match="not found") as info:
        splits.official_splits(tmp_path / "nowhere")
    assert layout.MAPPING_FILE in str(info.value)
