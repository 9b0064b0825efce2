"""One way to load a model and run it on photos: every command, figure and viewer uses this.

**Loading** (:func:`load_model`): a keras.Model passes through; a path may name a ``.keras``
file, a run directory (its ``final.keras``) or a SavedModel folder (``celebseg export
--format savedmodel``). Each failure is a :class:`~celebseg_utils.errors.CelebsegError`
with one text: a missing path, a folder without a model, a file that is not a ``.keras``
archive (a truncated copy), a file Keras cannot load, and a model that does not output one
logit per CelebAMask-HQ class. The project's layers, losses and metrics are registered
before a ``.keras`` file loads, so this module never imports the training module.

**Input size** (:func:`input_size`): the square side in the model's input shape, or the
``default`` when the model takes any size.

**Running** (:func:`predict_logits`, :func:`predict_labels`): a photo of any size is padded
to a square (edge pixels, so the border does not look like a dark frame), resized to the
model's input size with antialiasing (as the training pipeline resizes its photos), run
through the model, and the logits are resized back (bilinear, on logits, not on labels) and
cropped to the photo. Flip test-time augmentation averages these logits with those of the
mirrored photo, mirrored back with left/right channels swapped
(:data:`celebseg_utils.labels.FLIP_PERMUTATION`).

>>> import numpy as np
>>> from celebseg_utils.engine import inference
>>> model = inference.load_model("runs/demo/run")  # doctest: +SKIP
>>> inference.input_size(model)  # doctest: +SKIP
128
>>> [m.shape for m in inference.predict_labels(model, [np.zeros((90, 150, 3), np.uint8)])]  # doctest: +SKIP
[(90, 150)]
>>> inference.pad_to_square(np.ones((1, 3, 1), np.uint8), mode="constant")[..., 0].tolist()
[[0, 0, 0], [1, 1, 1], [0, 0, 0]]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from celebseg_utils.errors import CelebsegError
from celebseg_utils.labels import FLIP_PERMUTATION, NUM_CLASSES

#: The input size of a model that takes any size (CelebAMask-HQ's label maps are 512 px).
DEFAULT_INPUT_SIZE = 512
#: Test-time augmentations: none, or the mirrored photo averaged in.
TTA_CHOICES = (None, "flip")
#: How a photo is padded to a square: its edge pixels repeated, or zeros.
PAD_MODES = ("edge", "constant")
#: The file a SavedModel folder holds (``celebseg export --format savedmodel``).
SAVED_MODEL_FILE = "saved_model.pb"


# --------------------------------------------------------------------------- loading

def model_file(source) -> Path:
    """The ``.keras`` file or SavedModel folder that the path ``source`` names.

    A run directory names its ``final.keras``; anything else that is not a model is a
    CelebsegError saying what to pass instead.

    >>> model_file("no/such/model.keras")
    Traceback (most recent call last):
    ...
    celebseg_utils.errors.CelebsegError: model no/such/model.keras not found: train one with `celebseg train` or pass the path of a .keras file
    """
    import zipfile

    path = Path(source)
    if path.is_dir():
        if (path / "final.keras").is_file():
            return path / "final.keras"
        if (path / SAVED_MODEL_FILE).is_file():
            return path
        raise CelebsegError(f"{path} is a folder without a final.keras: pass a .keras file "
                            f"(e.g. {path / 'best.keras'}), a finished run directory or a "
                            f"SavedModel folder (`celebseg export --format savedmodel`)")
    if not path.exists():
        raise CelebsegError(f"model {path} not found: train one with `celebseg train` or pass "
                            f"the path of a .keras file")
    # keras reports a truncated archive as "File not found", which sends users looking for it
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise CelebsegError(f"model {path} is not a .keras archive (truncated or corrupt copy?): "
                            f"copy it again or re-export it from the run directory")
    return path


def load_model(source, compile: bool = False):
    """A keras.Model checked to output one logit map per CelebAMask-HQ class.

    ``source``: a keras.Model (returned as it is once checked), or a path that
    :func:`model_file` resolves. ``compile=True`` also restores a ``.keras`` file's
    optimizer, loss and metrics (resuming training needs them; inference does not).

    >>> load_model("runs/demo/run").output_shape  # doctest: +SKIP
    (None, 128, 128, 19)
    """
    where = None
    if isinstance(source, (str, os.PathLike)):
        path = where = model_file(source)
        try:
            model = (_load_saved_model(path) if path.is_dir()
                     else _load_keras_file(path, compile))
        except CelebsegError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken or foreign file is user input
            raise CelebsegError(f"cannot load model {path}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    else:
        model = source
    shape = tuple(model.output_shape)
    if len(shape) != 4 or shape[-1] != NUM_CLASSES:
        raise CelebsegError(f"model {where or model.name} predicts {shape[-1]} classes (output "
                            f"shape {shape}); celebseg needs one logit map per CelebAMask-HQ "
                            f"class, {NUM_CLASSES}: use a model made by `celebseg train`")
    return model


def _load_keras_file(path: Path, compile: bool):
    import keras

    # Registering the project's classes (the backbone wrapper, the losses and metrics a
    # compiled model names) is what lets Keras rebuild a model `celebseg train` saved.
    from celebseg_utils.models import backbones, losses, metrics  # noqa: F401

    if backbones.uses_keras_cv(path):
        backbones.import_keras_cv()  # before Keras imports it itself, loudly
    return keras.saving.load_model(str(path), compile=compile)


def _load_saved_model(path: Path):
    """A SavedModel folder as a keras.Model (inference only: its ``serve`` endpoint)."""
    import keras

    # "serve" is the endpoint Keras's exporter writes (engine.export); it takes one batch
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serve")
    (spec,) = layer.call_endpoint_fn.input_signature
    inputs = keras.Input(tuple(spec.shape[1:]), name="images")
    return keras.Model(inputs, layer(inputs), name=path.name)


def input_size(model, default: int | None = None) -> int:
    """The square input side ``model`` was built for; ``default`` when it takes any size
    (CelebsegError when ``default`` is None, or when the input is not square).

    >>> class Fixed: input_shape = (None, 128, 128, 3)
    >>> class AnySize: input_shape = (None, None, None, 3)
    >>> input_size(Fixed()), input_size(AnySize(), default=DEFAULT_INPUT_SIZE)
    (128, 512)
    """
    sides = {int(s) for s in tuple(model.input_shape)[1:3] if s is not None}
    if len(sides) > 1:
        raise CelebsegError(f"model {getattr(model, 'name', '')} takes non-square images "
                            f"{tuple(model.input_shape)}: celebseg models take squares")
    if sides:
        return sides.pop()
    if default is None:
        raise CelebsegError(f"model {getattr(model, 'name', '')} has no fixed input size; "
                            f"pass image_size")
    return int(default)


# --------------------------------------------------------------------------- running

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
    if mode not in PAD_MODES:
        raise CelebsegError(f"pad mode {mode!r} unknown: use 'edge' or 'constant'")
    top, bottom, left, right = _pad_box(*image.shape[:2])
    return np.pad(image, ((top, bottom), (left, right), (0, 0)), mode=mode)


def _model_input(image: np.ndarray, size: int, pad_mode: str) -> np.ndarray:
    """(size, size, 3) float32: ``image`` padded to a square and resized like training."""
    import tensorflow as tf

    square = pad_to_square(np.asarray(image)[..., :3], pad_mode).astype(np.float32)
    if square.shape[0] != size:
        # antialiasing like the training pipeline (data.pipeline's photo resize)
        square = tf.image.resize(square, (size, size), antialias=True).numpy()
    return square


def _model_logits(model, batch: np.ndarray, tta) -> np.ndarray:
    # A direct call, not model.predict: predict builds a tf.function per model, and the
    # figures and viewers, which show several models one photo at a time, set off
    # TensorFlow's retracing warning with it.
    logits = np.asarray(model(batch, training=False), dtype=np.float32)
    if tta == "flip":
        mirrored = np.asarray(model(batch[:, :, ::-1], training=False), dtype=np.float32)
        # the mirror of the mirrored photo's logits, with left/right classes swapped back
        logits = 0.5 * (logits + mirrored[:, :, ::-1][..., FLIP_PERMUTATION])
    return logits


def _to_photo(logits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Square model logits back at an (h, w) photo's size: resized, then the padding cut."""
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

    ``model``: a keras.Model or a path (:func:`load_model`); ``tta``: None or "flip".

    >>> [l.shape for l in predict_logits(model, [np.zeros((90, 150, 3), np.uint8)])]  # doctest: +SKIP
    [(90, 150, 19)]
    """
    if tta not in TTA_CHOICES:
        raise CelebsegError(f"tta={tta!r} unknown: use None or 'flip'")
    if batch_size < 1:
        raise CelebsegError(f"batch_size={batch_size} must be at least 1")
    model = load_model(model)
    size = input_size(model, default=DEFAULT_INPUT_SIZE)
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = np.stack([_model_input(image, size, pad_mode) for image in chunk])
        logits = _model_logits(model, batch, tta)
        out.extend(_to_photo(lg, np.shape(img)[:2]) for lg, img in zip(logits, chunk))
    return out


def predict_labels(model, images: Sequence[np.ndarray], tta=None,
                   batch_size: int = 4) -> list[np.ndarray]:
    """Label maps (H, W) uint8 at each RGB image's own size: the argmax of
    :func:`predict_logits`, what ``celebseg predict`` writes.

    >>> predict_labels("runs/demo/run", [photo], tta="flip")[0].dtype  # doctest: +SKIP
    dtype('uint8')
    """
    return [np.argmax(logits, axis=-1).astype(np.uint8)
            for logits in predict_logits(model, images, tta, batch_size)]
