"""The official CelebAMask-HQ train/val/test partition, from the mapping file.

``CelebA-HQ-to-CelebA-mapping.txt`` maps each CelebAMask-HQ image ``idx`` to its CelebA
``orig_idx``. The dataset's published partition script (``g_partition.py`` in
switchablenorms/CelebAMask-HQ) puts an image in val when ``162771 <= orig_idx < 182638``,
in test when ``orig_idx >= 182638``, and in train otherwise; on the full dataset that is
reported as 24183 / 2993 / 2824 images. (The script compares the 0-based ``orig_idx``
with CelebA's 1-based file-number boundaries; we reproduce the published rule as is.)

What is verified here, without the real 30000-line mapping (it ships with the data):
the rule at each boundary exactly, and the parsing and counting end to end on a mapping
file built with those per-split counts. That the real file yields 24183 / 2993 / 2824 is
the authors' figure, not re-measured.

>>> split_of(162770), split_of(162771), split_of(182637), split_of(182638)
('train', 'val', 'val', 'test')
"""

from __future__ import annotations

from pathlib import Path

from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError

VAL_START = 162771
TEST_START = 182638
#: Split sizes of the full dataset under this rule, as published.
OFFICIAL_COUNTS = {"train": 24183, "val": 2993, "test": 2824}


def split_of(orig_idx: int) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a CelebA ``orig_idx``.

    >>> split_of(0), split_of(170000), split_of(200000)
    ('train', 'val', 'test')
    """
    orig_idx = int(orig_idx)
    if orig_idx >= TEST_START:
        return "test"
    if orig_idx >= VAL_START:
        return "val"
    return "train"


def read_mapping(path) -> list[tuple[int, int, str]]:
    """Rows ``(idx, orig_idx, orig_file)`` of a mapping file, in file order.

    The first line is the header ``idx orig_idx orig_file``; blank lines, CRLF line endings
    and a UTF-8 byte-order mark are accepted. A
    malformed line or a repeated ``idx`` raises ``CelebsegError`` with the file and line.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.txt"
    >>> _ = p.write_text("idx orig_idx orig_file\\n0 119613 119614.jpg\\n1 99094 099095.jpg\\n")
    >>> read_mapping(p)
    [(0, 119613, '119614.jpg'), (1, 99094, '099095.jpg')]
    """
    path = Path(path)
    fix = "re-extract it from the dataset archive (or `celebseg synth` writes one)"
    try:
        # utf-8-sig: a byte-order mark (Windows Notepad adds one) would hide the header
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except FileNotFoundError:
        raise CelebsegError(f"mapping file {path} not found: {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CelebsegError(f"cannot read mapping file {path} ({exc}): {fix}") from None
    lines = text.splitlines()
    if not lines or lines[0].split() != ["idx", "orig_idx", "orig_file"]:
        raise CelebsegError(f"{path}:1: expected the header 'idx orig_idx orig_file'; {fix}")
    rows, seen = [], {}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 3:
                raise ValueError
            idx, orig = int(fields[0]), int(fields[1])
            if idx < 0 or orig < 0:
                raise ValueError
        except ValueError:
            raise CelebsegError(f"{path}:{number}: expected 'idx orig_idx orig_file' (two "
                                f"non-negative whole numbers and a file name), got {line.strip()!r}; "
                                f"{fix}") from None
        if idx in seen:
            raise CelebsegError(f"{path}:{number}: image {idx} is listed again (first on line "
                                f"{seen[idx]}); {fix}")
        seen[idx] = number
        rows.append((idx, orig, fields[2]))
    return rows


def splits_from_mapping(rows) -> dict[str, list[int]]:
    """``{"train", "val", "test"}`` -> ascending image ids, from mapping rows.

    >>> splits_from_mapping([(0, 5, "a"), (2, 182640, "b"), (1, 170000, "c")])
    {'train': [0], 'val': [1], 'test': [2]}
    """
    out: dict[str, list[int]] = {name: [] for name in layout.SPLITS}
    for idx, orig, _ in rows:
        out[split_of(orig)].append(int(idx))
    return {name: sorted(ids) for name, ids in out.items()}


def official_splits(root) -> dict[str, list[int]]:
    """The official partition of a raw CelebAMask-HQ folder (from its mapping file).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
    ...     "idx orig_idx orig_file\\n0 190000 190001.jpg\\n1 10 000011.jpg\\n")
    >>> official_splits(root)
    {'train': [1], 'val': [], 'test': [0]}
    """
    return splits_from_mapping(read_mapping(layout.mapping_path(Path(root))))
