"""Inference on photos of any size: ``celebseg predict``.

A photo is padded to a square (edge pixels, so the border does not look like a dark frame),
resized to the model's input size, run through the model, and the logits are resized back
(bilinear, on logits, not on labels) and cropped to the photo. Flip test-time augmentation
averages these logits with those of the mirrored photo, mirrored back with left/right
channels swapped (``labels.FLIP_PERMUTATION``).

For each photo ``OUT/<stem>.png`` (uint8 label map, mode L, the photo's size) and
``OUT/<stem>_overlay.png`` (the photo with the colourised labels) are written. Unreadable
photos stop the run before anything is written, unless ``skip_bad`` leaves them out.

>>> from celebseg_utils.engine.predict import predict_images
>>> predict_images("runs/demo/best.keras", ["face.jpg"], "out/")  # doctest: +SKIP
[PosixPath('out/face.png'), PosixPath('out/face_overlay.png')]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from celebseg_utils.visualization import viz
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_path
from celebseg_utils.labels import FLIP_PERMUTATION

DEFAULT_INPUT_SIZE = 512
TTA_CHOICES = (None, "flip")
#: What a folder given to ``predict`` is searched for.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def load_model(model):
    """``model`` itself if it is a keras.Model, else the ``.keras`` file it names, loaded;
    checked to output one logit per CelebAMask-HQ class (see ``evaluate.load_model_checked``).

    >>> load_model("runs/demo/best.keras").output_shape[-1]  # doctest: +SKIP
    19
    """
    from celebseg_utils.engine.evaluate import load_model_checked

    return load_model_checked(model)


def model_input_size(model) -> int:
    """The square input size the model was built for (512 when its input is unsized).

    >>> model_input_size(load_model("runs/demo/best.keras"))  # doctest: +SKIP
    128
    """
    shape = model.input_shape
    size = shape[1] if shape[1] is not None else shape[2]
    return int(size) if size is not None else DEFAULT_INPUT_SIZE


def read_image(path) -> np.ndarray:
    """RGB uint8 (H, W, 3) array of the image at ``path``; CelebsegError if it is not one.

    >>> read_image("face.jpg").shape  # doctest: +SKIP
    (1024, 1024, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise CelebsegError(f"image {path} not found: give the path of an existing photo")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CelebsegError(f"{path} is not a readable image ({exc.__class__.__name__}): "
                            f"give a JPEG or PNG photo") from exc


def _pad_box(h: int, w: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding that centres an (h, w) image in a square."""
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return top, side - h - top, left, side - w - left


def pad_to_square(image: np.ndarray, mode: str = "edge") -> np.ndarray:
    """Centre ``image`` (H, W, C) in a square, padding with edge pixels or zeros.

    >>> pad_to_square(np.ones((2, 4, 3), np.uint8), mode="constant")[:, 0, 0].tolist()
    [0, 1, 1, 0]
    """
    if mode not in ("edge", "constant"):
        raise CelebsegError(f"pad mode {mode!r} unknown: use 'edge' or 'constant'")
    top, bottom, left, right = _pad_box(*image.shape[:2])
    return np.pad(image, ((top, bottom), (left, right), (0, 0)), mode=mode)


def _model_logits(model, batch: np.ndarray, tta) -> np.ndarray:
    logits = np.asarray(model(batch, training=False), dtype=np.float32)
    if tta == "flip":
        mirrored = np.asarray(model(batch[:, :, ::-1], training=False), dtype=np.float32)
        # the mirror of the mirrored photo's logits, with left/right classes swapped back
        logits = 0.5 * (logits + mirrored[:, :, ::-1][..., FLIP_PERMUTATION])
    return logits


def _to_original(logits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import tensorflow as tf

    h, w = shape
    side = max(h, w)
    if logits.shape[0] != side:
        logits = tf.image.resize(logits, (side, side), method="bilinear").numpy()
    top, _, left, _ = _pad_box(h, w)
    return logits[top:top + h, left:left + w]


def predict_logits(model, images: Sequence[np.ndarray], tta=None, batch_size: int = 4,
                   pad_mode: str = "edge") -> list[np.ndarray]:
    """Logits (H, W, 19) float32 at each RGB image's own size (see the module docstring).

    >>> [l.shape for l in predict_logits(model, [np.zeros((90, 150, 3), np.uint8)])]  # doctest: +SKIP
    [(90, 150, 19)]
    """
    import tensorflow as tf

    if tta not in TTA_CHOICES:
        raise CelebsegError(f"tta={tta!r} unknown: use None or 'flip'")
    if batch_size < 1:
        raise CelebsegError(f"batch_size={batch_size} must be at least 1")
    model = load_model(model)
    size = model_input_size(model)
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = []
        for image in chunk:
            square = pad_to_square(np.asarray(image)[..., :3], pad_mode).astype(np.float32)
            if square.shape[0] != size:
                # antialiasing like the training pipeline (data._resize_photo)
                square = tf.image.resize(square, (size, size), antialias=True).numpy()
            batch.append(square)
        logits = _model_logits(model, np.stack(batch), tta)
        out.extend(_to_original(lg, img.shape[:2]) for lg, img in zip(logits, chunk))
    return out


def image_files(paths) -> list[Path]:
    """The photos named by ``paths``: files as given; a folder stands for its images
    (:data:`IMAGE_SUFFIXES`, sorted, not recursive, hidden files left out).

    >>> image_files(["a.jpg", "b.png"])
    [PosixPath('a.jpg'), PosixPath('b.png')]
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise CelebsegError(f"folder {path} has no images ({', '.join(IMAGE_SUFFIXES)}): "
                                f"pass photo files or a folder of photos")
        files.extend(found)
    return files


def _check_outputs(paths: list[Path], out_dir: Path) -> None:
    """Refuse outputs that would clash: a file as --out, two photos with one name, or an
    output path that is one of the photos (``predict face.png --out .``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CelebsegError(f"--out {out_dir} is a file; predict writes a folder of PNGs: "
                            f"choose another --out")
    stems = [p.stem for p in paths]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise CelebsegError(f"several images share the name {dup[0]!r} and would overwrite each "
                            f"other's outputs in {out_dir}: predict them into separate folders")
    inputs = {p.resolve() for p in paths}
    for p in paths:
        for name in (f"{p.stem}.png", f"{p.stem}_overlay.png"):
            if (out_dir / name).resolve() in inputs:
                raise CelebsegError(f"the output {out_dir / name} (of {p.name}) would "
                                    f"overwrite an input photo: choose another --out")


def predict_images(model, image_paths, out_dir, tta=None, batch_size: int = 4,
                   progress: bool = True, pad_mode: str = "edge",
                   skip_bad: bool = False) -> list[Path]:
    """Write ``<stem>.png`` (labels) and ``<stem>_overlay.png`` per image; returns the paths.

    ``model``: a keras.Model or a ``.keras`` path. ``tta``: None or "flip". A folder in
    ``image_paths`` stands for its photos (:func:`image_files`). Every photo is checked
    before anything is written: an unreadable one stops the run with nothing written, or
    with ``skip_bad`` is left out with a ``warning:`` line on stderr (all unreadable: error).

    >>> predict_images("best.keras", ["a.jpg", "b.png"], "pred", tta="flip")  # doctest: +SKIP
    [PosixPath('pred/a.png'), PosixPath('pred/a_overlay.png'), PosixPath('pred/b.png'), ...]
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise CelebsegError(f"--batch-size must be at least 1 (got {batch_size})")
    paths = image_files(image_paths)
    if not paths:
        raise CelebsegError("no images given: pass one or more photo paths")
    out_dir = Path(out_dir)
    _check_outputs(paths, out_dir)
    bad = []
    for p in paths:  # fail (or drop the bad ones) before any work or any output
        try:
            read_image(p)
        except CelebsegError as exc:
            if not skip_bad:
                more = (f"; nothing was written (--skip-bad predicts the other "
                        f"{len(paths) - 1})" if len(paths) > 1 else "")
                raise CelebsegError(f"{exc}{more}") from None
            bad.append(p)
            print(f"warning: skipped {exc}", file=sys.stderr)
    paths = [p for p in paths if p not in bad]
    if not paths:
        raise CelebsegError(f"none of the {len(bad)} images is readable: nothing to predict")
    model = load_model(model)
    written: list[Path] = []
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            images = [read_image(p) for p in chunk]
            for path, image, logits in zip(chunk, images,
                                           predict_logits(model, images, tta, batch_size)):
                label = np.argmax(logits, axis=-1).astype(np.uint8)
                for name, array in ((f"{path.stem}.png", label),
                                    (f"{path.stem}_overlay.png", viz.overlay(image, label))):
                    with atomic_path(out_dir / name) as tmp:
                        Image.fromarray(array).save(tmp)
                    written.append(out_dir / name)
                bar.update(1)
    return written


# --------------------------------------------------------------------------- CLI

def add_predict_arguments(parser) -> None:
    """Options of ``celebseg predict``."""
    parser.add_argument("--model", required=True, help="trained .keras model")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="photos (any size), or folders of photos")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tta", choices=["flip"], default=None,
                        help="flip test-time augmentation (left/right classes swapped)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave unreadable photos out (a warning each) instead of stopping")


def run_predict(args) -> int:
    """``celebseg predict``: prints each file it wrote."""
    for path in predict_images(args.model, args.images, args.out, tta=args.tta,
                               batch_size=args.batch_size, progress=not args.no_progress,
                               skip_bad=args.skip_bad):
        print(path)
    return 0

