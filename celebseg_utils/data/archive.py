"""Safe unpacking of a zip, a tar or a plain folder into a target folder.

Every entry is checked before a single byte is written: absolute paths, ``..`` components,
symbolic or hard links, special files, names with control characters and a name that is
both a file and a folder are refused, so an archive can never write outside the target.
Files are unpacked into a hidden staging folder inside the target and moved into place
only when all of them are complete; an interrupted or corrupt archive leaves the target
as it was.

>>> import tempfile, zipfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with zipfile.ZipFile(d / "a.zip", "w") as z:
...     z.writestr("top/hello.txt", "hi")
>>> [e.name for e in list_entries(d / "a.zip")]
['top/hello.txt']
>>> safe_extract(d / "a.zip", d / "out", progress=False)
['top']
>>> (d / "out" / "top" / "hello.txt").read_text()
'hi'
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from celebseg_utils.errors import CelebsegError

#: Hidden folder inside the target that receives files until the whole archive is unpacked.
STAGING_NAME = ".celebseg_extract"
_CHUNK = 1 << 20


class Entry(NamedTuple):
    """One member of an archive: its name as stored, its size and what it is."""

    name: str
    size: int
    kind: str  # "file" | "dir" | "link" | "special"


def archive_kind(path: Path) -> str:
    """``"dir"``, ``"zip"`` or ``"tar"``; a clear error for anything else."""
    path = Path(path)
    if path.is_dir():
        return "dir"
    if not path.exists():
        raise CelebsegError(f"archive {path} does not exist: pass the path of the downloaded "
                            f".zip (or the unpacked folder) to --archive")
    if not path.is_file():  # a device or a pipe: reading it could block or never end
        raise CelebsegError(f"archive {path} is not a regular file: pass the downloaded .zip "
                            f"(or the unpacked folder) to --archive")
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, tarfile.TarError):
        pass
    what = _sniff(path)
    if what is not None:
        raise CelebsegError(f"{path} {what}: download it again, or pass the CelebAMask-HQ "
                            f"archive to --archive")
    if path.suffix.lower() == ".zip":
        raise CelebsegError(f"{path} is not a readable zip (truncated or corrupt download?): "
                            f"download it again")
    raise CelebsegError(f"{path} is neither a zip nor a tar archive nor a folder: pass the "
                        f"CelebAMask-HQ .zip you downloaded")


def _sniff(path: Path) -> str | None:
    """What a file that is not an archive is, from its first bytes, if it is a usual suspect.

    A failed download often leaves an empty file, the start of a zip, or the HTML page of a
    quota or sign-in error under the archive's name; saying which tells the user what to do.
    """
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "is empty (0 bytes)"
    if head.startswith(b"PK\x03\x04"):
        return "is a truncated or corrupt zip (its end, the central directory, is missing)"
    if head.startswith(b"\x1f\x8b"):
        return "is a truncated or corrupt gzip file"
    if head.startswith(b"\xff\xd8\xff"):
        return "is a JPEG image, not an archive"
    if head.startswith(b"\x89PNG"):
        return "is a PNG image, not an archive"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "is an HTML page, not an archive (an error or sign-in page saved in its place?)"
    return None


def list_entries(path: Path) -> list[Entry]:
    """All members of a zip, a tar or a folder (walked without following links)."""
    path = Path(path)
    kind = archive_kind(path)
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                return [_zip_entry(info) for info in zf.infolist()]
        if kind == "tar":
            with tarfile.open(path) as tf:
                return [_tar_entry(m) for m in tf.getmembers()]
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise CelebsegError(f"{path} is corrupt or truncated ({exc}): download it again") from None
    return _dir_entries(path)


def _zip_entry(info: zipfile.ZipInfo) -> Entry:
    # Unix mode bits live in the high 16 bits of external_attr; a symlink's "content" is
    # its target, which zipfile itself would write as a plain file but other tools follow.
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        kind = "link"
    elif info.is_dir() or stat.S_ISDIR(mode):
        kind = "dir"
    elif mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        kind = "special"
    else:
        kind = "file"
    return Entry(info.filename, info.file_size, kind)


def _tar_entry(member: tarfile.TarInfo) -> Entry:
    if member.issym() or member.islnk():
        kind = "link"
    elif member.isdir():
        kind = "dir"
    elif member.isfile():
        kind = "file"
    else:
        kind = "special"
    return Entry(member.name, member.size if member.isfile() else 0, kind)


def _dir_entries(root: Path) -> list[Entry]:
    entries = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root)
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            rel_name = (rel / name).as_posix()
            if stat.S_ISLNK(st.st_mode):
                entries.append(Entry(rel_name, 0, "link"))
            elif stat.S_ISDIR(st.st_mode):
                entries.append(Entry(rel_name + "/", 0, "dir"))
            elif stat.S_ISREG(st.st_mode):
                entries.append(Entry(rel_name, st.st_size, "file"))
            else:
                entries.append(Entry(rel_name, 0, "special"))
    return entries


def entry_parts(name: str) -> tuple[str, ...] | None:
    """The path components of a member name, or ``None`` when it could escape the target.

    Backslashes count as separators (zips made on Windows) and a drive letter or a leading
    slash makes a path absolute.

    >>> entry_parts("CelebAMask-HQ/CelebA-HQ-img/0.jpg")
    ('CelebAMask-HQ', 'CelebA-HQ-img', '0.jpg')
    >>> entry_parts("a/../../etc/passwd") is None, entry_parts("/etc/passwd") is None
    (True, True)
    """
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) >= 2 and norm[1] == ":") or "\x00" in norm:
        return None
    parts = tuple(p for p in PurePosixPath(norm).parts if p not in ("", "."))
    if any(p == ".." for p in parts):
        return None
    return parts


def check_entries(entries: list[Entry], source: Path) -> None:
    """Raise ``CelebsegError`` naming the first unsafe members (nothing has been written)."""
    bad = []
    for e in entries:
        if e.kind == "link":
            bad.append(f"{e.name!r} is a link")
        elif e.kind == "special":
            bad.append(f"{e.name!r} is a device or pipe")
        elif any(ord(c) < 32 or 127 <= ord(c) < 160 for c in e.name):
            # A newline or an escape code would let a name forge lines on the terminal.
            bad.append(f"{e.name!r} has control characters in its name")
        elif entry_parts(e.name) is None:
            bad.append(f"{e.name!r} points outside the target (absolute path or '..')")
    # A name that is a file and also holds members could only be unpacked by dropping one.
    parts = [(e.kind, p) for e in entries if (p := entry_parts(e.name))]
    folders = {p[:i] for _, p in parts for i in range(1, len(p))}
    bad += [f"{'/'.join(p)!r} is both a file and a folder"
            for kind, p in parts if kind == "file" and p in folders]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CelebsegError(f"refusing to unpack {source}: {'; '.join(bad[:3])}{more}. "
                            f"Nothing was written; use an archive from the official source")


def safe_extract(source: Path, out: Path, progress: bool = True, move: bool = False,
                 contents: bool = False, entries: list[Entry] | None = None) -> list[str]:
    """Unpack ``source`` (zip, tar or folder) into ``out``; return the top-level names made.

    All members are checked first (see :func:`check_entries`); free disk space too. Files
    go to ``out/.celebseg_extract`` and are renamed into ``out`` at the end; a top-level
    name that already exists in ``out`` is an error (nothing is overwritten). A folder is
    copied as a whole (``out/<its name>/...``, like a zip of it) unless ``contents=True``;
    ``move=True`` moves its contents instead of copying them (for a download folder we own).
    """
    source, out = Path(source), Path(out)
    kind = archive_kind(source)
    entries = list_entries(source) if entries is None else entries
    check_entries(entries, source)
    base = source
    if kind == "dir" and not (move or contents):
        # A folder is copied as a whole, like a zip made of it: out/<folder name>/...
        base = source.parent
        entries = [Entry(f"{source.name}/", 0, "dir")] + [
            e._replace(name=f"{source.name}/{e.name}") for e in entries]
    # Our own working folder never comes from an archive (it would be renamed onto itself).
    tops = sorted({p[0] for e in entries if (p := entry_parts(e.name))} - {STAGING_NAME})
    clashes = [t for t in tops if (out / t).exists() or (out / t).is_symlink()]
    if clashes:
        raise CelebsegError(f"{out / clashes[0]} already exists and would be overwritten by "
                            f"{source.name}: remove it or choose another --out")
    total = sum(e.size for e in entries if e.kind == "file")
    out.mkdir(parents=True, exist_ok=True)
    staging = out / STAGING_NAME
    if staging.exists():
        # Left by a killed run; never holds finished files. Removed before measuring free
        # space, which it would otherwise take up.
        shutil.rmtree(staging)
    free = shutil.disk_usage(out).free
    if not move and free < total:
        raise CelebsegError(f"{out} has {_size(free)} free but {source.name} unpacks to "
                            f"{_size(total)}: free {_size(total - free)} more or choose "
                            f"another --out")
    staging.mkdir()
    try:
        from tqdm.auto import tqdm

        with tqdm(total=total, unit="B", unit_scale=True, desc=f"unpack {source.name}",
                  disable=not progress) as bar:
            if kind == "zip":
                _extract_zip(source, staging, bar)
            elif kind == "tar":
                _extract_tar(source, staging, bar)
            else:
                _extract_dir(base, staging, bar, entries, move)
        for top in tops:
            os.replace(staging / top, out / top)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise CelebsegError(f"{source} is corrupt or truncated ({exc}): download it again; "
                            f"nothing was kept in {out}") from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise CelebsegError(f"{out} ran out of disk space while unpacking {source.name} "
                            f"({_size(total)}): free some space or choose another --out; "
                            f"nothing was kept") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tops


def _size(n: int) -> str:
    """``n`` bytes for people: ``_size(3_200_000_000) == '3.2 GB'``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} byte{'s' if n != 1 else ''}"


def _target(staging: Path, name: str) -> Path:
    dest = staging.joinpath(*entry_parts(name))
    # Defence in depth: the name check above already rules this out.
    if staging.resolve() not in dest.resolve().parents:
        raise CelebsegError(f"refusing entry {name!r}: it resolves outside the target")
    return dest


def _copy_stream(src, dest: Path, bar) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f:
        while chunk := src.read(_CHUNK):
            f.write(chunk)
            bar.update(len(chunk))


def _extract_zip(source: Path, staging: Path, bar) -> None:
    with zipfile.ZipFile(source) as zf:
        for info in zf.infolist():
            if not entry_parts(info.filename):
                continue
            dest = _target(staging, info.filename)
            if _zip_entry(info).kind == "dir":
                dest.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src:  # zipfile checks each member's CRC at its end
                _copy_stream(src, dest, bar)


def _extract_tar(source: Path, staging: Path, bar) -> None:
    with tarfile.open(source) as tf:
        for member in tf:
            if not entry_parts(member.name):
                continue
            dest = _target(staging, member.name)
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                with tf.extractfile(member) as src:
                    _copy_stream(src, dest, bar)


def _extract_dir(source: Path, staging: Path, bar, entries: list[Entry], move: bool) -> None:
    for e in entries:
        dest = _target(staging, e.name)
        if e.kind == "dir":
            dest.mkdir(parents=True, exist_ok=True)
        elif move:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source / e.name, dest)
            bar.update(e.size)
        else:
            with open(source / e.name, "rb") as src:
                _copy_stream(src, dest, bar)
