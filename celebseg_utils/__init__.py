"""celebseg_utils: face parsing on CelebAMask-HQ with DeepLabV3+ in Keras.

The rooms (see docs/architecture.md): ``labels``, ``errors`` and ``fileio`` are
the ground floor; ``visualization`` < ``data`` < ``models`` < ``engine`` < ``interface``
each import only their own and lower rooms; ``cli`` and ``demo`` sit on top.

The names below are the public API. They load on first use (PEP 562), so
``import celebseg_utils`` stays fast and never imports TensorFlow::

    import celebseg_utils as cs
    model = cs.build_model(image_size=128)
"""

from __future__ import annotations

import importlib
import os

__version__ = "0.1.0"

# TensorFlow's C++ logs INFO and WARNING lines (XLA service, device placement) to stderr,
# which land in notebook cells. Level 2 hides those and keeps errors; it only takes effect
# when set before TensorFlow loads, hence here. ``setdefault`` leaves a user's own choice
# (e.g. 0 to debug) alone. The lines printed before absl's logging starts ignore it:
# tf_startup filters those (it imports nothing heavy).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from celebseg_utils import tf_startup as _tf_startup  # noqa: E402

_tf_startup.install()

#: public name -> module that defines it
_API: dict[str, str] = {
    "write_synthetic_dataset": "celebseg_utils.data.synthetic.generator",
    "prepare_dataset": "celebseg_utils.data.prepare",
    "compute_stats": "celebseg_utils.data.stats",
    "make_dataset": "celebseg_utils.data.pipeline",
    "build_model": "celebseg_utils.models.deeplab",
    "get_loss": "celebseg_utils.models.losses",
    "load_config": "celebseg_utils.engine.config",
    "resolve_config": "celebseg_utils.engine.config",
    "train": "celebseg_utils.engine.train",
    "load_model": "celebseg_utils.engine.inference",
    "predict_labels": "celebseg_utils.engine.inference",
    "evaluate_model": "celebseg_utils.engine.evaluate",
    "predict_images": "celebseg_utils.engine.predict",
    "parse_photo": "celebseg_utils.engine.predict",
    "MaskViewer": "celebseg_utils.interface.widgets",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
