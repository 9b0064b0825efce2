"""Writing a prepared folder, all or nothing: what both sources of ``celebseg prepare``
(:mod:`~celebseg_utils.data.prepare`, raw masks; :mod:`~celebseg_utils.data.fused`, fused
labels) share.

:class:`PreparedWriter` is a transaction on ``--out``:

- it works in a hidden sibling folder ``.<OUT>.prepare-<pid>-<random>`` that starts as a
  copy of the previous ``OUT`` (hard links: instant, and no byte is duplicated), so labels
  an earlier run made can be kept;
- :meth:`PreparedWriter.commit` swaps it into place with two renames, after the whole run
  succeeded; until then ``OUT`` is exactly as it was;
- any failure (a bad file, Ctrl-C, a full disk) removes the sibling: ``OUT`` is untouched and
  nothing new is left. A killed run's sibling is removed by the next run, and a run killed
  between the two renames is rolled forward or back by the next one.

Every file in the sibling is replaced, never written in place (``fileio.atomic_path``), so
the hard links never let a new file leak into the previous ``OUT``.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "prep"
>>> with PreparedWriter(out, {"kind": "example"}) as w:
...     _ = (w.work / "labels" / "0.png").write_bytes(b"label")
...     w.commit()
>>> sorted(p.name for p in out.iterdir())
['labels', 'source.json']
>>> try:
...     with PreparedWriter(out, {"kind": "example"}) as w:
...         _ = (w.work / "labels" / "1.png").write_bytes(b"half")
...         raise KeyboardInterrupt
... except KeyboardInterrupt:
...     pass
>>> sorted(p.name for p in (out / "labels").iterdir()), len(list(out.parent.iterdir()))
(['0.png'], 1)
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import sys
from pathlib import Path

from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_write_json, atomic_write_text

#: Outputs computed from the labels and splits (``celebseg stats``, ``--tfrecords``): stale
#: once a label or a split changes, so the writer drops them then (see :meth:`drop_derived`).
DERIVED = ("stats.json", "tfrecords")


def resolve_workers(workers) -> int:
    """Worker processes to use: ``workers``, or all usable cores when None.

    >>> resolve_workers(2)
    2
    >>> resolve_workers(0)
    Traceback (most recent call last):
    ...
    celebseg_utils.errors.CelebsegError: --workers must be at least 1 (got 0); leave it out to use all cores
    """
    if workers is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if int(workers) < 1:
        raise CelebsegError(f"--workers must be at least 1 (got {workers}); leave it out to use all cores")
    return int(workers)


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: only the main process reports it (one line);
    # workers printing their own KeyboardInterrupt tracebacks would bury it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_method() -> str:
    # fork starts workers in milliseconds, but forking TensorFlow's runtime threads can
    # deadlock the children; forkserver/spawn re-import this module instead (about 0.5 s).
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and "tensorflow" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def run_jobs(jobs, work, workers: int, total: int, progress: bool, desc: str = "prepare"):
    """Yield ``work(job)`` for each job (a list of per-image results), in worker processes
    when ``workers > 1``, with a progress bar counting ``total`` images. Closing the
    generator stops the workers at once.

    >>> list(run_jobs([[1, 2], [3]], lambda job: [x * 10 for x in job], 1, 3, False))
    [[10, 20], [30]]
    """
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                results = work(job)
                bar.update(len(results))
                yield results
            return
        pool = multiprocessing.get_context(_start_method()).Pool(workers, initializer=_ignore_sigint)
        try:
            for results in pool.imap_unordered(work, jobs):
                bar.update(len(results))
                yield results
            pool.close()
        finally:
            pool.terminate()
            pool.join()


def problem_error(problem, out) -> CelebsegError:
    """The one-line error for an input problem ``(k, file, reason)`` when ``--skip-bad`` is off.

    >>> str(problem_error((2, "/raw/2.jpg", "missing photo"), "prep"))
    '/raw/2.jpg: missing photo (image 2); fix or remove it, or re-run with --skip-bad to leave such images out (listed in prep/problems.txt)'
    """
    k, path, reason = problem
    return CelebsegError(f"{path}: {reason} (image {k}); fix or remove it, or re-run with "
                         f"--skip-bad to leave such images out (listed in "
                         f"{Path(out) / 'problems.txt'})")


def nothing_prepared_error(total: int, what: str, problems, out) -> CelebsegError:
    """The error when ``--skip-bad`` left no image: the reasons, counted, and the first
    problem in full (no ``problems.txt`` is written: a failed run writes nothing).

    >>> str(nothing_prepared_error(2, "images of the mapping file",
    ...     [(0, "/r/0.jpg", "missing photo"), (1, "/r/1.jpg", "missing photo")], "prep"))
    'none of the 2 images of the mapping file could be prepared (2 x missing photo; the first: /r/0.jpg); prep was left as it was'
    """
    counts: dict[str, int] = {}
    for _, _, reason in problems:
        key = re.sub(r"\d+", "N", reason) if len(reason) > 60 else reason
        counts[key] = counts.get(key, 0) + 1
    common = sorted(counts.items(), key=lambda kv: -kv[1])
    listed = ", ".join(f"{n} x {reason}" for reason, n in common[:3])
    if len(common) > 3:
        listed += f", {sum(n for _, n in common[3:])} others"
    first = f"; the first: {problems[0][1]}" if problems else ""
    return CelebsegError(f"none of the {total} {what} could be prepared ({listed}{first}); "
                         f"{out} was left as it was")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links (FAT, some network drives)
        shutil.copy2(src, dst)


class PreparedWriter:
    """A transaction on a prepared folder ``out`` (see the module docstring).

    ``source`` describes the data the labels come from (``OUT/source.json``); an ``out``
    whose ``source.json`` says other data is refused before anything is done, as a re-run
    keeps labels and would mix the two. Inside ``with``: write into :attr:`work` (its
    ``labels/`` exists), read the previous run's files with :meth:`previous`, then call
    :meth:`commit`. Leaving the block without committing removes :attr:`work`.
    """

    def __init__(self, out, source: dict):
        self.out = Path(out)
        self.source = source
        # A symlinked --out: the folder it points to is the one replaced, where it is.
        self.target = Path(os.path.realpath(self.out))
        self.work: Path | None = None
        self._had_out = False
        self._made_parents: list[Path] = []
        self.committed = False

    # ------------------------------------------------------------------ set-up
    def _siblings(self, kind: str):
        pattern = re.compile(rf"^\.{re.escape(self.target.name)}\.{kind}-(\d+)-[0-9a-f]+$")
        try:
            entries = list(os.scandir(self.target.parent))
        except OSError:
            return
        for entry in entries:
            m = pattern.match(entry.name)
            if m and not _pid_alive(int(m.group(1))):
                yield Path(entry.path)

    def _recover(self) -> None:
        """Finish or undo what a killed run left (see :meth:`commit`)."""
        for old in self._siblings("previous"):
            if not self.target.exists():
                os.rename(old, self.target)  # killed between the renames: roll back
            else:
                shutil.rmtree(old, ignore_errors=True)  # killed while deleting: finish
        for partial in self._siblings("prepare"):
            shutil.rmtree(partial, ignore_errors=True)

    def _check_out(self) -> None:
        out, target = self.out, self.target
        if target.exists() and not target.is_dir():
            raise CelebsegError(f"--out {out}: {out} is a file, not a folder; choose another --out")
        labels = target / "labels"
        if labels.exists() and not labels.is_dir():
            raise CelebsegError(f"--out {out}: {out / 'labels'} is a file, not a folder; choose "
                                f"another --out")
        source_file = layout.source_path(target)
        try:
            old = json.loads(source_file.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            old = {}
        if old != self.source:
            what = ("masks of another size" if "mapping_sha256" in self.source
                    and old.get("mapping_sha256") == self.source["mapping_sha256"]
                    else "another mapping file" if "mapping_sha256" in self.source
                    else "other photo/label files")
            raise CelebsegError(
                f"--out {out} holds labels made from other data ({what}, says "
                f"{layout.source_path(out)}); choose another --out, or delete {out / 'labels'} "
                f"and {layout.source_path(out)} to remake them")

    def __enter__(self) -> "PreparedWriter":
        parent = self.target.parent
        if parent.is_dir():
            self._recover()
        self._check_out()
        for folder in [parent, *parent.parents]:
            if folder.exists():
                break
            self._made_parents.append(folder)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.work = parent / f".{self.target.name}.prepare-{os.getpid()}-{secrets.token_hex(4)}"
            self._had_out = self.target.is_dir()
            if self._had_out:
                shutil.copytree(self.target, self.work, symlinks=True, copy_function=_link_or_copy,
                                ignore=shutil.ignore_patterns(".*.tmp*"))
            else:
                self.work.mkdir()
            (self.work / "labels").mkdir(exist_ok=True)
        except OSError as exc:
            self._discard()
            where = exc.filename or parent
            raise CelebsegError(f"--out {self.out}: cannot prepare a new copy beside it in "
                                f"{parent} ({exc.strerror or exc}: {where}); make that folder "
                                f"writable or choose another --out") from None
        except BaseException:
            self._discard()
            raise
        if not layout.source_path(self.work).exists():
            atomic_write_json(layout.source_path(self.work), self.source)
        return self

    # ------------------------------------------------------------------ during the run
    def previous(self, name: str) -> Path | None:
        """The previous run's file ``name`` (relative to ``OUT``), or None if it had none."""
        path = self.target / name
        return path if self._had_out and path.exists() else None

    def drop_derived(self) -> None:
        """Remove :data:`DERIVED` outputs from the new folder (the labels or splits changed)."""
        for name in DERIVED:
            path = self.work / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()

    def write_splits(self, split_ids: dict[str, list[int]]) -> bool:
        """Write ``splits/<name>.txt``; returns whether they differ from the previous run's."""
        changed = False
        for name in layout.SPLITS:
            text = "".join(f"{k}\n" for k in split_ids.get(name, []))
            path = layout.split_path(self.work, name)
            changed |= not path.exists() or path.read_text() != text
            atomic_write_text(path, text)
        return changed

    def write_problems(self, problems, skip_bad: bool) -> None:
        """``problems.txt`` (``k<TAB>file<TAB>reason``) with ``skip_bad``; else none."""
        path = self.work / "problems.txt"
        if skip_bad:
            atomic_write_text(path, "".join(f"{k}\t{f}\t{r}\n" for k, f, r in problems))
        else:
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ the end
    def commit(self) -> None:
        """Put the new folder in place of ``OUT``: two renames (the previous ``OUT`` aside,
        the new one in), then the previous one is deleted."""
        target, work = self.target, self.work
        cwd = None
        with contextlib.suppress(OSError):
            cwd = Path.cwd()
        aside = target.parent / f".{target.name}.previous-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            if self._had_out:
                os.rename(target, aside)
            os.rename(work, target)
        except OSError as exc:
            if self._had_out and aside.exists() and not target.exists():
                os.rename(aside, target)
            raise CelebsegError(f"--out {self.out}: cannot replace it ({exc.strerror or exc}); "
                                f"it was left as it was (a mount point cannot be replaced: "
                                f"choose a folder inside it)") from None
        self.committed = True
        shutil.rmtree(aside, ignore_errors=True)
        # A process whose working folder was inside OUT would be left in the deleted copy.
        if cwd is not None and (cwd == target or target in cwd.parents):
            with contextlib.suppress(OSError):
                os.chdir(cwd)

    def _discard(self) -> None:
        if self.work is not None and self.work.exists():
            shutil.rmtree(self.work, ignore_errors=True)
        for folder in self._made_parents:  # parents this run created, innermost first
            with contextlib.suppress(OSError):
                folder.rmdir()

    def __exit__(self, kind, exc, traceback) -> None:
        if self.committed:
            return
        work = self.work
        self._discard()
        # A write that failed in the work folder (a full disk) is reported where the user
        # looks: the same file under --out.
        if isinstance(exc, OSError) and exc.filename and work is not None \
                and str(exc.filename).startswith(str(work) + os.sep) and exc.errno is not None:
            shown = str(self.out) + str(exc.filename)[len(str(work)):]
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), shown) from exc
