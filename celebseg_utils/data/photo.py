"""One way to read a photo: every command that reads one (``prepare``, ``predict``,
``predict --align``) goes through :func:`read_photo` or, where the pixels are not needed,
:func:`probe_photo`.

What it guarantees, whatever the file holds:

- **Upright**: the EXIF orientation tag is applied (``ImageOps.exif_transpose``), as every
  viewer and phone shows the photo. A phone photo stored sideways with Orientation=6 comes
  out as the face the user sees, not rotated 90 degrees.
- **RGB uint8 (H, W, 3)** from any bit depth and colour mode: 1-bit, 8-bit and 16-bit grey
  (16-bit scaled by 1/257, where ``convert("RGB")`` would clip it to white), palette,
  CMYK, and colour with alpha (transparent pixels shown on white, with a note).
- **The first frame** of an animated image (GIF, APNG, WebP, multi-page TIFF), with a note.
  A phone's MPO file (the photo, then depth or preview images) is its first frame, silently.
- **A size that can hold a face and fit in memory**: a side under :data:`MIN_SIDE` px, or
  more pixels than :func:`pixel_limit` allows, is refused with one line naming the file,
  before the pixels are decoded.

Problems are :class:`~celebseg_utils.data.masks.BadFileError` (a ``CelebsegError``):
``path`` and ``reason`` feed ``problems.txt`` and the CLI's one-line error.

>>> import tempfile, numpy as np
>>> from PIL import Image
>>> path = tempfile.mkdtemp() + "/phone.jpg"
>>> stored = Image.fromarray(np.zeros((40, 60, 3), np.uint8))   # stored 60 wide, 40 high
>>> exif = stored.getexif(); exif[ORIENTATION_TAG] = 6            # "turn 90 degrees clockwise"
>>> stored.save(path, exif=exif.tobytes())
>>> probe_photo(path).size, read_photo(path).rgb.shape                # upright: 40 wide, 60 high
((40, 60), (60, 40, 3))
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from celebseg_utils.data.masks import BadFileError

#: EXIF tag 0x0112: how the stored pixels must be turned to be upright (1 = as stored).
ORIENTATION_TAG = 0x0112
#: Orientations 5..8 swap width and height.
_SWAPS_SIDES = (5, 6, 7, 8)
_TURNS = {2: "mirrored", 3: "turned 180 degrees", 4: "flipped upside down",
          5: "mirrored and turned 90 degrees", 6: "turned 90 degrees clockwise",
          7: "mirrored and turned 90 degrees", 8: "turned 90 degrees anticlockwise"}
#: Smallest side (px) of a photo or label. ``predict --align`` parses faces whose eyes are at
#: least 16 px apart (``engine.predict.MIN_EYE_DISTANCE``) and a face is wider than its eye
#: distance, so a photo narrower than that cannot hold a face the model can parse.
MIN_SIDE = 16
#: Memory that ``predict`` needs per photo pixel, at its peak: the logits resized to the
#: padded square (19 float32 = 76 bytes per square pixel, 1.33 square pixels per photo
#: pixel at 4:3), the resize's own copy, the argmax and the overlay. Measured: peak RSS of
#: ``predict_images`` on one 4000x3000 photo 4.40 GB, on a 1000x750 one 1.08 GB, so 295
#: bytes per pixel; 400 leaves room for narrower photos (more padding).
BYTES_PER_PIXEL = 400
#: Never more than Pillow's own decompression-bomb limit (2 x ``Image.MAX_IMAGE_PIXELS``).
PIXEL_CAP = 2 * 89_478_485
#: Animated formats whose extra frames are not the photo's own (MPO: depth or preview).
_SILENT_FRAMES = ("MPO",)


@dataclass(frozen=True)
class PhotoInfo:
    """What a photo's header says: ``format`` (Pillow's, e.g. ``"JPEG"``), ``mode``,
    ``stored_size`` (w, h) as stored, ``size`` (w, h) upright, EXIF ``orientation``
    (1..8, 1 = as stored) and the number of ``frames``."""

    path: Path
    format: str
    mode: str
    stored_size: tuple[int, int]
    size: tuple[int, int]
    orientation: int
    frames: int

    @property
    def turned(self) -> str:
        """How the orientation turns the stored pixels, in words ('' when it does not)."""
        return _TURNS.get(self.orientation, "")


@dataclass
class Photo:
    """A decoded photo: ``rgb`` uint8 (H, W, 3), upright; its ``info``; ``notes``, what the
    decoder did that the user may not expect (one sentence each, no file name)."""

    rgb: np.ndarray
    info: PhotoInfo
    notes: list[str] = field(default_factory=list)


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (Linux: MemAvailable; else the
    physical memory; 8 GiB when neither is known).

    >>> available_memory() > 0
    True
    """
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 8 << 30


def pixel_limit() -> int:
    """The most pixels a photo may have to be parsed on this machine now: the memory
    available divided by :data:`BYTES_PER_PIXEL`, at most :data:`PIXEL_CAP`.

    >>> 0 < pixel_limit() <= PIXEL_CAP
    True
    """
    return int(min(PIXEL_CAP, available_memory() // BYTES_PER_PIXEL))


def _open_error(path: Path, exc: Exception) -> BadFileError:
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, FileNotFoundError):
        return BadFileError(path, "missing photo")
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return BadFileError(path, "is a folder, not a photo")
    if isinstance(exc, PermissionError):
        return BadFileError(path, "unreadable photo (permission denied)")
    if path.is_file() and path.stat().st_size == 0:  # PIL would say "cannot identify"
        return BadFileError(path, "empty photo file (0 bytes)")
    if isinstance(exc, Image.DecompressionBombError):
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else PIXEL_CAP + 1
        return BadFileError(path, _too_large(pixels, None, PIXEL_CAP))
    if isinstance(exc, UnidentifiedImageError):  # its text repeats the path
        return BadFileError(path, "unreadable photo (not a JPEG nor any image format)")
    return BadFileError(path, f"unreadable photo ({exc or type(exc).__name__})")


def _too_large(pixels: int, size, limit: int) -> str:
    scale = (limit / pixels) ** 0.5
    dims = f"{size[0]}x{size[1]} px, " if size else ""
    fit = (f"e.g. to {int(size[0] * scale)}x{int(size[1] * scale)}" if size
           else f"to at most {limit / 1e6:.0f} megapixels")
    return (f"photo too large ({dims}{pixels / 1e6:.0f} megapixels; this machine's memory "
            f"allows {limit / 1e6:.0f} now): downscale it, {fit}")


def _info(path: Path, im) -> PhotoInfo:
    try:
        orientation = int(im.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a damaged EXIF block: viewers ignore it too
        orientation = 1
    if orientation not in _TURNS:
        orientation = 1  # 0 or 9..: not a valid value, exif_transpose ignores it too
    width, height = im.size
    upright = (height, width) if orientation in _SWAPS_SIDES else (width, height)
    return PhotoInfo(path, str(im.format), im.mode, (width, height), upright, orientation,
                     int(getattr(im, "n_frames", 1) or 1))


def check_size(info: PhotoInfo, min_side: int = MIN_SIDE, max_pixels: int | None = None,
               what: str = "photo") -> None:
    """Raise BadFileError unless the upright photo has sides >= ``min_side`` and at most
    ``max_pixels`` pixels (default :func:`pixel_limit`; 0: no limit).

    >>> check_size(PhotoInfo(Path("dot.png"), "PNG", "RGB", (1, 1), (1, 1), 1, 1))
    Traceback (most recent call last):
    ...
    celebseg_utils.data.masks.BadFileError: dot.png: photo too small (1x1 px): a face needs at least 16 px on each side
    """
    width, height = info.size
    if min(width, height) < min_side:
        raise BadFileError(info.path, f"{what} too small ({width}x{height} px): a face needs "
                                      f"at least {min_side} px on each side")
    limit = pixel_limit() if max_pixels is None else max_pixels
    if limit and width * height > limit:
        raise BadFileError(info.path, _too_large(width * height, info.size, limit))


def probe_photo(path) -> PhotoInfo:
    """A photo's :class:`PhotoInfo` from its header only (fast: nothing is decoded).

    Raises BadFileError for a missing, empty, unreadable or non-image file.

    >>> probe_photo("/nonexistent/0.jpg")
    Traceback (most recent call last):
    ...
    celebseg_utils.data.masks.BadFileError: /nonexistent/0.jpg: missing photo
    """
    from PIL import Image

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS; the size is checked here instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return _info(path, im)
    except Exception as exc:  # noqa: BLE001 - PIL raises several types for a broken header
        raise _open_error(path, exc) from None


def _to_rgb(im, notes: list[str]) -> np.ndarray:
    """uint8 (H, W, 3) of a loaded Pillow image in any mode."""
    from PIL import Image

    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"32-bit integer pixels (PIL mode {mode}) outside 0..65535: save "
                             f"the photo as 8- or 16-bit")
        # 16-bit grey: 65535 is white; convert("RGB") would clip everything above 255 to it.
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        raise ValueError("32-bit floating-point pixels (PIL mode F): save the photo as 8- or "
                         "16-bit")
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("LA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:
            notes.append("its transparent pixels are shown on white")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im)
        im = im.convert("RGB")
    elif im.mode != "RGB":
        im = im.convert("RGB")  # 1, L, CMYK, YCbCr, LAB, HSV, RGBX
    return np.asarray(im)


def read_photo(path, min_side: int = MIN_SIDE, max_pixels: int | None = None) -> Photo:
    """Decode the photo at ``path``: upright RGB uint8, its info and notes (module docstring).

    ``min_side`` and ``max_pixels`` (default :func:`pixel_limit`, 0 for none) are checked on
    the header, before the pixels are decoded. Raises BadFileError naming the file.

    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> path = tempfile.mkdtemp() + "/grey16.png"
    >>> Image.fromarray(np.full((20, 30), 32896, np.uint16)).save(path)   # 16-bit mid-grey
    >>> read_photo(path).rgb[0, 0].tolist()
    [128, 128, 128]
    """
    from PIL import Image, ImageOps

    path = Path(path)
    info = probe_photo(path)
    check_size(info, min_side, max_pixels)
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if info.frames > 1 and info.format not in _SILENT_FRAMES:
                    notes.append(f"it is animated or holds {info.frames} frames: the first is "
                                 f"parsed")
                im.seek(0)
                im.load()
                if info.orientation != 1:
                    im = ImageOps.exif_transpose(im)
                rgb = _to_rgb(im, notes)
    except BadFileError:
        raise
    except ValueError as exc:  # our own unsupported-mode messages
        raise BadFileError(path, f"unreadable photo ({exc})") from None
    except MemoryError:
        raise BadFileError(path, _too_large(info.size[0] * info.size[1], info.size,
                                            info.size[0] * info.size[1] // 2)) from None
    except Exception as exc:  # noqa: BLE001 - truncated data, a broken codec stream
        raise _open_error(path, exc) from None
    return Photo(np.ascontiguousarray(rgb), info, notes)


def aspect_agrees(photo_size, label_size) -> bool:
    """Whether a label of ``label_size`` (w, h) can be the photo's, at another scale: scaled
    to the photo's width, its height is within one label pixel of the photo's (and the
    same with the sides swapped). CelebAMask-HQ's 1024 px photos have 512 px masks.

    >>> aspect_agrees((1024, 1024), (512, 512)), aspect_agrees((512, 300), (512, 512))
    (True, False)
    >>> aspect_agrees((1001, 750), (512, 384))
    True
    """
    (pw, ph), (lw, lh) = photo_size, label_size
    return abs(ph * lw / pw - lh) <= 1 and abs(pw * lh / ph - lw) <= 1
