"""Where a notebook runs, and where its data and runs live from one runtime to the next.

Each Colab notebook runs on a runtime of its own, and a disconnect gives a fresh one with an
empty disk. So what must outlive a runtime is *kept* in one place: Google Drive on Colab
(``My Drive/celebseg``), ``/kaggle/working/celebseg`` on Kaggle::

    KEEP/data/CelebAMask-HQ.zip   the downloaded archive (notebook 01), kept once
    KEEP/data/prepared.tar        the prepared dataset, photos included, as one file (02)
    KEEP/runs/<run>/              the training runs and their backups (04-06)

The runtime's own disk holds the working copies (``data/CelebAMask-HQ``, ``data/prepared``).
Every notebook from 02 on starts with :func:`ensure_data`, which makes the prepared folder
ready whatever the runtime holds: already there, restored from the kept ``prepared.tar``,
prepared again from the kept archive (or from a Kaggle dataset attached to the notebook),
or, with nothing kept, a one-line stop that names notebook 01.

Drive is slow with many small files and fast with a few large ones, so the prepared
dataset is kept as one uncompressed tar (photos are JPEG and labels PNG: compressing them
again saves nothing); ``docs/colab.md`` has the measurement.

The environment variable :data:`DRIVE_ROOT_VARIABLE` (``CELEBSEG_DRIVE_ROOT``) stands for
"My Drive": with it set, that folder is used as Drive, also outside Colab (the journey test
shares one between notebooks run in fresh folders). ``SMOKE`` runs keep their toy data in
``celebseg-smoke`` instead of ``celebseg``, on Drive and on the local disk alike, so they
never mix with real data.

>>> import tempfile
>>> drive = tempfile.mkdtemp()
>>> keep_root(environ={DRIVE_ROOT_VARIABLE: drive}) == Path(drive) / "celebseg"
True
>>> keep_root(smoke=True, environ={DRIVE_ROOT_VARIABLE: drive}).name
'celebseg-smoke'
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tarfile
import time
import warnings
from pathlib import Path
from typing import Mapping, Sequence

from celebseg_utils.errors import CelebsegError
from celebseg_utils.models.recipes import RECIPES

#: Where Colab mounts Google Drive.
DRIVE_MOUNT = Path("/content/drive")
#: Environment variable naming a folder that stands for "My Drive" (any runtime).
DRIVE_ROOT_VARIABLE = "CELEBSEG_DRIVE_ROOT"
#: Folder inside "My Drive" (or /kaggle/working) that keeps data and runs; SMOKE's own.
KEEP_FOLDER = "celebseg"
SMOKE_KEEP_FOLDER = "celebseg-smoke"
#: Folder inside "My Drive" that keeps the runs across Colab disconnects.
DRIVE_RUN_FOLDER = f"{KEEP_FOLDER}/runs"
#: Kaggle: the persistent output folder, and where attached datasets appear (read-only).
KAGGLE_WORKING = Path("/kaggle/working")
KAGGLE_INPUT = Path("/kaggle/input")
#: Local folder of SMOKE runs (relative to the notebook's folder; git-ignored).
SMOKE_DIR = Path("celebseg-smoke")
#: Names of the kept files, inside KEEP/data.
PREPARED_ARCHIVE = "prepared.tar"
ARCHIVE_STEM = "CelebAMask-HQ"
#: The notebook that downloads the dataset, named when nothing is kept yet.
DOWNLOAD_NOTEBOOK = "01_download_celebamask_hq.ipynb"
#: Free space asked for before a real download: the archive kept and unpacked, plus the
#: labels. A margin, not a measurement (the official zip is a few GB); SMOKE asks 50 MB.
DOWNLOAD_NEEDS_BYTES = 10_000_000_000
SMOKE_NEEDS_BYTES = 50_000_000
#: How to give the runtime a GPU, said where a training notebook finds none.
GPU_HOWTO = {"colab": "Runtime > Change runtime type > T4 GPU, then Run all again",
             "kaggle": "Settings > Accelerator > GPU T4 x2, then Run all again"}

_told: set[str] = set()  # messages said once per kernel


class NotebookStop(CelebsegError):
    """A stop a student can act on: Jupyter shows its one line, not a traceback.

    IPython calls ``_render_traceback_`` for the lines it displays; the CLI, as for any
    :class:`CelebsegError`, prints ``error: ...`` and exits 2.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


# --------------------------------------------------------------------------- the runtime

def in_colab(modules: Mapping | None = None, environ: Mapping | None = None) -> bool:
    """True inside Google Colab (its kernel imports ``google.colab``; it sets ``COLAB_RELEASE_TAG``).

    >>> in_colab(modules={}, environ={})
    False
    >>> in_colab(modules={}, environ={"COLAB_RELEASE_TAG": "release-colab_20250101"})
    True
    """
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    return "google.colab" in modules or "COLAB_RELEASE_TAG" in environ


def in_kaggle(environ: Mapping | None = None) -> bool:
    """True inside a Kaggle notebook (Kaggle sets ``KAGGLE_KERNEL_RUN_TYPE``).

    >>> in_kaggle(environ={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}), in_kaggle(environ={})
    (True, False)
    """
    environ = os.environ if environ is None else environ
    return bool(environ.get("KAGGLE_KERNEL_RUN_TYPE"))


def in_hosted(modules: Mapping | None = None, environ: Mapping | None = None) -> bool:
    """True in Colab or Kaggle: runtimes that ship TensorFlow but not this package.

    >>> in_hosted(modules={}, environ={})
    False
    """
    return in_colab(modules, environ) or in_kaggle(environ)


def has_gpu() -> bool:
    """True when an NVIDIA GPU is visible, found without importing TensorFlow (seconds).

    >>> has_gpu() in (True, False)
    True
    """
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def gpu_problem(smoke: bool, gpu: bool | None = None, modules: Mapping | None = None,
                environ: Mapping | None = None) -> str | None:
    """What to tell a student whose hosted runtime has no GPU, else None.

    Only Colab and Kaggle are asked (a local machine trains on what it has), and never in
    ``SMOKE``, which runs on a CPU by design.

    >>> gpu_problem(False, gpu=False, modules={}, environ={"COLAB_RELEASE_TAG": "x"})[:40]
    'this Colab runtime has no GPU: Runtime >'
    >>> gpu_problem(True, gpu=False, modules={}, environ={"COLAB_RELEASE_TAG": "x"}) is None
    True
    """
    if smoke or not in_hosted(modules, environ):
        return None
    if has_gpu() if gpu is None else gpu:
        return None
    where = "colab" if in_colab(modules, environ) else "kaggle"
    return (f"this {where.capitalize()} runtime has no GPU: {GPU_HOWTO[where]} (training on "
            f"its CPU would spend the whole time budget on a few steps; SMOKE = True needs no GPU)")


def check_disk(path: Path | str, needed: int, what: str) -> None:
    """Stop before writing ``what`` when the disk of ``path`` has less than ``needed`` bytes free.

    >>> check_disk("/", 1, "a byte")
    """
    path = Path(path)
    probe = next(p for p in (path, *path.parents) if p.exists())
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise NotebookStop(f"{probe} has {free / 1e9:.1f} GB free but {what} needs "
                           f"{needed / 1e9:.1f} GB: free some space (or, on Colab, keep less "
                           f"on Drive) and run this cell again")


# --------------------------------------------------------------------------- Drive and Kaggle

def _say_once(key: str, message: str) -> None:
    if key not in _told:
        _told.add(key)
        print(message)


def drive_root(drive_mount: Path | str = DRIVE_MOUNT, mount: bool = True,
               environ: Mapping | None = None) -> Path | None:
    """"My Drive": ``$CELEBSEG_DRIVE_ROOT`` when set, else Colab's mounted Drive, else None.

    In Colab with ``mount=True`` this asks for permission once per session; refusing it
    is not an error (things then stay on the runtime's disk, with a warning).

    >>> drive_root("/nonexistent-drive", mount=False, environ={}) is None
    True
    """
    environ = os.environ if environ is None else environ
    if environ.get(DRIVE_ROOT_VARIABLE):
        root = Path(environ[DRIVE_ROOT_VARIABLE]).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        return root
    my_drive = Path(drive_mount) / "MyDrive"
    if not my_drive.is_dir() and mount and in_colab(environ=environ):
        try:
            from google.colab import drive  # type: ignore[import-not-found]

            drive.mount(str(drive_mount))
        except Exception as exc:  # the user may decline; the notebook still works locally
            warnings.warn(f"Google Drive not mounted ({exc}); data and runs stay on this "
                          "runtime's disk and are lost when it disconnects", stacklevel=2)
    return my_drive if my_drive.is_dir() else None


def keep_root(smoke: bool = False, drive_mount: Path | str = DRIVE_MOUNT, mount: bool = True,
              environ: Mapping | None = None) -> Path | None:
    """The folder that keeps data and runs across runtimes, or None where nothing is kept.

    ``My Drive/celebseg`` (``celebseg-smoke`` for SMOKE) when Drive is there, else
    ``/kaggle/working/celebseg`` on Kaggle, else None: a local machine's disk outlives its
    kernel, so its ``data/`` and ``runs/`` are kept as they are. Where nothing is kept,
    says so once, with where things go instead.

    >>> keep_root(drive_mount="/nonexistent", mount=False, environ={}) is None  # doctest: +ELLIPSIS
    Not on Colab ...
    True
    """
    environ = os.environ if environ is None else environ
    folder = SMOKE_KEEP_FOLDER if smoke else KEEP_FOLDER
    drive = drive_root(drive_mount, mount=mount, environ=environ)
    if drive is not None:
        return drive / folder
    if in_kaggle(environ):
        return KAGGLE_WORKING / folder
    local = f"{SMOKE_DIR}/" if smoke else "data/ and runs/"
    if in_colab(environ=environ):
        _say_once("no-drive", f"Google Drive is not mounted: data and runs stay in {local} on "
                  f"this runtime's disk, and a fresh runtime starts without them")
    else:
        _say_once("no-drive", f"Not on Colab and {DRIVE_ROOT_VARIABLE} is not set: data and "
                  f"runs stay in {local} beside this notebook")
    return None


def drive_run_root(drive_mount: Path | str = DRIVE_MOUNT, mount: bool = True,
                   folder: str = DRIVE_RUN_FOLDER) -> Path | None:
    """``My Drive/<folder>`` when Google Drive is (or, in Colab, can be) mounted, else None.

    >>> drive_run_root("/nonexistent-drive", mount=False) is None or DRIVE_ROOT_VARIABLE in os.environ
    True
    """
    root = drive_root(drive_mount, mount=mount)
    return root / folder if root is not None else None


def mount_drive_run_dir(name: str, root: Path | str | None = None, mount: bool = True,
                        drive_mount: Path | str = DRIVE_MOUNT, local_root: Path | str = "runs") -> Path:
    """The folder a training notebook writes run ``name`` to (created if missing).

    ``root`` wins when given. Otherwise the run goes to Google Drive when it is mounted
    (so a Colab disconnect loses the minutes since the last backup: the run backs itself up
    every ``backup_every_minutes``, 5 by default, and at every epoch's end, and resumes from
    there, mid-epoch included), else to ``local_root`` (``runs/`` beside the notebook).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> mount_drive_run_dir("sparse_ce", root=d).name
    'sparse_ce'
    """
    if root is not None:
        base = Path(root)
    else:
        base = drive_run_root(drive_mount, mount=mount) or Path(local_root)
    run_dir = base / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_root(smoke: bool = False, environ: Mapping | None = None) -> Path | None:
    """Where the training notebooks put their runs: ``KEEP/runs`` when something is kept,
    else None for real runs (:func:`mount_drive_run_dir` then uses ``runs/``) and
    ``celebseg-smoke/runs`` for SMOKE ones, never mixed with real runs.

    >>> run_root(smoke=True, environ={DRIVE_ROOT_VARIABLE: "/tmp/d"})
    PosixPath('/tmp/d/celebseg-smoke/runs')
    """
    keep = keep_root(smoke, environ=environ)
    if keep is not None:
        return keep / "runs"
    return SMOKE_DIR / "runs" if smoke else None


def find_kaggle_dataset(kaggle_input: Path | str = KAGGLE_INPUT) -> Path | None:
    """A CelebAMask-HQ folder in a dataset attached to a Kaggle notebook, else None.

    Kaggle mounts attached datasets read-only under ``/kaggle/input/<slug>/`` (newer
    notebooks: ``/kaggle/input/datasets/<owner>/<slug>/``); the dataset root is the folder
    that holds ``CelebA-HQ-img/``.

    >>> find_kaggle_dataset("/nonexistent") is None
    True
    """
    from celebseg_utils.data.download import find_dataset_root

    kaggle_input = Path(kaggle_input)
    if not kaggle_input.is_dir():
        return None
    return find_dataset_root(kaggle_input, max_depth=5)


def kept_archive(keep: Path | None) -> Path | None:
    """The downloaded archive kept in ``KEEP/data`` (zip or tar), if one is there."""
    if keep is None:
        return None
    found = sorted((keep / "data").glob(f"{ARCHIVE_STEM}.*"))
    found = [p for p in found if p.suffix in (".zip", ".tar") and p.is_file()]
    return found[0] if found else None


# --------------------------------------------------------------------------- notebook 01

def fetch_dataset(source: str, data_dir: Path | str = "data/CelebAMask-HQ", archive=None,
                  smoke: bool = False, keep: Path | None | str = "auto", progress: bool = True,
                  **source_options) -> Path:
    """Notebook 01: get CelebAMask-HQ onto this runtime's disk, keeping the archive once.

    Where something is kept (Drive, Kaggle), the archive goes there first (a download
    interrupted half-way resumes), and is then unpacked from there to ``data_dir``; a
    fresh runtime finds it and never downloads again. Elsewhere the download goes straight
    to ``data_dir``, as ``celebseg download`` does. Returns the verified dataset root.

    >>> fetch_dataset("archive", "data/CelebAMask-HQ", archive="CelebAMask-HQ.zip")  # doctest: +SKIP
    PosixPath('/content/data/CelebAMask-HQ/CelebAMask-HQ')
    """
    from celebseg_utils.data import download as D

    keep = keep_root(smoke) if keep == "auto" else keep
    data_dir = Path(data_dir)
    kept = kept_archive(keep)
    needed = SMOKE_NEEDS_BYTES if smoke else DOWNLOAD_NEEDS_BYTES
    if kept is None and D.find_verified(data_dir) is None:
        check_disk(data_dir, needed, "the dataset")
    if keep is None:
        return D.download_dataset(source, data_dir, archive=archive, progress=progress,
                                  **source_options)
    if kept is None:
        check_disk(keep, needed // 2, "keeping the archive")
        kept = _keep_archive(source, keep / "data", data_dir, archive, progress, source_options)
    else:
        print(f"the archive is kept in {kept}: not downloading it again")
    return D.download_dataset("archive", data_dir, archive=kept, progress=progress)


def smoke_archive(folder: Path | str = SMOKE_DIR / "source", count: int = 48, image_size: int = 64,
                  seed: int = 0) -> Path:
    """SMOKE's stand-in for the download: ``folder/CelebAMask-HQ.zip`` of synthetic faces.

    Laid out as the official zip (``CelebAMask-HQ/`` at the top), so notebook 01 in SMOKE
    mode takes the path of a real archive: kept, unpacked, verified. Made once.

    >>> import tempfile
    >>> smoke_archive(tempfile.mkdtemp(), count=4, image_size=32).name
    'CelebAMask-HQ.zip'
    """
    import zipfile

    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    folder = Path(folder)
    dest = folder / f"{ARCHIVE_STEM}.zip"
    if dest.is_file():
        return dest
    raw = folder / ".synthetic" / ARCHIVE_STEM
    shutil.rmtree(raw.parent, ignore_errors=True)
    write_synthetic_dataset(raw, count, image_size=image_size, seed=seed, progress=False)
    part = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as zf:  # JPEG and PNG: no gain
        for path in sorted(raw.rglob("*")):
            if path.is_file():
                zf.write(path, f"{ARCHIVE_STEM}/{path.relative_to(raw).as_posix()}")
    os.replace(part, dest)
    shutil.rmtree(raw.parent, ignore_errors=True)
    return dest


def _keep_archive(source, keep_data: Path, data_dir: Path, archive, progress, options) -> Path:
    from celebseg_utils.data import archive as A
    from celebseg_utils.data import download as D

    keep_data.mkdir(parents=True, exist_ok=True)
    if source == "drive":
        return D.fetch_drive(options.get("drive_id", D.DEFAULT_DRIVE_ID),
                             keep_data / f"{ARCHIVE_STEM}.zip", progress=progress)
    if source == "archive" and archive is not None and A.archive_kind(Path(archive)) != "dir":
        suffix = ".zip" if A.archive_kind(Path(archive)) == "zip" else ".tar"
        return D.copy_resumable(archive, keep_data / f"{ARCHIVE_STEM}{suffix}", progress=progress)
    # Kaggle hands back an unpacked folder (so does an archive given as a folder): unpack or
    # copy it to this disk as usual, then keep it as one tar, which Drive reads fast.
    root = D.download_dataset(source, data_dir, archive=archive, progress=progress, **options)
    return pack_folder(root, keep_data / f"{ARCHIVE_STEM}.tar", ARCHIVE_STEM, progress=progress)


# --------------------------------------------------------------------------- the kept dataset

def prepared_files(prepared: Path | str) -> list[tuple[Path, str]]:
    """``(file, name in the tar)`` of a prepared folder, photos included (as
    ``CelebA-HQ-img/<k>.jpg``, wherever ``prepare.json`` finds them); hidden work folders
    and TFRecord shards left out (shards are rebuilt where wanted).

    >>> prepared_files("data/prepared")[:1]  # doctest: +SKIP
    [(PosixPath('data/prepared/label_sources.tsv'), 'label_sources.tsv')]
    """
    from celebseg_utils.data import layout

    prepared = Path(prepared)
    info = layout.read_prepare_info(prepared)
    files = []
    for path in sorted(prepared.rglob("*")):
        rel = path.relative_to(prepared)
        if rel.parts[0].startswith(".") or rel.parts[0] in (layout.IMAGE_DIR, "tfrecords"):
            continue  # work folders; photos come below; shards are left out
        if path.is_file():
            files.append((path, rel.as_posix()))
    for split in layout.SPLITS:
        if layout.split_path(prepared, split).exists():
            for k in layout.read_split(prepared, split):
                files.append((layout.photo_path(prepared, k, info), f"{layout.IMAGE_DIR}/{k}.jpg"))
    return files


def pack_folder(folder: Path | str, dest: Path | str, top: str, files=None,
                progress: bool = True) -> Path:
    """Write ``folder`` (or the given ``(file, name)`` pairs) to the tar ``dest`` under ``top/``.

    Links are followed (a fused prepared folder links its photos). The tar is written as
    ``dest.part`` and renamed when complete, so a kept file is never half a file.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); (d / "a").mkdir(); _ = (d / "a" / "x.txt").write_text("hi")
    >>> pack_folder(d / "a", d / "a.tar", "top", progress=False).name
    'a.tar'
    """
    from tqdm.auto import tqdm

    folder, dest = Path(folder), Path(dest)
    if files is None:
        files = [(p, p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*"))
                 if p.is_file() and not p.relative_to(folder).parts[0].startswith(".")]
    total = sum(p.stat().st_size for p, _ in files)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar, \
            tqdm(total=total, unit="B", unit_scale=True, desc=f"keep {dest.name}",
                 disable=not progress) as bar:
        for path, name in files:
            info = tar.gettarinfo(str(path.resolve()), arcname=f"{top}/{name}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
            bar.update(info.size)
    os.replace(part, dest)
    return dest


def keep_prepared(prepared: Path | str, keep: Path, progress: bool = True) -> Path:
    """Keep the prepared folder ``prepared``, photos included, as ``KEEP/data/prepared.tar``."""
    prepared = Path(prepared)
    files = prepared_files(prepared)
    check_disk(keep, sum(p.stat().st_size for p, _ in files), "keeping the prepared dataset")
    return pack_folder(prepared, keep / "data" / PREPARED_ARCHIVE, "prepared", files=files,
                       progress=progress)


def restore_prepared(kept: Path | str, prepared: Path | str, progress: bool = True) -> float:
    """Unpack the kept ``prepared.tar`` into ``prepared``; return the seconds it took.

    The tar holds the photos too, so the restored folder is its own data root: its
    ``prepare.json`` is pointed at itself. Unpacking goes to a hidden folder beside
    ``prepared`` and is renamed at the end, so an interrupted restore leaves nothing half
    done (the next call starts it again). The bar shows the speed and the time left.
    """
    from celebseg_utils.data import layout
    from celebseg_utils.fileio import atomic_write_json

    kept, prepared = Path(kept), Path(prepared)
    start = time.perf_counter()
    staging = prepared.parent / f".{prepared.name}.restore"
    shutil.rmtree(staging, ignore_errors=True)
    size = kept.stat().st_size
    check_disk(prepared.parent, size, "restoring the prepared dataset")
    print(f"restoring the prepared dataset from {kept} ({size / 1e6:,.0f} MB)")
    try:
        _unpack_kept(kept, staging, progress)
    except (tarfile.TarError, EOFError) as exc:  # truncated on Drive, or not a tar at all
        shutil.rmtree(staging, ignore_errors=True)
        raise NotebookStop(f"{kept} is damaged ({_first_line(exc)}): delete it and run "
                           f"notebook 02 again to keep a new one") from None
    except BaseException:  # a refused member, a full disk, Ctrl-C: nothing half-restored stays
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not (staging / "prepared").is_dir():
        shutil.rmtree(staging, ignore_errors=True)
        raise NotebookStop(f"{kept} holds no prepared/ folder: delete it and run notebook 02 "
                           f"again to keep a new one")
    if prepared.exists():
        prepared.rmdir()  # empty (checked by the caller)
    prepared.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging / "prepared", prepared)
    shutil.rmtree(staging, ignore_errors=True)
    info = layout.read_prepare_info(prepared)
    atomic_write_json(layout.info_path(prepared), {**info, "data_root": str(prepared.resolve())})
    return time.perf_counter() - start


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _unpack_kept(kept: Path, staging: Path, progress: bool) -> None:
    """Unpack a kept tar into ``staging`` in one sequential read (what Drive does fastest).

    Each member is checked before it is written: a plain file or folder under
    ``prepared/``, no ``..``, no absolute path, no link, no control character; anything
    else stops the restore with nothing kept. One pass, rather than a listing first, as
    :func:`celebseg_utils.data.archive.safe_extract` does for archives from elsewhere:
    every name is still checked, and the staging folder is dropped on any refusal.
    """
    from tqdm.auto import tqdm

    from celebseg_utils.data import archive as A

    made: set[Path] = set()
    with tarfile.open(kept, "r|") as tar, \
            tqdm(total=kept.stat().st_size, unit="B", unit_scale=True, desc=f"restore {kept.name}",
                 disable=not progress) as bar:
        for member in tar:
            parts = A.entry_parts(member.name)
            if (parts is None or not parts or parts[0] != "prepared"
                    or not (member.isfile() or member.isdir())
                    or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in member.name)):
                raise NotebookStop(f"{kept} holds {member.name!r}, which no kept dataset holds: "
                                   f"delete it and run notebook 02 again to keep a new one")
            dest = staging.joinpath(*parts)
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                made.add(dest)
                continue
            if dest.parent not in made:
                dest.parent.mkdir(parents=True, exist_ok=True)
                made.add(dest.parent)
            with tar.extractfile(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            bar.update(tar.offset - bar.n)


def is_ready(prepared: Path | str) -> bool:
    """True when ``prepared`` is a complete prepared folder whose photos are on this disk.

    >>> is_ready("/nonexistent")
    False
    """
    from celebseg_utils.data import layout

    prepared = Path(prepared)
    try:
        info = layout.read_prepare_info(prepared)
        ids = [k for s in layout.SPLITS for k in layout.read_split(prepared, s)[:1]]
    except CelebsegError:
        return False
    return bool(ids) and all(layout.label_path(prepared, k).exists()
                             and layout.photo_path(prepared, k, info).exists() for k in ids)


@dataclasses.dataclass
class DataReady:
    """What :func:`ensure_data` did: ``how`` is ``"local"`` (nothing to do), ``"restored"``
    (from the kept tar) or ``"prepared"`` (from the raw dataset; ``summary`` is
    ``prepare_dataset``'s). ``keep``: where things are kept (None: nowhere)."""

    prepared: Path
    how: str
    source: Path | None = None
    seconds: float = 0.0
    summary: dict | None = None
    keep: Path | None = None

    def __str__(self) -> str:
        from celebseg_utils.data import layout

        n = layout.read_prepare_info(self.prepared).get("num_images", 0)
        where = {"local": "already on this runtime's disk",
                 "restored": f"restored from {self.source} in {self.seconds:.1f} s",
                 "prepared": f"prepared from {self.source} in {self.seconds:.1f} s"}[self.how]
        kept = (f"; kept in {self.keep}" if self.keep is not None and self.how == "prepared"
                else "")
        return f"data ready: {n:,} faces in {self.prepared}, {where}{kept}"

    def _repr_markdown_(self) -> str:
        return str(self)


def missing_data_message(smoke: bool, keep: Path | None) -> str:
    """The one line said when nothing is kept anywhere: which notebook to run first.

    >>> missing_data_message(False, Path("/d/celebseg"))[:60]
    'no CelebAMask-HQ data on this runtime nor kept in /d/celebse'
    """
    where = f"nor kept in {keep}" if keep is not None else "(Drive not mounted, nothing kept)"
    took = ("a few seconds in SMOKE mode" if smoke else
            "one download of the archive, then unpacking: minutes, once")
    return (f"no CelebAMask-HQ data on this runtime {where}: run notebook {DOWNLOAD_NOTEBOOK} "
            f"first ({took}), then run this notebook again")


def ensure_data(prepared: Path | str = "data/prepared", data_dir: Path | str = "data/CelebAMask-HQ",
                smoke: bool = False, gpu: bool = False, workers=None, tfrecords: bool = False,
                keep: Path | None | str = "auto", kaggle_input: Path | str = KAGGLE_INPUT,
                progress: bool = True) -> DataReady:
    """Make the prepared dataset ready on this runtime's disk, whatever the runtime holds.

    Idempotent; in this order:

    1. ``prepared`` is complete on this disk: nothing to do;
    2. ``KEEP/data/prepared.tar`` is kept (Drive, Kaggle): restored into ``prepared``;
    3. the raw dataset is on this disk (``data_dir``), attached to a Kaggle notebook, or
       its archive is kept: prepared into ``prepared``, then kept as ``prepared.tar``;
    4. nothing: a one-line :class:`NotebookStop` naming notebook 01.

    ``gpu=True`` (the training notebooks) first stops on a Colab or Kaggle runtime without
    a GPU, outside ``smoke``. ``keep="auto"``: :func:`keep_root`.

    >>> ready = ensure_data("data/prepared")  # doctest: +SKIP
    >>> ready.how  # doctest: +SKIP
    'restored'
    """
    from celebseg_utils.data import download as D

    if gpu and (problem := gpu_problem(smoke)):
        raise NotebookStop(problem)
    prepared, data_dir = Path(prepared), Path(data_dir)
    keep = keep_root(smoke) if keep == "auto" else keep
    if is_ready(prepared):
        return DataReady(prepared, "local", keep=keep)
    start = time.perf_counter()
    empty = not prepared.exists() or (prepared.is_dir() and not any(prepared.iterdir()))
    kept = keep / "data" / PREPARED_ARCHIVE if keep is not None else None
    if kept is not None and kept.is_file() and empty:
        seconds = restore_prepared(kept, prepared, progress=progress)
        return DataReady(prepared, "restored", kept, seconds, keep=keep)
    raw = D.find_verified(data_dir)
    if raw is None and (raw := find_kaggle_dataset(kaggle_input)) is not None:
        print(f"found an attached Kaggle dataset at {raw}; checking its layout")
        D.verify_layout(raw)  # a wrong or partial dataset is named before minutes of preparing
    source = raw
    if raw is None and (archive := kept_archive(keep)) is not None:
        raw, source = D.download_dataset("archive", data_dir, archive=archive, progress=progress), archive
    if raw is None:
        raise NotebookStop(missing_data_message(smoke, keep))
    from celebseg_utils.data.prepare import prepare_dataset

    summary = prepare_dataset(raw, prepared, workers=workers, tfrecords=tfrecords, progress=progress)
    if keep is not None:
        keep_prepared(prepared, keep, progress=progress)
    return DataReady(prepared, "prepared", source, time.perf_counter() - start, summary, keep)


# --------------------------------------------------------------------------- training runs

#: The preset and overrides that make SMOKE training runs tiny enough for a CPU in seconds.
SMOKE_PRESET = "cpu-demo"
SMOKE_OVERRIDES = ("image_size=64", "batch_size=4", "epochs=1", "steps_per_epoch=2",
                   "tensorboard=false")
#: Run name -> the ``--set`` overrides that choose its loss (the runs of notebooks 04-06:
#: every recipe of ``models/recipes.py``; notebook 05 trains the one its ``LOSS`` names).
RUN_LOSSES = {name: tuple(recipe.overrides()) for name, recipe in RECIPES.items()}
_NOTEBOOK_OF_RUN = {"sparse_ce": "04", "pixel_weighted_ce": "05", "weighted_ce": "05",
                    "ce_onehot": "05", "dice": "06", "jaccard": "06"}
RESULTS_FILE = "results.json"


def split_size(prepared, split: str = "test") -> int:
    """Images in one split of a prepared folder (0 when the split file is missing): what a
    training run counts for the test evaluation that follows it.

    >>> split_size("/nonexistent", "test")
    0
    """
    from celebseg_utils.data import layout

    if not layout.split_path(prepared, split).is_file():
        return 0
    return len(layout.read_split(prepared, split))


def ensure_runs(names: Sequence[str], prepared, root: Path | str | None = None,
                smoke: bool = False, progress: bool = True) -> list[Path]:
    """The run folders ``names`` under the run root, each holding a test ``results.json``.

    A run trained but not yet evaluated is evaluated on the test split. A run missing
    altogether is an error that names the notebook that trains it, except with
    ``smoke=True``, where a tiny one (``SMOKE_PRESET`` + ``SMOKE_OVERRIDES``) is trained
    here, so that notebook 07 also runs on its own.

    >>> ensure_runs(["sparse_ce"], "prepared", root="/tmp/none")  # doctest: +SKIP
    Traceback (most recent call last):
    NotebookStop: run /tmp/none/sparse_ce has no trained model: run notebook 04 ...
    """
    runs = []
    for name in names:
        run = mount_drive_run_dir(name, root=root)
        if not (run / RESULTS_FILE).exists():
            model = run / "best.keras"
            if not (run / "summary.json").exists():
                if not smoke:
                    which = _NOTEBOOK_OF_RUN.get(name, "04-06")
                    raise NotebookStop(
                        f"run {run} has no trained model: run notebook {which} first (with the "
                        f"same RUN_ROOT), or remove {name!r} from RUNS")
                model = _train_smoke_run(name, prepared, run, progress)
            from celebseg_utils.engine.evaluate import evaluate_model

            evaluate_model(model, prepared, split="test", out=run / RESULTS_FILE, progress=progress)
        runs.append(run)
    return runs


def run_test_scores(run: Path | str, model, prepared, progress: bool = True) -> dict:
    """The test scores of a finished run: read from ``run/results.json`` when it is newer
    than ``model``, else evaluated now (and written there).

    A reopened training notebook (after a disconnect, on a fresh runtime) thus shows the
    scores of its finished run without evaluating the test split again.

    >>> run_test_scores("runs/sparse_ce", "runs/sparse_ce/best.keras", "data/prepared")["miou"]  # doctest: +SKIP
    0.61
    """
    import json

    from celebseg_utils.engine.evaluate import evaluate_model

    out = Path(run) / RESULTS_FILE
    if out.is_file() and out.stat().st_mtime >= Path(model).stat().st_mtime:
        print(f"test scores of this finished run, from {out}")
        return json.loads(out.read_text())
    return evaluate_model(model, prepared, split="test", out=out, progress=progress)


def _train_smoke_run(name: str, prepared, run: Path, progress: bool) -> Path:
    from celebseg_utils.engine.config import resolve_config
    from celebseg_utils.engine.train import train

    losses = RUN_LOSSES.get(name, (f"loss.name={name}",))
    cfg = resolve_config(preset=SMOKE_PRESET, run_dir=str(run),
                         overrides=[f"data.prepared={prepared}", *losses, *SMOKE_OVERRIDES])
    return Path(train(cfg, progress=progress)["best_model"])

