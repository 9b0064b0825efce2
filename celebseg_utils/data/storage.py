"""Reading and writing a local path or a ``gs://`` object with one set of functions.

A prepared folder may live on a local disk or in a Cloud Storage bucket (training on a TPU
reads it from there). Every module that reads one goes through these functions, so a path
is joined, read and written the same way everywhere; ``gs://`` goes through
``tf.io.gfile`` (TensorFlow is imported only for a remote path).

>>> is_remote("gs://bucket/prepared"), is_remote("/data/prepared")
(True, False)
>>> join("gs://bucket/prepared/", "splits", "test.txt")
'gs://bucket/prepared/splits/test.txt'
"""

from __future__ import annotations

import json
from pathlib import Path


def is_remote(path) -> bool:
    """Whether ``path`` is a URL (``gs://...``) rather than a local path.

    >>> is_remote("gs://b/x"), is_remote("runs/x")
    (True, False)
    """
    return "://" in str(path)


def join(base, *parts) -> str:
    """``base/part/...`` as text, for a local path or a URL alike (``Path`` would fold the
    ``//`` of ``gs://``).

    >>> join("gs://b/prep", "labels", "3.png")
    'gs://b/prep/labels/3.png'
    """
    return "/".join([str(base).rstrip("/")] + [str(p) for p in parts])


def read_bytes(path) -> bytes:
    """Bytes of a local file or of a ``gs://`` object (through ``tf.io.gfile``).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.txt"; _ = f.write_bytes(b"12 7\\n")
    >>> read_bytes(f)
    b'12 7\\n'
    """
    if is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path), "rb") as f:
            return f.read()
    return Path(path).read_bytes()


def write_json(path, obj) -> None:
    """``obj`` as indented JSON: atomically for a local file, through ``tf.io.gfile`` for a
    ``gs://`` object.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.json"; write_json(f, {"a": 1})
    >>> json.loads(f.read_text())
    {'a': 1}
    """
    if is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path), "w") as f:
            f.write(json.dumps(obj, indent=2) + "\n")
    else:
        from celebseg_utils.fileio import atomic_write_json

        atomic_write_json(path, obj)
