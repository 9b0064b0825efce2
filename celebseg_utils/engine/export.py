"""Deployable copies of a trained model: TensorFlow SavedModel, TFLite (float32), ONNX.

Each export takes float32 images 0..255 (B, S, S, 3) and returns float32 logits
(B, S, S, 19), like the Keras model. Outputs are written under a temporary name and renamed,
so an interrupted export leaves no half-written file or folder. ``run_savedmodel``,
``run_tflite`` and ``run_onnx`` run an export on a batch (used by the parity test); the
``celebseg export`` hooks live here too.

>>> from celebseg_utils.engine.export import export_model, run_onnx
>>> path = export_model("runs/demo/best.keras", format="onnx", out="model.onnx")  # doctest: +SKIP
>>> run_onnx(path, images).shape  # doctest: +SKIP
(2, 128, 128, 19)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_write_bytes

FORMATS = ("savedmodel", "tflite", "onnx")
ONNX_OPSET = 17


@contextlib.contextmanager
def _atomic_dir(path: Path):
    """A temporary folder beside ``path``, renamed onto it on success (replacing it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            # os.replace cannot overwrite a non-empty folder: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _input_spec(model):
    import tensorflow as tf

    shape = list(model.input_shape)
    shape[0] = None
    return tf.TensorSpec(shape, tf.float32, name="images")


def _write_savedmodel(model, path: Path) -> None:
    # Keras 3's own exporter: a serving endpoint "serve" with inference-mode layers
    model.export(str(path), format="tf_saved_model", verbose=False)


def _tflite_bytes(model) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        _write_savedmodel(model, Path(tmp) / "sm")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "sm"))
        return converter.convert()  # no optimizations: float32 weights and activations


def _onnx_bytes(model) -> bytes:
    import tensorflow as tf
    import tf2onnx

    # tf2onnx.convert.from_keras expects tf.keras (Keras 2) internals and fails on Keras 3
    # models; a traced tf.function of the inference call converts cleanly.
    spec = _input_spec(model)
    fn = tf.function(lambda images: model(images, training=False), input_signature=[spec])
    # tf2onnx logs a traceback when one optional graph optimisation (transpose folding) does
    # not apply; the conversion itself succeeds, so keep the user's console clean
    log = logging.getLogger("tf2onnx")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=[spec], opset=ONNX_OPSET)
    finally:
        log.setLevel(level)
    return proto.SerializeToString()


def _check_out(out: Path, format: str) -> None:
    """Refuse an ``out`` the export would have to destroy or cannot become."""
    if format != "savedmodel":
        if out.is_dir():
            raise CelebsegError(f"--out {out} is a folder; the {format} export is one file: pass "
                                f"a file name such as {out / ('model.' + format)}")
        return
    if out.is_file():
        raise CelebsegError(f"{out} is a file; a SavedModel is a folder: choose another --out")
    # an earlier export is replaced; any other folder with files in it may be the user's
    if out.is_dir() and any(out.iterdir()) and not (out / "saved_model.pb").is_file():
        raise CelebsegError(f"--out {out} is a folder that is not a SavedModel and not empty; "
                            f"exporting would replace its contents: choose a new folder")


def export_model(model, format: str = "savedmodel", out=None) -> Path:
    """Export ``model`` (a keras.Model or a path :func:`~celebseg_utils.engine.inference.load_model`
    loads) to ``out``; returns ``out``.

    ``format``: "savedmodel" (a folder; an earlier SavedModel there is replaced, any other
    non-empty folder is refused), "tflite" or "onnx" (a file).

    >>> export_model("runs/demo/best.keras", "tflite", "model.tflite")  # doctest: +SKIP
    PosixPath('model.tflite')
    """
    from celebseg_utils.engine.inference import load_model

    if format not in FORMATS:
        raise CelebsegError(f"export format {format!r} unknown: use one of {', '.join(FORMATS)}")
    if out is None:
        raise CelebsegError("export needs an output path (--out)")
    out = Path(out)
    _check_out(out, format)  # before the model loads and the (slow) conversion runs
    model = load_model(model)
    if format == "savedmodel":
        with _atomic_dir(out) as tmp:
            _write_savedmodel(model, tmp)
    elif format == "tflite":
        atomic_write_bytes(out, _tflite_bytes(model))
    else:
        atomic_write_bytes(out, _onnx_bytes(model))
    return out


def run_savedmodel(path, images: np.ndarray) -> np.ndarray:
    """Logits of the SavedModel folder ``path`` for float32 images (B, S, S, 3) 0..255.

    >>> run_savedmodel("model_sm", np.zeros((1, 128, 128, 3), "float32")).shape  # doctest: +SKIP
    (1, 128, 128, 19)
    """
    from celebseg_utils.engine.inference import load_model

    model = load_model(path)  # the SavedModel's "serve" endpoint, as predict would run it
    return np.asarray(model(np.asarray(images, np.float32), training=False))


def run_tflite(path, images: np.ndarray) -> np.ndarray:
    """Logits of the ``.tflite`` file ``path`` for float32 images (B, S, S, 3) 0..255.

    >>> run_tflite("model.tflite", np.zeros((1, 128, 128, 3), "float32")).shape  # doctest: +SKIP
    (1, 128, 128, 19)
    """
    import tensorflow as tf

    with warnings.catch_warnings():
        # TF 2.21 points to ai_edge_litert, which is not a dependency; tf.lite still works
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    images = np.asarray(images, np.float32)
    interpreter.resize_tensor_input(inp["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images)
    interpreter.invoke()
    return np.array(interpreter.get_tensor(out["index"]))


def run_onnx(path, images: np.ndarray) -> np.ndarray:
    """Logits of the ``.onnx`` file ``path`` (onnxruntime, CPU) for float32 images 0..255.

    >>> run_onnx("model.onnx", np.zeros((1, 128, 128, 3), "float32")).shape  # doctest: +SKIP
    (1, 128, 128, 19)
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.asarray(images, np.float32)})[0]


def add_export_arguments(parser) -> None:
    """Options of ``celebseg export``."""
    parser.add_argument("--model", required=True,
                        help="trained .keras model (or a run directory, or a SavedModel folder)")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True,
                        help="output folder (savedmodel) or file (.tflite, .onnx)")


def run_export(args) -> int:
    """``celebseg export``: prints the path it wrote."""
    print(export_model(args.model, format=args.format, out=args.out))
    return 0
