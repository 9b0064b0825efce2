"""scripts/count_architecture.py: each count finds the copies it names, and nothing else."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("count_architecture",
                                               REPO_ROOT / "scripts" / "count_architecture.py")
counter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(counter)

ENGINE = '''
import keras
import tensorflow as tf
from celebseg_utils.data import other
from celebseg_utils.labels import NUM_CLASSES


def load(path):
    return keras.saving.load_model(path)


def logits(model, photo):
    small = tf.image.resize(photo, (64, 64), antialias=True)
    return model(small[None])


def back(logits):
    return tf.image.resize(logits, (512, 512), method="bilinear")  # logits: not a photo


def confusion(truth, pred):
    return np.bincount(NUM_CLASSES * truth + pred, minlength=NUM_CLASSES ** 2)


def duration(s):
    return f"{s // 60} min {s % 60:02d} s"


def minutes(s):
    return f"{s} min"  # one unit: not a duration formatter


def split_ids(prep):
    return (prep / "splits" / "test.txt").read_text(), other._helper()


ARMS = {"a": ["loss.name=sparse_ce"], "b": ["loss.name=dice"]}
ONE = ("dice",)
'''


def test_each_count_on_a_hand_made_checkout(tmp_path):
    (tmp_path / "celebseg_utils" / "engine").mkdir(parents=True)
    (tmp_path / "celebseg_utils" / "data").mkdir()
    (tmp_path / "celebseg_utils" / "data" / "other.py").write_text("def _helper():\n    pass\n")
    (tmp_path / "celebseg_utils" / "engine" / "run.py").write_text(ENGINE)
    result = counter.count(tmp_path, {"sparse_ce", "dice"})
    assert result["counts"] == {
        "model loaders": 1, "preprocessing paths": 1, "confusion loops": 1,
        "duration formatters": 1, "split file readers": 1, "places a loss is named": 0,
        "longest function in engine/ (lines)": 3, "cross-module private imports": 1}
    assert result["where"]["cross-module private imports"] == [
        "celebseg_utils.engine.run uses celebseg_utils.data.other._helper"]
    # the ARMS table names its losses inside override strings: the exact names count only
    (tmp_path / "celebseg_utils" / "engine" / "table.py").write_text(
        'LOSSES = {"sparse_ce": 1, "dice": 2}\nPAIRS = [("sparse_ce", ("dice",))]\n')
    assert counter.count(tmp_path, {"sparse_ce", "dice"})["counts"]["places a loss is named"] == 2


@pytest.mark.slow  # parses every module of the package: seconds on this machine
def test_the_table_and_the_json(tmp_path, capsys):
    out = tmp_path / "counts.json"
    assert counter.main([str(REPO_ROOT), "--names", "here", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "| count | here |"
    counts = json.loads(out.read_text())["results"]["here"]["counts"]
    # what issue #23 asked of this checkout
    assert counts["split file readers"] == counts["duration formatters"] == 1
    assert counts["cross-module private imports"] == 0
    assert counter.main([str(tmp_path)]) == 2  # not a checkout: one line, exit 2
