"""Inference on photos of any size: ``celebseg predict`` (and the ``export`` CLI hooks).

A photo is padded to a square (edge pixels, so the border does not look like a dark frame),
resized to the model's input size, run through the model, and the logits are resized back
(bilinear, on logits, not on labels) and cropped to the photo. Flip test-time augmentation
averages these logits with those of the mirrored photo, mirrored back with left/right
channels swapped (``labels.FLIP_PERMUTATION``).

For each photo ``OUT/<stem>.png`` (uint8 label map, mode L, the photo's size) and
``OUT/<stem>_overlay.png`` (the photo with the colourised labels) are written.

>>> from celebseg_utils.predict import predict_images
>>> predict_images("runs/demo/best.keras", ["face.jpg"], "out/")  # doctest: +SKIP
[PosixPath('out/face.png'), PosixPath('out/face_overlay.png')]
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from celebseg_utils import viz
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_path
from celebseg_utils.labels import FLIP_PERMUTATION

DEFAULT_INPUT_SIZE = 512
TTA_CHOICES = (None, "flip")


def load_model(model):
    """``model`` itself if it is a keras.Model, else the ``.keras`` file it names, loaded;
    checked to output one logit per CelebAMask-HQ class (see ``evaluate.load_model_checked``).

    >>> load_model("runs/demo/best.keras").output_shape[-1]  # doctest: +SKIP
    19
    """
    from celebseg_utils.evaluate import load_model_checked

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


def predict_images(model, image_paths, out_dir, tta=None, batch_size: int = 4,
                   progress: bool = True, pad_mode: str = "edge") -> list[Path]:
    """Write ``<stem>.png`` (labels) and ``<stem>_overlay.png`` per image; returns the paths.

    ``model``: a keras.Model or a ``.keras`` path. ``tta``: None or "flip".

    >>> predict_images("best.keras", ["a.jpg", "b.png"], "pred", tta="flip")  # doctest: +SKIP
    [PosixPath('pred/a.png'), PosixPath('pred/a_overlay.png'), PosixPath('pred/b.png'), ...]
    """
    from tqdm.auto import tqdm

    paths = [Path(p) for p in image_paths]
    if not paths:
        raise CelebsegError("no images given: pass one or more photo paths")
    stems = [p.stem for p in paths]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise CelebsegError(f"several images share the name {dup[0]!r} and would overwrite each "
                            f"other's outputs in {out_dir}: predict them into separate folders")
    for p in paths:  # fail before any work or any output
        read_image(p)
    model = load_model(model)
    out_dir = Path(out_dir)
    written: list[Path] = []
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=not progress)
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
    bar.close()
    return written


# --------------------------------------------------------------------------- CLI

def add_predict_arguments(parser) -> None:
    """Options of ``celebseg predict``."""
    parser.add_argument("--model", required=True, help="trained .keras model")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="photos (any size)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tta", choices=["flip"], default=None,
                        help="flip test-time augmentation (left/right classes swapped)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_predict(args) -> int:
    """``celebseg predict``: prints each file it wrote."""
    for path in predict_images(args.model, args.images, args.out, tta=args.tta,
                               batch_size=args.batch_size, progress=not args.no_progress):
        print(path)
    return 0


def add_export_arguments(parser) -> None:
    """Options of ``celebseg export`` (the logic lives in :mod:`celebseg_utils.export`)."""
    from celebseg_utils.export import FORMATS

    parser.add_argument("--model", required=True, help="trained .keras model")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True,
                        help="output folder (savedmodel) or file (.tflite, .onnx)")


def run_export(args) -> int:
    """``celebseg export``: prints the path it wrote."""
    from celebseg_utils.export import export_model

    print(export_model(args.model, format=args.format, out=args.out))
    return 0
