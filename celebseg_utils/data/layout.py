"""Where things are: the raw CelebAMask-HQ layout and the prepared-folder layout.

Raw (as unpacked from the official archive, or written by ``celebseg synth``)::

    ROOT/CelebA-HQ-img/<k>.jpg
    ROOT/CelebAMask-HQ-mask-anno/<k // 2000>/<k:05d>_<attr>.png
    ROOT/CelebA-HQ-to-CelebA-mapping.txt

Prepared (written by ``celebseg prepare``)::

    PREP/prepare.json          {"data_root", "label_size", "num_images", "splits", "problems"}
    PREP/source.json           {"mapping_sha256", "label_size"}: the data the labels come from
    PREP/labels/<k>.png        fused uint8 label map, ids 0..18
    PREP/splits/<split>.txt    one image id per line, ascending
    PREP/problems.txt          inputs left out with --skip-bad
    PREP/tfrecords/<split>-NNNNN-of-MMMMM.tfrecord
    PREP/stats.json            written by ``celebseg stats``

>>> from pathlib import Path
>>> mask_path(Path("/d"), 4001, "hair").as_posix()
'/d/CelebAMask-HQ-mask-anno/2/04001_hair.png'
"""

from __future__ import annotations

import json
from pathlib import Path

from celebseg_utils.errors import CelebsegError

IMAGE_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
IMAGES_PER_MASK_FOLDER = 2000
SPLITS = ("train", "val", "test")


def image_path(root: Path, k: int) -> Path:
    return Path(root) / IMAGE_DIR / f"{int(k)}.jpg"


def mask_path(root: Path, k: int, attribute: str) -> Path:
    return Path(root) / MASK_DIR / str(int(k) // IMAGES_PER_MASK_FOLDER) / f"{int(k):05d}_{attribute}.png"


def mapping_path(root: Path) -> Path:
    return Path(root) / MAPPING_FILE


def label_path(prepared: Path, k: int) -> Path:
    return Path(prepared) / "labels" / f"{int(k)}.png"


def split_path(prepared: Path, split: str) -> Path:
    return Path(prepared) / "splits" / f"{split}.txt"


def info_path(prepared: Path) -> Path:
    return Path(prepared) / "prepare.json"


def source_path(prepared: Path) -> Path:
    return Path(prepared) / "source.json"


def tfrecord_dir(prepared: Path) -> Path:
    return Path(prepared) / "tfrecords"


def stats_path(prepared: Path) -> Path:
    return Path(prepared) / "stats.json"


def read_prepare_info(prepared: Path) -> dict:
    """The ``prepare.json`` of a prepared folder; a clear error when it is not one."""
    path = info_path(prepared)
    if not path.exists():
        raise CelebsegError(
            f"{prepared} is not a prepared folder (no {path.name}): "
            f"run `celebseg prepare --data-root RAW --out {prepared}` first")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        info = None
    if not isinstance(info, dict) or "data_root" not in info:
        raise CelebsegError(f"damaged {path}: re-run `celebseg prepare --data-root RAW --out {prepared}` "
                            f"(labels already written are kept)")
    return info


def read_split(prepared: Path, split: str) -> list[int]:
    """Image ids of one split of a prepared folder."""
    if split not in SPLITS:
        raise CelebsegError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    path = split_path(prepared, split)
    if not path.exists():
        raise CelebsegError(f"missing {path}: run `celebseg prepare` on this folder first")
    try:
        return [int(line) for line in path.read_text(encoding="utf-8").split()]
    except (ValueError, UnicodeDecodeError):
        raise CelebsegError(f"damaged {path} (not one image id per line): re-run "
                            f"`celebseg prepare` on this folder") from None


def photo_path(prepared: Path, k: int, info: dict | None = None) -> Path:
    """The photo of image ``k`` of a prepared folder (photos stay in the raw data root)."""
    info = read_prepare_info(prepared) if info is None else info
    return image_path(Path(info["data_root"]), k)
