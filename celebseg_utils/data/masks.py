"""Fusing the per-attribute mask PNGs of one image into a label map; integer <-> one-hot.

The published algorithm is ``g_mask.py`` of switchablenorms/CelebAMask-HQ::

    im_base = np.zeros((512, 512))
    for idx, label in enumerate(label_list):          # labels.ATTRIBUTES order
        if os.path.exists(filename):
            im = cv2.imread(filename)[:, :, 0]       # BGR blue channel
            im_base[im != 0] = idx + 1
    cv2.imwrite(f"{k}.png", im_base)

A later attribute overwrites an earlier one, so the fused id of a pixel is the largest id
among the masks that are nonzero there: we compute it as a running ``np.maximum``.

One deliberate difference: ``g_mask.py`` looks at the blue channel only; we count a
pixel when *any* colour channel is nonzero (alpha is ignored, as ``cv2.imread`` drops
it; a palette pixel counts when its palette colour is not black). On the real masks,
which are grey (all channels equal), the two agree exactly.

Speed: decoding the PNGs dominates; :mod:`celebseg_utils.data.png` does it (libdeflate and
numpy, all the masks of an image un-filtered in one pass, Pillow where that does not
apply). With the fusion that takes about 2.3x less CPU per image than Pillow plus boolean
indexing (``scripts/bench_prepare.py``).

>>> import numpy as np
>>> label = np.array([[0, 1], [13, 18]], dtype=np.uint8)
>>> onehot = to_one_hot(label)
>>> onehot.shape, int(onehot[1, 0, 13])
((2, 2, 19), 1)
>>> bool((from_one_hot(onehot) == label).all())
True
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from celebseg_utils.data import layout, png
from celebseg_utils.errors import CelebsegError
from celebseg_utils.labels import ATTRIBUTES, NUM_CLASSES

#: The 8 bytes every PNG file starts with (``png.PNG_SIGNATURE``).
PNG_SIGNATURE = png.PNG_SIGNATURE


class BadFileError(CelebsegError):
    """An input file that cannot be used; ``path`` and ``reason`` feed ``problems.txt``.

    >>> str(BadFileError("/d/x.png", "not a PNG file"))
    '/d/x.png: not a PNG file'
    """

    def __init__(self, path, reason: str, fix: str = ""):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}" + (f"; {fix}" if fix else ""))


_REFETCH = "re-extract or re-download it, or run prepare with --skip-bad"


def _unreadable(path, exc: Exception) -> BadFileError:
    if isinstance(exc, MemoryError):
        raise exc
    return BadFileError(path, f"unreadable mask ({str(exc) or type(exc).__name__})", _REFETCH)


def _decode(path: Path, blob: bytes) -> np.ndarray:
    try:
        return png.nonzero(blob)
    except Exception as exc:  # any decoder failure is the file's fault (zlib, PIL, struct)
        raise _unreadable(path, exc) from None


def _read_bytes(path) -> bytes:
    try:
        with open(path, "rb") as fh:  # not Path.read_bytes: pathlib parsing costs ~20 us a call
            blob = fh.read()
    except OSError as exc:
        raise BadFileError(path, f"cannot read mask ({exc.strerror or exc})", _REFETCH) from None
    if not blob:  # an interrupted copy or a full disk; "not a PNG" would hide that
        raise BadFileError(path, "empty mask file (0 bytes)", _REFETCH)
    return blob


def read_mask(path) -> np.ndarray:
    """A mask PNG as a bool (H, W) array: True where any colour channel is nonzero.

    Grey, RGB, RGBA, grey+alpha, palette, 1-bit and 16-bit PNGs are accepted. A missing,
    corrupt or truncated file raises :class:`BadFileError` (a ``CelebsegError``) naming it.

    >>> import tempfile, numpy as np; from PIL import Image
    >>> p = tempfile.mkdtemp() + "/m.png"
    >>> Image.fromarray(np.array([[0, 255], [7, 0]], dtype=np.uint8)).save(p)
    >>> read_mask(p).tolist()
    [[False, True], [True, False]]
    """
    path = Path(path)
    return _decode(path, _read_bytes(path))


def mask_size(path) -> tuple[int, int]:
    """``(width, height)`` of a mask PNG from its header alone (no decoding).

    >>> import tempfile, numpy as np; from PIL import Image
    >>> p = tempfile.mkdtemp() + "/m.png"
    >>> Image.fromarray(np.zeros((3, 5), dtype=np.uint8)).save(p)
    >>> mask_size(p)
    (5, 3)
    """
    try:
        with open(path, "rb") as fh:
            width, height, *_ = png.header(fh.read(33))
    except (OSError, ValueError, struct.error) as exc:
        raise BadFileError(path, f"unreadable mask ({exc})") from None
    return width, height


def existing_masks(root, k: int) -> list[tuple[int, Path]]:
    """``(label id, path)`` of the mask files image ``k`` has, in precedence order.

    >>> existing_masks("/nonexistent", 0)
    []
    """
    found = []
    for class_id, attribute in enumerate(ATTRIBUTES, start=1):
        path = layout.mask_path(Path(root), k, attribute)
        if path.is_file():
            found.append((class_id, path))
    return found


def fuse_mask_files(masks, size: int | None = None, name: str = "image") -> np.ndarray:
    """Fuse ``(label id, path)`` pairs (ascending ids) into a uint8 (S, S) label map.

    The core of :func:`fuse_masks` for callers that listed the files already.
    ``size`` is the expected side; ``None`` takes the first mask's size. A mask of
    another size raises :class:`BadFileError` naming it.

    >>> try:
    ...     fuse_mask_files([], name="image 3")
    ... except BadFileError as exc:
    ...     print(exc.path, "|", exc.reason)
    image 3 | no mask files
    """
    if not masks:
        raise BadFileError(name, "no mask files",
                           "check the download is complete, or run prepare with --skip-bad")
    label, side, fast = None, None, []
    for class_id, path in masks:
        blob = _read_bytes(path)
        try:
            width, height = png.header(blob)[:2]
        except ValueError as exc:
            raise _unreadable(path, exc) from None
        if side is None:
            side = width if size is None else int(size)
            label = np.zeros((side, side), dtype=np.uint8)
        if (width, height) != (side, side):
            raise BadFileError(path, f"mask is {width}x{height} px, the other masks are {side}x{side}",
                               "replace it with the dataset's original or run prepare with --skip-bad")
        try:
            fast.append((class_id, path, blob, *png.parse_fast(blob)))
            continue
        except png.NeedsPillow:
            pass
        except Exception as exc:
            raise _unreadable(path, exc) from None
        _fuse_into(label, _decode(path, blob), class_id)
    # Un-filtering all masks of an image in one pass costs a few numpy calls instead of
    # a few per mask: the per-call overhead, not the arithmetic, is what it saves.
    for bpp in sorted({item[4] for item in fast}):
        group = [item for item in fast if item[4] == bpp]
        try:
            decoded = png.unfilter_many([item[6] for item in group], bpp)
        except png.NeedsPillow:  # one irregular mask: decode each on its own
            decoded = [None] * len(group)
        for (class_id, path, blob, ctype, _, palette, _), rows in zip(group, decoded):
            mask = _decode(path, blob) if rows is None else png.colour_nonzero(ctype, bpp, palette, rows)
            _fuse_into(label, mask, class_id)
    return label


def _fuse_into(label: np.ndarray, mask: np.ndarray, class_id: int) -> None:
    # ids grow with precedence, so "later overwrites earlier" is a running maximum.
    np.maximum(label, mask.view(np.uint8) * np.uint8(class_id), out=label)


def fuse_masks(root, k: int, size: int | None = None) -> np.ndarray:
    """The fused uint8 (S, S) label map of image ``k`` of a raw CelebAMask-HQ folder.

    Equal to what the published ``g_mask.py`` writes (see the module docstring).
    ``size`` is the expected mask side (default: the first mask's). Wrong-size or
    unreadable masks, or an image without any mask, raise a ``CelebsegError`` naming it.

    >>> import tempfile, numpy as np; from PIL import Image
    >>> from celebseg_utils.data import layout
    >>> root = tempfile.mkdtemp()
    >>> for attr, box in (("skin", (slice(0, 4), slice(0, 4))), ("nose", (slice(1, 3), slice(1, 3)))):
    ...     m = np.zeros((4, 4), np.uint8); m[box] = 255
    ...     p = layout.mask_path(root, 7, attr); p.parent.mkdir(parents=True, exist_ok=True)
    ...     Image.fromarray(m).save(p)
    >>> fuse_masks(root, 7)[1].tolist()
    [1, 2, 2, 1]
    """
    masks = existing_masks(root, k)
    where = layout.mask_path(Path(root), k, "*")
    return fuse_mask_files(masks, size, name=f"image {k} ({where})")


def to_one_hot(label, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """uint8 one-hot (..., num_classes) of an integer label map; ids must be < num_classes.

    >>> to_one_hot(np.array([2, 0]), num_classes=3).tolist()
    [[0, 0, 1], [1, 0, 0]]
    """
    label = np.asarray(label)
    if label.size and (label.min() < 0 or label.max() >= num_classes):
        raise ValueError(f"label ids must be in 0..{num_classes - 1}, got {label.min()}..{label.max()}")
    return (label[..., None] == np.arange(num_classes, dtype=label.dtype)).astype(np.uint8)


def from_one_hot(onehot) -> np.ndarray:
    """uint8 label map (...) of a one-hot (or score) array (..., C): argmax over the last axis.

    >>> from_one_hot(np.array([[0, 0, 1], [1, 0, 0]])).tolist()
    [2, 0]
    """
    return np.asarray(onehot).argmax(axis=-1).astype(np.uint8)
