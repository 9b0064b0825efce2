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

A prepared folder may also be a ``gs://`` URL: :func:`read_prepare_info` and
:func:`read_split` read both (through :mod:`~celebseg_utils.data.storage`), and they are the
only readers of ``prepare.json`` and the split files.

>>> from pathlib import Path
>>> mask_path(Path("/d"), 4001, "hair").as_posix()
'/d/CelebAMask-HQ-mask-anno/2/04001_hair.png'
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from celebseg_utils.data import storage
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


def read_prepare_info(prepared) -> dict:
    """The ``prepare.json`` of a local or ``gs://`` prepared folder; a clear error when it
    is not one."""
    if storage.is_remote(prepared):
        path = storage.join(prepared, "prepare.json")
        try:
            return json.loads(storage.read_bytes(path))
        except Exception as exc:  # noqa: BLE001 - NotFoundError, permission errors
            raise CelebsegError(f"cannot read {path}: is {prepared} a prepared folder (`celebseg "
                                f"prepare --out ...`)? ({exc})") from None
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


def read_split(prepared, split: str) -> list[int]:
    """Image ids of one split of a local or ``gs://`` prepared folder: the one reader of
    ``splits/<split>.txt``.

    >>> import tempfile, pathlib
    >>> prep = pathlib.Path(tempfile.mkdtemp()); (prep / "splits").mkdir()
    >>> _ = (prep / "splits" / "test.txt").write_text("4\\n9\\n")
    >>> read_split(prep, "test")
    [4, 9]
    """
    if split not in SPLITS:
        raise CelebsegError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if storage.is_remote(prepared):
        path = storage.join(prepared, "splits", f"{split}.txt")
        try:
            data = storage.read_bytes(path)
        except Exception:  # noqa: BLE001 - NotFoundError or a permission error
            raise CelebsegError(f"cannot read split file {path}: is {prepared} a prepared "
                                f"folder (`celebseg prepare --out ...`)?") from None
    else:
        path = split_path(prepared, split)
        if not path.exists():
            raise CelebsegError(f"missing {path}: run `celebseg prepare` on this folder first")
        data = path.read_bytes()
    try:
        return [int(line) for line in data.decode("utf-8").split()]
    except (ValueError, UnicodeDecodeError):
        raise CelebsegError(f"damaged {path} (not one image id per line): re-run "
                            f"`celebseg prepare` on this folder") from None


def split_fingerprint(ids) -> str:
    """A short hash of a split's ids in order: what ``stats.json`` and the shards' index
    record, so that a changed split file is noticed.

    >>> split_fingerprint([3, 1, 2])
    'fb70c762b4404a8c'
    """
    return hashlib.sha1(" ".join(map(str, ids)).encode()).hexdigest()[:16]


def photo_path(prepared: Path, k: int, info: dict | None = None) -> Path:
    """The photo of image ``k`` of a prepared folder (photos stay in the raw data root)."""
    info = read_prepare_info(prepared) if info is None else info
    return image_path(Path(info["data_root"]), k)
