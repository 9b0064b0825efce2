"""Writing files so that an interrupted process never leaves a half-written one.

Every output goes to a temporary name in the same folder, then ``os.replace`` renames it
(atomic on POSIX and Windows within one filesystem).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "a.txt", "hello\\n")
>>> (d / "a.txt").read_text()
'hello\\n'
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


#: errnos that mean "the storage refused the write", whoever raised them without a file name
#: (a buffered flush, h5py, zipfile): they are reported against the file being written.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


@contextlib.contextmanager
def naming_write_errors(path: str | os.PathLike, temporary: str | os.PathLike | None = None):
    """Re-raise a failed write of ``path`` as ``OSError(errno, strerror, path)``.

    The user knows ``path``, not the ``temporary`` it is written through, and libraries
    such as h5py put a multi-line report in ``strerror``: the CLI prints
    ``error: <strerror>: <filename>``, so both become one line naming ``path``. Only errors
    about ``temporary``, and storage errors (:data:`WRITE_ERRNOS`) that name no file, are
    renamed; an error about another file passes through unchanged.

    >>> try:
    ...     with naming_write_errors("/data/best.keras"):
    ...         raise OSError(28, "file write failed: errno = 28 ...")
    ... except OSError as exc:
    ...     print(exc)
    [Errno 28] No space left on device: '/data/best.keras'
    """
    try:
        yield
    except OSError as exc:
        named = exc.filename is not None
        ours = named and temporary is not None and os.fspath(exc.filename) == os.fspath(temporary)
        if exc.errno is None or not (ours or (not named and exc.errno in WRITE_ERRNOS)):
            raise
        raise OSError(exc.errno, os.strerror(exc.errno), os.fspath(path)) from exc


def temporary_beside(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """A new empty file ``.<stem>.<random>.tmp<suffix>`` in ``path``'s folder (created).

    Every writer of this package names its temporaries so: :func:`remove_partial_files`
    finds what a killed writer left. ``suffix`` defaults to ``path``'s own. A failure (no
    inode left, a read-only folder) names ``path``, not the temporary name.

    >>> import tempfile, pathlib
    >>> t = temporary_beside(pathlib.Path(tempfile.mkdtemp()) / "best.keras")
    >>> t.name.startswith(".best.") and t.name.endswith(".tmp.keras") and t.exists()
    True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}",
                                   dir=path.parent)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, os.strerror(exc.errno), os.fspath(path)) from exc
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    ``suffix`` defaults to ``path``'s own suffix so that writers that pick a format from
    the file name (PIL, matplotlib) still do. On error the temporary file is removed and
    ``path`` is left untouched; a failed write (a full disk) names ``path``, see
    :func:`naming_write_errors`.
    """
    path = Path(path)
    tmp_path = temporary_beside(path, suffix)
    try:
        with naming_write_errors(path, tmp_path):
            yield tmp_path
            if tmp_path.is_file():
                # mkstemp creates 0600; outputs are ordinary files, readable as the umask allows.
                os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_partial_files(folder: str | os.PathLike) -> list[str]:
    """Delete the temporaries that killed writers left in ``folder`` (not its subfolders).

    :func:`atomic_path` names them ``.<stem>.<random>.tmp<suffix>``; a process killed
    between writing one and renaming it leaves it behind. Returns the names removed.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / ".best.k2j3.tmp.keras").write_bytes(b"half")
    >>> _ = (d / "best.keras").write_bytes(b"whole")
    >>> remove_partial_files(d), sorted(p.name for p in d.iterdir())
    (['.best.k2j3.tmp.keras'], ['best.keras'])
    """
    removed = []
    for path in sorted(Path(folder).glob(".*.tmp*")):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def json_safe(value):
    """NaN and numpy scalars/arrays as strict JSON holds them (null, float, int, lists).

    >>> import numpy as np
    >>> json_safe({"a": np.float32("nan"), "b": [np.int64(3), 0.5], "c": np.arange(2)})
    {'a': None, 'b': [3, 0.5], 'c': [0, 1]}
    """
    import math

    import numpy as np

    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value
