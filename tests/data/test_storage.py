"""Local and remote (``gs://``) paths through one reader: ``data.storage`` and the layout's
readers of ``prepare.json`` and the split files.

A remote folder is played by TensorFlow's in-memory ``ram://`` filesystem, which goes
through ``tf.io.gfile`` exactly as ``gs://`` does; the fast tests stand a dictionary in for
the bucket.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from celebseg_utils.data import layout, storage
from celebseg_utils.errors import CelebsegError


def test_paths_join_alike_locally_and_remotely(tmp_path):
    assert storage.join("gs://b/prep/", "splits", "val.txt") == "gs://b/prep/splits/val.txt"
    assert storage.join(tmp_path, "labels", 3) == f"{tmp_path}/labels/3"
    assert storage.is_remote("gs://b") and storage.is_remote("ram://x") and not storage.is_remote(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"\x00\x01")
    assert storage.read_bytes(tmp_path / "a.bin") == b"\x00\x01"
    storage.write_json(tmp_path / "d" / "s.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "d" / "s.json").read_text()) == {"k": [1, 2]}


@pytest.fixture
def bucket(monkeypatch):
    """A fake ``gs://`` bucket: object name -> bytes (missing objects raise as gfile does)."""
    objects = {}

    def read_bytes(path):
        if storage.is_remote(path):
            if str(path) not in objects:
                raise OSError(f"NotFoundError: {path}")
            return objects[str(path)]
        return Path(path).read_bytes()

    monkeypatch.setattr(storage, "read_bytes", read_bytes)
    return objects


def test_a_remote_split_and_info_are_read_by_the_same_readers(bucket):
    bucket["gs://b/prep/splits/val.txt"] = b"3\n10\n"
    bucket["gs://b/prep/prepare.json"] = json.dumps({"data_root": "gs://b/raw"}).encode()
    assert layout.read_split("gs://b/prep", "val") == [3, 10]
    assert layout.read_prepare_info("gs://b/prep/")["data_root"] == "gs://b/raw"
    with pytest.raises(CelebsegError, match=r"cannot read split file gs://b/prep/splits/test\.txt"):
        layout.read_split("gs://b/prep", "test")
    with pytest.raises(CelebsegError, match="unknown split 'dev'"):
        layout.read_split("gs://b/prep", "dev")
    with pytest.raises(CelebsegError, match=r"cannot read gs://c/prepare\.json: is gs://c a prepared"):
        layout.read_prepare_info("gs://c")
    bucket["gs://b/prep/splits/train.txt"] = b"3\nseven\n"
    with pytest.raises(CelebsegError, match=r"damaged gs://b/prep/splits/train\.txt"):
        layout.read_split("gs://b/prep", "train")


@pytest.mark.slow  # imports the training engine (Keras): seconds
def test_train_names_the_config_keys_when_a_split_cannot_be_read(tmp_path):
    from celebseg_utils.engine.train import _split_size

    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("1\n2\n5\n")
    assert _split_size(str(tmp_path), "train") == 3
    with pytest.raises(CelebsegError, match=r"missing .*val\.txt.*; set data\.prepared to a folder"):
        _split_size(str(tmp_path), "val")


@pytest.mark.slow  # TensorFlow's filesystems: the first test to import TensorFlow pays seconds
def test_stats_of_a_remote_prepared_folder_round_trip_through_gfile():
    import tensorflow as tf
    from PIL import Image

    from celebseg_utils.data import stats

    root = "ram://celebseg-storage-test/prep"
    tf.io.gfile.makedirs(f"{root}/labels")
    tf.io.gfile.makedirs(f"{root}/splits")
    for k, fill in ((0, 0), (1, 13)):
        png = io.BytesIO()
        Image.fromarray(np.full((4, 4), fill, np.uint8)).save(png, format="PNG")
        with tf.io.gfile.GFile(f"{root}/labels/{k}.png", "wb") as f:
            f.write(png.getvalue())
    with tf.io.gfile.GFile(f"{root}/splits/train.txt", "w") as f:
        f.write("0\n1\n")
    assert layout.read_split(root, "train") == [0, 1]
    computed = stats.compute_stats(root, progress=False)
    assert computed["pixel_counts"][0] == 16 and computed["pixel_counts"][13] == 16
    assert json.loads(storage.read_bytes(f"{root}/stats.json")) == computed
    assert stats.load_or_compute_stats(root, progress=False) == computed
