"""The lazy public API of ``celebseg_utils``: each name is the object of the module that owns it."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import celebseg_utils

OWNERS = {
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


def test_all_lists_the_api_and_the_version():
    assert set(celebseg_utils.__all__) == {"__version__", *OWNERS}
    assert celebseg_utils.__version__ == "0.1.0"
    assert set(OWNERS) <= set(dir(celebseg_utils))


@pytest.mark.parametrize("name", sorted(OWNERS))
def test_each_name_is_the_owners_object(name):
    if name == "MaskViewer":
        pytest.importorskip("ipywidgets")
    assert getattr(celebseg_utils, name) is getattr(importlib.import_module(OWNERS[name]), name)


def test_from_import_works_and_unknown_names_fail():
    from celebseg_utils import get_loss, resolve_config  # noqa: F401

    with pytest.raises(AttributeError, match="no_such_name"):
        celebseg_utils.no_such_name  # noqa: B018


def test_names_load_on_first_use_only():
    code = ("import sys, celebseg_utils\n"
            "before = 'celebseg_utils.engine.config' in sys.modules\n"
            "celebseg_utils.load_config\n"
            "print(before, 'celebseg_utils.engine.config' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]
