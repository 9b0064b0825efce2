"""Fetch CelebAMask-HQ (Kaggle, Google Drive or a local archive), unpack it safely, verify it.

All three sources end on the same path: the fetched zip/tar/folder is unpacked by
:func:`celebseg_utils.data.archive.safe_extract` (no absolute paths, no ``..``, no links), the
dataset root is located inside ``out`` (the official zip has ``CelebAMask-HQ/`` at the top),
and the layout is verified: the image folder, the mapping file, one image per mapping row
and the mask folders ``k // 2000`` of every image. A verified folder gets a small
``.celebseg_verified.json`` marker, so a second run checks it cheaply and does nothing.

Sources and their defaults (both overridable; neither could be checked online when this
was written, so if one disappears pass another with ``--kaggle-dataset``/``--drive-id``):

* ``kaggle``: :data:`DEFAULT_KAGGLE_DATASET`, a *community mirror* of the official archive on
  Kaggle (not published by the dataset's authors), fetched with ``kagglehub``. Credentials:
  ``KAGGLE_USERNAME``/``KAGGLE_KEY`` (or ``KAGGLE_API_TOKEN``), ``~/.kaggle/kaggle.json``, or
  Colab secrets of the same names. Inside a Kaggle notebook none are needed.
* ``drive``: :data:`DEFAULT_DRIVE_ID`, the Google Drive file linked from the authors' README
  (github.com/switchablenorms/CelebAMask-HQ), fetched with ``gdown``. Drive often refuses
  large files for a day ("quota exceeded"); use Kaggle or download by hand then.
* ``archive``: a zip/tar (or an unpacked folder) you already have.

Credentials are never printed, logged or written by this module.

>>> from celebseg_utils.data.download import download_dataset
>>> root = download_dataset("archive", "/data/celebamask", archive="CelebAMask-HQ.zip")  # doctest: +SKIP
>>> root.name  # doctest: +SKIP
'CelebAMask-HQ'
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import sys
from pathlib import Path

from celebseg_utils.data import archive as A
from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_write_json

#: Kaggle community mirror of the official CelebAMask-HQ.zip (owner/dataset); overridable.
DEFAULT_KAGGLE_DATASET = "ipythonx/celebamaskhq"
#: Google Drive file id of the official CelebAMask-HQ.zip, as linked by the authors; overridable.
DEFAULT_DRIVE_ID = "1badu11NqxGf6qM3PTTooQDJvQbejgbTv"
MARKER_NAME = ".celebseg_verified.json"
DOWNLOAD_DIR = ".celebseg_download"
SOURCES = ("kaggle", "drive", "archive")
_MAPPING_HEADER = ["idx", "orig_idx", "orig_file"]


def download_dataset(source: str, out, archive=None, kaggle_slug: str = DEFAULT_KAGGLE_DATASET,
                     drive_id: str = DEFAULT_DRIVE_ID, progress: bool = True) -> Path:
    """Fetch, unpack and verify CelebAMask-HQ under ``out``; return the dataset root.

    Does nothing (and says so) when ``out`` already holds a verified copy; verifies and
    marks a copy that is there but unmarked (e.g. unzipped by hand) without fetching.

    >>> download_dataset("archive", "/data/cm", archive="CelebAMask-HQ.zip")  # doctest: +SKIP
    PosixPath('/data/cm/CelebAMask-HQ')
    """
    if source not in SOURCES:
        raise CelebsegError(f"unknown --source {source!r}: use one of {', '.join(SOURCES)}")
    if source == "archive" and archive is None:
        raise CelebsegError("--source archive needs --archive FILE (the CelebAMask-HQ .zip "
                            "you downloaded, or its unpacked folder)")
    # An empty path means the current folder to pathlib; here it is an unset variable.
    for option, value in (("--archive", archive), ("--out", out)):
        if value is not None and not str(value).strip():
            raise CelebsegError(f"{option} is empty (an unset shell variable?): pass a path")
    out = Path(out).expanduser().absolute()
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker == out:
        raise CelebsegError(f"--out {out} is a file: pass a folder")
    if blocker is not None:
        raise CelebsegError(f"--out {out} is inside {blocker}, which is a file: pass a folder")
    root = _check_marker(out)
    if root is not None:
        _say(f"{root} is already downloaded and verified; nothing to do")
        return root
    root = find_dataset_root(out) if out.is_dir() else None
    if root is None:
        _fetch_and_unpack(source, out, archive, kaggle_slug, drive_id, progress)
        root = find_dataset_root(out)
        if root is None:
            raise CelebsegError(f"no {layout.IMAGE_DIR}/ folder found in {out} after unpacking: "
                                f"the download is not CelebAMask-HQ; check the source")
    else:
        _say(f"found an unpacked copy at {root}; verifying it instead of downloading")
    counts = verify_layout(root)
    _write_marker(out, root, counts)
    _say(f"verified {root}: {counts['images']} images, {counts['mask_files']} mask files, "
         f"{len(counts['mask_folders'])} mask folders")
    return root


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _fetch_and_unpack(source, out, archive, kaggle_slug, drive_id, progress) -> None:
    if source == "archive":
        src = Path(archive).expanduser().absolute()
        kind = A.archive_kind(src)
        if kind == "dir" and (src == out or out in src.parents):
            return  # already in place; find_dataset_root found nothing, reported by the caller
        if kind == "dir" and src in out.parents:
            raise CelebsegError(f"--out {out} is inside --archive {src}: choose an --out "
                                f"outside the folder being copied")
        _unpack(src, out, progress)
        return
    staging = out / DOWNLOAD_DIR
    if source == "kaggle":
        # kagglehub cannot resume: what an interrupted download left there is incomplete.
        shutil.rmtree(staging / "kaggle", ignore_errors=True)
        fetched = _fetch_kaggle(kaggle_slug, staging / "kaggle", progress)
    else:
        # gdown's partial file (CelebAMask-HQ.zip<8 chars>.part) stays in the staging folder
        # when a download is interrupted, and the next call resumes it.
        fetched = fetch_drive(drive_id, staging / "CelebAMask-HQ.zip", progress)
    try:
        # A Kaggle/Colab notebook may hand back its read-only mount instead: copy from it.
        _unpack(fetched, out, progress, owned=staging in fetched.parents, contents=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(src: Path, out: Path, progress: bool, owned: bool = False,
            contents: bool = False) -> None:
    """Unpack ``src`` into ``out``; a folder that only wraps one archive is unwrapped.

    ``owned``: ``src`` is our own download folder (its files may be moved, not copied);
    ``contents``: a folder's contents go into ``out`` rather than the folder itself.
    """
    entries = A.list_entries(src)
    # Our bookkeeping never comes from an archive: a marker packed with a copy of a folder
    # would vouch for whatever was unpacked beside it, unverified.
    entries = [e for e in entries
               if (A.entry_parts(e.name) or ("",))[0] not in (MARKER_NAME, DOWNLOAD_DIR)]
    if owned or contents:
        # kagglehub keeps its completion markers in a hidden ".complete/" folder
        entries = [e for e in entries if not (A.entry_parts(e.name) or ("",))[0].startswith(".")]
    A.check_entries(entries, src)
    if not _mentions_image_dir(entries):
        inner = [e for e in entries if e.kind == "file"
                 and e.name.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz"))]
        if A.archive_kind(src) == "dir" and len(inner) == 1:
            _unpack(src / inner[0].name, out, progress)
            return
        tops = sorted({A.entry_parts(e.name)[0] for e in entries if A.entry_parts(e.name)})
        raise CelebsegError(f"{src} is not CelebAMask-HQ: it has no {layout.IMAGE_DIR}/ folder "
                            f"(top level: {', '.join(tops[:5]) or 'empty'}); pass the official "
                            f"CelebAMask-HQ archive")
    A.safe_extract(src, out, progress=progress, move=owned and A.archive_kind(src) == "dir",
                   contents=contents, entries=entries)


def _mentions_image_dir(entries) -> bool:
    return any(layout.IMAGE_DIR in (A.entry_parts(e.name) or ()) for e in entries)


# -- sources ---------------------------------------------------------------------------

def kaggle_credentials_source() -> str | None:
    """Where Kaggle credentials were found (a description, never the values), else ``None``.

    Looks where ``kagglehub`` looks: ``KAGGLE_API_TOKEN``, ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``,
    ``$KAGGLE_CONFIG_DIR`` or ``~/.kaggle`` (``kaggle.json``, ``access_token``), Colab secrets,
    and a Kaggle notebook's own session.

    >>> kaggle_credentials_source() in (None, "environment", "Kaggle notebook")  # doctest: +SKIP
    True
    """
    env = os.environ
    if env.get("KAGGLE_KERNEL_RUN_TYPE"):
        return "Kaggle notebook"
    if env.get("KAGGLE_API_TOKEN") or (env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY")):
        return "environment"
    folder = Path(env.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    for name in ("kaggle.json", "access_token", "access_token.txt"):
        if (folder / name).is_file():
            return str(folder / name)
    if _colab_credentials() is not None:
        return "Colab secrets"
    return None


def _colab_credentials() -> dict | None:
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        return None

    def secret(name):
        try:
            return (userdata.get(name) or "").strip()
        except Exception:  # secret missing or notebook access not granted
            return ""

    if token := secret("KAGGLE_API_TOKEN"):
        return {"api_token": token}
    user, key = secret("KAGGLE_USERNAME"), secret("KAGGLE_KEY")
    return {"username": user, "key": key} if user and key else None


def _fetch_kaggle(slug: str, dest: Path, progress: bool) -> Path:
    where = kaggle_credentials_source()
    if where is None:
        raise CelebsegError(
            "no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json "
            "(kaggle.com > Settings > API > Create New Token) in ~/.kaggle/, or add both as "
            "Colab secrets; or use --source drive|archive")
    import kagglehub

    if where == "Colab secrets":
        # kagglehub only reads Colab secrets when it detects Colab itself; hand them over
        # in memory (never to the environment or a file).
        from kagglehub import config

        creds = _colab_credentials() or {}
        if "api_token" in creds:
            config.set_kaggle_api_token(creds["api_token"])
        elif creds:
            config.set_kaggle_credentials(creds["username"], creds["key"])
    _say(f"downloading Kaggle dataset {slug} (credentials: {where}) ...")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        # output_dir (recent kagglehub) unpacks straight into --out rather than ~/.cache
        params = inspect.signature(kagglehub.dataset_download).parameters
        kwargs = {"output_dir": str(dest)} if "output_dir" in params else {}
        got = kagglehub.dataset_download(slug, **kwargs)
    except Exception as exc:  # network, 403/404, quota: the user's environment, not a bug
        raise CelebsegError(f"Kaggle download of {slug!r} failed ({type(exc).__name__}: "
                            f"{_one_line(exc)}); check --kaggle-dataset and your credentials, "
                            f"or use --source drive|archive") from None
    return Path(got)


def fetch_drive(file_id: str | None, dest: Path, progress: bool = True, url: str | None = None) -> Path:
    """Download a Google Drive file (or ``url``) to ``dest`` with ``gdown``, resuming.

    An interrupted download leaves gdown's partial file beside ``dest``
    (``<dest name><8 characters>.part``); the next call asks the server only for the bytes
    still missing (an HTTP range request) and appends them. ``url`` replaces the Drive
    address (any server that honours ranges; the tests use one of their own).

    >>> fetch_drive(DEFAULT_DRIVE_ID, Path("/content/celebseg/data/CelebAMask-HQ.zip"))  # doctest: +SKIP
    PosixPath('/content/celebseg/data/CelebAMask-HQ.zip')
    """
    import gdown

    dest = Path(dest)
    if dest.is_file():
        return dest  # gdown renames the partial file only once it is complete
    _say(f"downloading {'Google Drive file ' + file_id if url is None else url} ...")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        got = gdown.download(url=url, id=None if url else file_id, output=str(dest),
                             quiet=not progress, resume=True)
    except Exception as exc:  # network, quota exceeded, removed file
        got, reason = None, f"{type(exc).__name__}: {_one_line(exc)}"
    else:
        reason = "no file came back"
    if not got or not Path(got).exists():
        raise CelebsegError(f"Google Drive download of {file_id or url!r} failed ({reason}); what "
                            f"arrived is kept and the next try resumes it. Drive limits large "
                            f"downloads, so try later, use --source kaggle, or download the "
                            f"zip by hand and use --source archive --archive FILE")
    return Path(got)


def copy_resumable(src, dest, progress: bool = True, chunk: int = 8 << 20) -> Path:
    """Copy the file ``src`` to ``dest`` through ``dest.part``, resuming a copy cut short.

    A partial ``dest.part`` whose bytes are the start of ``src`` is continued from where it
    stopped (its last chunk is compared first); anything else is started again. The copy
    is renamed to ``dest`` only once complete. A ``dest`` already as large as ``src`` is
    taken as done. This is how notebook 01 keeps a local archive on Google Drive, where a
    copy of a few GB can be cut by a disconnect.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.zip").write_bytes(b"x" * 10)
    >>> copy_resumable(d / "a.zip", d / "kept" / "a.zip", progress=False).stat().st_size
    10
    """
    from tqdm.auto import tqdm

    src, dest = Path(src), Path(dest)
    size = src.stat().st_size
    if dest.is_file() and dest.stat().st_size == size:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.is_file() else 0
    if done > size or (done and not _same_tail(src, part, done)):
        done = 0
    with open(src, "rb") as fin, open(part, "r+b" if done else "wb") as fout, \
            tqdm(total=size, initial=done, unit="B", unit_scale=True, desc=f"copy {src.name}",
                 disable=not progress) as bar:
        fin.seek(done)
        fout.seek(done)
        fout.truncate()
        while block := fin.read(chunk):
            fout.write(block)
            bar.update(len(block))
    if done:
        _say(f"resumed the copy of {src.name} at {done:,} of {size:,} bytes")
    os.replace(part, dest)
    return dest


def _same_tail(src: Path, part: Path, done: int, probe: int = 1 << 20) -> bool:
    """True when the last bytes of ``part`` are those of ``src`` at the same place."""
    start = max(0, done - probe)
    with open(src, "rb") as a, open(part, "rb") as b:
        a.seek(start)
        b.seek(start)
        return a.read(done - start) == b.read(done - start)


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


# -- layout ----------------------------------------------------------------------------

def find_dataset_root(out: Path, max_depth: int = 3) -> Path | None:
    """The shallowest folder under ``out`` holding ``CelebA-HQ-img/`` (hidden folders skipped)."""
    level = [Path(out)]
    for _ in range(max_depth + 1):
        found = [d for d in level if (d / layout.IMAGE_DIR).is_dir()]
        if len(found) > 1:
            raise CelebsegError(f"{out} holds several CelebAMask-HQ copies "
                                f"({', '.join(map(str, found))}): keep one")
        if found:
            return found[0]
        level = [c for d in level for c in sorted(d.iterdir())
                 if c.is_dir() and not c.is_symlink() and not c.name.startswith(".")]
    return None


def read_mapping_ids(path: Path) -> list[int]:
    """Image ids (``idx`` column) of a CelebA-HQ-to-CelebA mapping file."""
    lines = Path(path).read_text().split("\n")
    if not lines or lines[0].split() != _MAPPING_HEADER:
        raise CelebsegError(f"{path} does not start with the header "
                            f"'{' '.join(_MAPPING_HEADER)}': is it the dataset's mapping file?")
    try:
        return [int(line.split()[0]) for line in lines[1:] if line.strip()]
    except ValueError:
        raise CelebsegError(f"{path} has a row whose first column is not an image id") from None


def verify_layout(root: Path) -> dict:
    """Check a raw CelebAMask-HQ folder; return counts or raise naming everything missing.

    >>> verify_layout("/data/cm/CelebAMask-HQ")["images"]  # doctest: +SKIP
    30000
    """
    root = Path(root)
    problems = []
    img_dir, mask_dir, mapping = (root / layout.IMAGE_DIR, root / layout.MASK_DIR,
                                  layout.mapping_path(root))
    images = ({int(n[:-4]) for n in os.listdir(img_dir) if n.endswith(".jpg") and n[:-4].isdigit()}
              if img_dir.is_dir() else set())
    if not img_dir.is_dir():
        problems.append(f"the image folder {layout.IMAGE_DIR}/")
    ids = []
    if mapping.is_file():
        ids = read_mapping_ids(mapping)
    else:
        problems.append(f"the mapping file {layout.MAPPING_FILE}")
    missing_images = sorted(set(ids) - images)
    if missing_images:
        problems.append(f"{len(missing_images)} of {len(ids)} images listed in the mapping file "
                        f"(e.g. {layout.IMAGE_DIR}/{missing_images[0]}.jpg)")
    elif ids and len(images) != len(ids):
        problems.append(f"{len(images) - len(ids)} images in {layout.IMAGE_DIR}/ that the mapping "
                        f"file does not list")
    wanted = sorted({k // layout.IMAGES_PER_MASK_FOLDER for k in (ids or images)})
    mask_files, present = 0, []
    if not mask_dir.is_dir():
        problems.append(f"the mask folder {layout.MASK_DIR}/")
    else:
        for folder in wanted:
            d = mask_dir / str(folder)
            n = sum(1 for name in os.listdir(d) if name.endswith(".png")) if d.is_dir() else 0
            mask_files += n
            if n:
                present.append(folder)
        absent = [f for f in wanted if f not in present]
        if absent:
            problems.append(f"mask folder(s) {', '.join(map(str, absent))} of "
                            f"{layout.MASK_DIR}/ (missing or empty)")
    if problems:
        raise CelebsegError(f"{root} is incomplete: missing {'; '.join(problems)}. Re-download "
                            f"(delete the folder first) or pass the complete archive")
    return {"images": len(images), "mapping_rows": len(ids), "mask_folders": present,
            "mask_files": mask_files, "mapping_bytes": mapping.stat().st_size}


def _write_marker(out: Path, root: Path, counts: dict) -> None:
    atomic_write_json(out / MARKER_NAME, {
        "root": os.path.relpath(root, out), **counts,
        "image_dir_entries": len(os.listdir(root / layout.IMAGE_DIR))})


def find_verified(out) -> Path | None:
    """The dataset root under ``out`` when it was downloaded and verified, else None.

    Cheap (the folder is listed, not read): what a notebook asks before doing anything.

    >>> find_verified("/nonexistent") is None
    True
    """
    out = Path(out).expanduser().absolute()
    return _check_marker(out) if out.is_dir() else None


def _check_marker(out: Path) -> Path | None:
    """The verified root when the marker still matches the folder (listing, not reading)."""
    try:
        marker = json.loads((out / MARKER_NAME).read_text())
        root = (out / marker["root"]).resolve()
        mask_dir = root / layout.MASK_DIR
        ok = (len(os.listdir(root / layout.IMAGE_DIR)) == marker["image_dir_entries"]
              and layout.mapping_path(root).stat().st_size == marker["mapping_bytes"]
              and all((mask_dir / str(f)).is_dir() for f in marker["mask_folders"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return root if ok else None


# -- CLI -------------------------------------------------------------------------------

def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``celebseg download``.

    >>> p = argparse.ArgumentParser(); add_download_arguments(p)
    >>> p.parse_args(["--source", "archive", "--archive", "x.zip", "--out", "d"]).source
    'archive'
    """
    parser.add_argument("--source", required=True, choices=SOURCES,
                        help="kaggle (kagglehub), drive (gdown) or archive (a local zip/folder)")
    parser.add_argument("--archive", metavar="F", help="with --source archive: the .zip/.tar "
                        "you downloaded, or its unpacked folder")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder to unpack into (the dataset root ends up inside it)")
    parser.add_argument("--kaggle-dataset", default=DEFAULT_KAGGLE_DATASET, metavar="SLUG",
                        help=f"Kaggle owner/dataset (default: community mirror "
                             f"{DEFAULT_KAGGLE_DATASET})")
    parser.add_argument("--drive-id", default=DEFAULT_DRIVE_ID, metavar="ID",
                        help=f"Google Drive file id (default: the official zip, {DEFAULT_DRIVE_ID})")


def run_download(args: argparse.Namespace) -> int:
    """Run ``celebseg download``; prints the dataset root and the next command."""
    if args.archive is not None and args.source != "archive":
        raise CelebsegError(f"--archive is only read with --source archive (got --source "
                            f"{args.source}): drop one of them")
    root = download_dataset(args.source, args.out, archive=args.archive,
                            kaggle_slug=args.kaggle_dataset, drive_id=args.drive_id)
    print(root)
    _say(f"next: celebseg prepare --data-root {root} --out PREPARED_DIR")
    return 0
