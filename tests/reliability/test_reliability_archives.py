"""Reliability: hostile, broken and wrong archives given to `celebseg download --source archive`.

Every archive is built here from a tiny hand-made CelebAMask-HQ folder (three images, two mask
folders; ``test_download.make_raw``). Each case runs the real command in process and, where a
package function is the layer that decides, calls it as well. The common witnesses: the one-line
``error: ...`` with exit 2, the parent folder of ``--out`` unchanged outside ``--out`` (file
digests), no file called ``evil*`` anywhere, no verified-marker on an incomplete copy, no
leftover staging or temporary files, and a Kaggle key set in the environment never printed.
"""

import errno
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from celebseg_utils.data import archive as A
from celebseg_utils.data import download as D
from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from harness import REPO_ROOT, assert_user_error, partial_files, run_cli, tree_digest
from test_archive import _tar
from test_download import make_raw, zip_folder

SECRET = "s3cr3t-kaggle-key-reliability-0042"
TOP = "CelebAMask-HQ"
ABS_TMP_EVIL = Path("/tmp/evil")


@pytest.fixture(autouse=True)
def kaggle_secret(monkeypatch):
    """Credentials in the environment, so every case can check they are never printed."""
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return make_raw(tmp_path_factory.mktemp("raw") / TOP)


@pytest.fixture(scope="module")
def members(raw) -> dict[str, bytes]:
    """The good dataset as archive members: ``CelebAMask-HQ/...`` -> bytes."""
    return {f"{TOP}/{p.relative_to(raw).as_posix()}": p.read_bytes()
            for p in sorted(raw.rglob("*")) if p.is_file()}


@pytest.fixture
def ws(tmp_path):
    """The workspace: archives go to ``in/``, ``--out`` is ``work/data`` (not created yet)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "work").mkdir()
    return tmp_path


def dest_of(ws: Path) -> Path:
    return ws / "work" / "data"


def write_zip(path: Path, files: dict, extra=()) -> Path:
    """``files``: member name -> bytes, stored exactly as named; ``extra``: (ZipInfo, bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for info, data in extra:
            zf.writestr(info, data)
    return path


def write_tar(path: Path, files: dict, links=()) -> Path:
    """``links``: (name, linkname, tarfile.SYMTYPE | tarfile.LNKTYPE)."""
    return _tar(path, files, links)


def zip_symlink(name: str, target: str):
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def download(archive, out):
    return run_cli(["download", "--source", "archive", "--archive", archive, "--out", out])


def _tmp_evil_state():
    try:
        st = ABS_TMP_EVIL.lstat()
    except FileNotFoundError:
        return None
    return st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino


#: ``/tmp/evil`` as it was before this module ran (normally absent), to tell if a case made it.
TMP_EVIL_BEFORE = _tmp_evil_state()


def evil_files(ws: Path) -> list[str]:
    found = [str(p) for p in ws.rglob("*") if "evil" in p.name.lower()]
    return found + ([str(ABS_TMP_EVIL)] if _tmp_evil_state() != TMP_EVIL_BEFORE else [])


def check_clean(result, ws: Path) -> None:
    """What every case asserts: no secret printed, no evil file, no staging or temp files,
    and one ``error:`` line exactly when the command failed."""
    assert SECRET not in result.out + result.err
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == (result.code != 0), str(result)
    assert evil_files(ws) == []
    assert partial_files(ws) == []
    assert not any(p.name == A.STAGING_NAME for p in ws.rglob("*"))


def check_refused(result, ws: Path, before: dict, *fragments: str) -> str:
    """A one-line error naming ``fragments``, and not one file written or changed anywhere."""
    line = assert_user_error(result, *fragments)
    check_clean(result, ws)
    assert tree_digest(ws) == before
    assert not (dest_of(ws) / D.MARKER_NAME).exists()
    return line


def check_incomplete(result, ws: Path, before: dict, archive: Path, *fragments: str) -> str:
    """A one-line error; files written only under ``--out``; the copy is not marked verified."""
    line = assert_user_error(result, *fragments)
    check_clean(result, ws)
    after = tree_digest(ws)
    assert {k: v for k, v in after.items() if not k.startswith("work/data/")} == before
    assert not (dest_of(ws) / D.MARKER_NAME).exists()
    # A second run does not take the leftover for a complete copy either.
    again = download(archive, dest_of(ws))
    assert_user_error(again, *fragments)
    assert not (dest_of(ws) / D.MARKER_NAME).exists()
    return line


# -- hostile member names and links ------------------------------------------------------

HOSTILE_NAMES = [
    pytest.param("../evil.txt", "../evil.txt", id="dotdot", marks=pytest.mark.reliability(
        "archives", "a zip member `../evil.txt` (path traversal) beside a good dataset",
        "one-line error naming the member, exit 2; workspace digests unchanged, no `evil*` file")),
    pytest.param(f"{TOP}/../../evil", f"{TOP}/../../evil", id="nested-dotdot",
                 marks=pytest.mark.reliability(
        "archives", "a zip member `a/../../evil` (traversal hidden after a folder)",
        "one-line error naming the member, exit 2; workspace digests unchanged, no `evil*` file")),
    pytest.param("/tmp/evil", "/tmp/evil", id="absolute", marks=pytest.mark.reliability(
        "archives", "a zip member with an absolute path `/tmp/evil`",
        "one-line error naming the member, exit 2; `/tmp/evil` not created, workspace unchanged")),
    pytest.param("{ws}/work/evil.txt", "/work/evil.txt", id="absolute-beside-out",
                 marks=pytest.mark.reliability(
        "archives", "a zip member with an absolute path into the folder holding `--out`",
        "one-line error naming the member, exit 2; that folder's files unchanged")),
    pytest.param("..\\evil.txt", "evil.txt", id="windows-dotdot", marks=pytest.mark.reliability(
        "archives", "a zip member with a Windows-style name `..\\evil.txt`",
        "one-line error naming the member, exit 2; workspace digests unchanged, no `evil*` file")),
    pytest.param("C:\\evil.txt", "evil.txt", id="windows-drive", marks=pytest.mark.reliability(
        "archives", "a zip member with a Windows drive path `C:\\evil.txt`",
        "one-line error naming the member, exit 2; workspace digests unchanged, no `evil*` file")),
]


@pytest.mark.parametrize("name, fragment", HOSTILE_NAMES)
def test_escaping_zip_member_is_refused(ws, members, name, fragment):
    name = name.format(ws=ws)
    archive = write_zip(ws / "in" / "CelebAMask-HQ.zip", {**members, name: b"pwned"})
    assert name in [e.name for e in A.list_entries(archive)]  # stored as written, not sanitised
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, fragment, "outside",
                  "nothing was written")
    with pytest.raises(CelebsegError, match="outside the target"):
        A.safe_extract(archive, dest_of(ws), progress=False)
    assert tree_digest(ws) == before and evil_files(ws) == []


@pytest.mark.reliability("archives", "a `.tar.gz` with members `../evil.txt` and `/tmp/evil`",
                         "one-line error naming both members, exit 2; nothing written")
def test_escaping_tar_member_is_refused(ws, members):
    archive = write_tar(ws / "in" / "CelebAMask-HQ.tar.gz",
                        {**members, "../evil.txt": b"pwned", "/tmp/evil": b"pwned"})
    assert {"../evil.txt", "/tmp/evil"} <= {e.name for e in A.list_entries(archive)}
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, "'../evil.txt' points outside",
                  "'/tmp/evil' points outside", "nothing was written")


def _zip_with_symlink(ws, members):
    link = zip_symlink(f"{TOP}/CelebA-HQ-img/evil_link", "../../../evil_target")
    # A file "inside" the link: unpackers that create the link first write through it.
    through = (zipfile.ZipInfo(f"{TOP}/CelebA-HQ-img/evil_link/evil.txt"), b"pwned")
    return write_zip(ws / "in" / "CelebAMask-HQ.zip", members, extra=[link, through])


def _tar_with_link(kind):
    def make(ws, members):
        target = "../../../evil_target" if kind == tarfile.SYMTYPE else "/etc/passwd"
        return write_tar(ws / "in" / "CelebAMask-HQ.tar.gz", members,
                         links=[(f"{TOP}/CelebA-HQ-img/evil_link", target, kind)])
    return make


@pytest.mark.parametrize("make", [
    pytest.param(_zip_with_symlink, id="zip-symlink", marks=pytest.mark.reliability(
        "archives", "a zip symlink member (Unix mode in `external_attr`) and a file through it",
        "one-line error naming the link member, exit 2; workspace unchanged, no link in it")),
    pytest.param(_tar_with_link(tarfile.SYMTYPE), id="tar-symlink", marks=pytest.mark.reliability(
        "archives", "a `.tar.gz` with a symlink member pointing outside `--out`",
        "one-line error naming the link member, exit 2; nothing written")),
    pytest.param(_tar_with_link(tarfile.LNKTYPE), id="tar-hardlink", marks=pytest.mark.reliability(
        "archives", "a `.tar.gz` with a hard link member to `/etc/passwd`",
        "one-line error naming the link member, exit 2; nothing written")),
])
def test_link_member_is_refused(ws, members, make):
    archive = make(ws, members)
    assert "link" in [e.kind for e in A.list_entries(archive)]
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before,
                  f"{TOP}/CelebA-HQ-img/evil_link' is a link", archive.name)
    with pytest.raises(CelebsegError, match="is a link"):
        A.safe_extract(archive, dest_of(ws), progress=False)
    assert tree_digest(ws) == before and not any(p.is_symlink() for p in ws.rglob("*"))


@pytest.mark.reliability("archives", "a zip member that is a FIFO (special file mode bits)",
                         "one-line error naming the member, exit 2; nothing written")
def test_special_file_member_is_refused(ws, members):
    fifo = zipfile.ZipInfo(f"{TOP}/CelebA-HQ-img/evil_fifo")
    fifo.create_system, fifo.external_attr = 3, (stat.S_IFIFO | 0o644) << 16
    archive = write_zip(ws / "in" / "CelebAMask-HQ.zip", members, extra=[(fifo, b"")])
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, "evil_fifo' is a device or pipe")


@pytest.mark.reliability("archives", "member names holding a newline and terminal escape codes",
                         "one-line error with the name escaped (no raw newline/ESC printed), "
                         "exit 2; nothing written")
def test_member_names_with_control_characters_stay_on_one_line(ws, members):
    name = "../evil\n\x1b[2Jerror: all fine.txt"
    archive = write_zip(ws / "in" / "CelebAMask-HQ.zip", {**members, name: b"x"})
    before = tree_digest(ws)
    result = download(archive, dest_of(ws))
    check_refused(result, ws, before, "control characters", "nothing was written")
    assert "\x1b" not in result.err and len(result.err.strip().splitlines()) == 1
    # The same for the "wrong dataset" message, which lists the top-level names.
    odd = write_zip(ws / "in" / "odd.zip", {"x\n\x1b[31mfake/1.jpg": b"x"})
    result = download(odd, dest_of(ws))
    check_refused(result, ws, tree_digest(ws), "odd.zip", "control characters")
    assert "\x1b" not in result.err and len(result.err.strip().splitlines()) == 1


@pytest.mark.reliability("archives", "a zip in which one name is both a file and a folder",
                         "one-line error naming it, exit 2, before anything is written")
def test_name_that_is_file_and_folder_is_refused(ws, members):
    archive = write_zip(ws / "in" / "CelebAMask-HQ.zip", {
        f"{TOP}/{layout.MAPPING_FILE}/0.jpg": b"x", **members})
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before,
                  f"'{TOP}/{layout.MAPPING_FILE}' is both a file and a folder",
                  "nothing was written")
    assert not dest_of(ws).exists()


# -- broken and foreign files ---------------------------------------------------------------

def _cut_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _cut_in_central_directory(data: bytes) -> bytes:
    eocd = data.rfind(b"PK\x05\x06")
    start = int.from_bytes(data[eocd + 16: eocd + 20], "little")
    assert data[start: start + 4] == b"PK\x01\x02" and eocd - start > 100
    return data[: start + (eocd - start) // 2]


@pytest.mark.parametrize("cut", [
    pytest.param(_cut_half, id="half", marks=pytest.mark.reliability(
        "archives", "a zip cut in half (interrupted download)",
        "one-line error naming the zip and to download it again, exit 2; nothing written")),
    pytest.param(_cut_in_central_directory, id="central-directory", marks=pytest.mark.reliability(
        "archives", "a zip cut inside its central directory (all file data present)",
        "one-line error naming the zip and to download it again, exit 2; nothing written")),
])
def test_truncated_zip_is_refused(ws, raw, cut):
    archive = zip_folder(raw, ws / "in" / "CelebAMask-HQ.zip")
    archive.write_bytes(cut(archive.read_bytes()))
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, "CelebAMask-HQ.zip", "truncated",
                  "download it again")
    with pytest.raises(CelebsegError, match="truncated"):
        A.list_entries(archive)


@pytest.mark.reliability("archives", "a `.tar.gz` cut in half",
                         "one-line error naming the archive and to download it again, exit 2; "
                         "nothing written")
def test_truncated_tar_is_refused(ws, members):
    archive = write_tar(ws / "in" / "CelebAMask-HQ.tar.gz", members)
    archive.write_bytes(_cut_half(archive.read_bytes()))
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, "CelebAMask-HQ.tar.gz",
                  "download it again")


@pytest.mark.reliability("archives", "a zip whose member data is corrupt (CRC mismatch)",
                         "one-line error naming the zip, exit 2; nothing kept under `--out`")
def test_corrupt_member_is_refused(ws, members):
    archive = write_zip(ws / "in" / "CelebAMask-HQ.zip", members)
    data = bytearray(archive.read_bytes())
    first = zipfile.ZipFile(archive).infolist()[0]
    start = first.header_offset + 30 + len(first.filename)
    data[start + 3] ^= 0xFF
    archive.write_bytes(bytes(data))
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, "CelebAMask-HQ.zip", "corrupt",
                  "download it again")


@pytest.mark.parametrize("content, fragment", [
    pytest.param(b"", "is empty", id="zero-byte", marks=pytest.mark.reliability(
        "archives", "a zero-byte `CelebAMask-HQ.zip`",
        "one-line error saying the file is empty, exit 2; nothing written")),
    pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8, "JPEG image",
                 id="jpeg", marks=pytest.mark.reliability(
        "archives", "a JPEG renamed `CelebAMask-HQ.zip`",
        "one-line error saying it is a JPEG image, not a zip, exit 2; nothing written")),
    pytest.param(b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title>",
                 "HTML page", id="html", marks=pytest.mark.reliability(
        "archives", "an HTML page (a Drive quota page) saved as `CelebAMask-HQ.zip`",
        "one-line error saying it is an HTML page, not a zip, exit 2; nothing written")),
])
def test_file_that_is_not_an_archive(ws, content, fragment):
    archive = ws / "in" / "CelebAMask-HQ.zip"
    archive.write_bytes(content)
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, "CelebAMask-HQ.zip", fragment,
                  "download it again")
    with pytest.raises(CelebsegError, match=fragment):
        A.archive_kind(archive)


# -- the wrong dataset -----------------------------------------------------------------------

@pytest.mark.reliability("archives",
                         "a zip of CelebA (`img_align_celeba/`, no HQ images, no masks)",
                         "one-line error: not CelebAMask-HQ, naming its top level; nothing written")
def test_celeba_zip_is_refused_before_unpacking(ws):
    archive = write_zip(ws / "in" / "celeba.zip", {"img_align_celeba/000001.jpg": b"\xff\xd8",
                                                   "list_attr_celeba.csv": b"a,b\n"})
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, "celeba.zip is not CelebAMask-HQ",
                  "img_align_celeba")
    assert not dest_of(ws).exists()


@pytest.mark.reliability("archives", "the dataset under a single top folder of another name",
                         "success: unpacked byte-identical under `--out/<that name>`, verified")
def test_other_top_folder_name_is_found(ws, raw):
    archive = zip_folder(raw, ws / "in" / "faces.zip", prefix="my-faces")
    result = download(archive, dest_of(ws))
    assert result.code == 0, str(result)
    root = dest_of(ws) / "my-faces"
    assert result.out.strip() == str(root)
    assert tree_digest(root) == tree_digest(raw)
    assert (dest_of(ws) / D.MARKER_NAME).is_file()
    check_clean(result, ws)


def _drop(prefix):
    return lambda members: {k: v for k, v in members.items() if not k.startswith(prefix)}


@pytest.mark.parametrize("keep, fragments", [
    pytest.param(_drop(f"{TOP}/{layout.MASK_DIR}/"), ["the mask folder CelebAMask-HQ-mask-anno/"],
                 id="no-masks", marks=pytest.mark.reliability(
        "archives", "CelebA-HQ images and mapping but no mask folder at all",
        "one-line error naming the missing mask folder; copy left unmarked, a re-run refuses too")),
    pytest.param(_drop(f"{TOP}/{layout.MAPPING_FILE}"), [layout.MAPPING_FILE], id="no-mapping",
                 marks=pytest.mark.reliability(
        "archives", "the dataset without `CelebA-HQ-to-CelebA-mapping.txt`",
        "one-line error naming the mapping file; copy left unmarked, a re-run refuses too")),
    pytest.param(_drop(f"{TOP}/{layout.MASK_DIR}/1/"), ["mask folder(s) 1 of"],
                 id="one-mask-folder",
                 marks=pytest.mark.reliability(
        "archives", "the right layout with one of its two mask folders missing",
        "one-line error naming mask folder 1; copy left unmarked, a re-run refuses too")),
])
def test_incomplete_dataset_is_never_marked_complete(ws, members, keep, fragments):
    archive = write_zip(ws / "in" / "x", keep(members))  # no suffix: kind comes from the bytes
    before = tree_digest(ws)
    check_incomplete(download(archive, dest_of(ws)), ws, before, archive, "is incomplete",
                     *fragments)
    with pytest.raises(CelebsegError, match="is incomplete"):
        D.verify_layout(dest_of(ws) / TOP)


# -- paths and destinations ------------------------------------------------------------------

@pytest.mark.reliability("archives", "archive and `--out` on paths with spaces and non-ASCII "
                         "characters", "success: byte-identical copy, verified, root printed")
def test_spaces_and_non_ascii_paths(tmp_path, raw):
    folder = tmp_path / "my downloads ü"
    folder.mkdir()
    archive = zip_folder(raw, folder / "CelebAMask-HQ (1) é.zip")
    out = tmp_path / "data sets" / "çelèb 面"
    result = download(archive, out)
    assert result.code == 0, str(result)
    assert result.out.strip() == str(out / TOP)
    assert tree_digest(out / TOP) == tree_digest(raw)
    assert (out / D.MARKER_NAME).is_file()
    check_clean(result, tmp_path)


KILL_DURING_UNPACK = """
import os, signal, sys
from celebseg_utils.data import archive
from celebseg_utils import cli
real, count = archive._copy_stream, [0]
def copy(src, dest, bar):
    count[0] += 1
    if count[0] == 4:  # a member half-written, then the process dies (no cleanup runs)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read(5))
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dest, bar)
archive._copy_stream = copy
sys.exit(cli.main(sys.argv[1:]))
"""


def fake_small_disk(monkeypatch, out: Path, capacity: int) -> None:
    """``shutil.disk_usage`` of a disk of ``capacity`` bytes holding only what is under ``out``."""
    real = shutil.disk_usage

    def usage(path):
        used = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and not p.is_symlink())
        return type(real(path))(capacity, used, capacity - used)

    monkeypatch.setattr(shutil, "disk_usage", usage)


@pytest.mark.parametrize("tight_disk", [
    pytest.param(False, id="roomy-disk", marks=pytest.mark.reliability(
        "archives", "`--out` holding a partial extraction left by a SIGKILLed `celebseg download`",
        "killed copy never seen as a dataset; re-run completes byte-identical, "
        "no staging/half files")),
    pytest.param(True, id="tight-disk", marks=pytest.mark.reliability(
        "archives", "the same, on a disk with room for one unpacked copy only",
        "re-run reclaims the killed run's leftovers first and completes byte-identical")),
])
def test_rerun_after_kill_during_unpacking_completes(ws, raw, members, tight_disk, monkeypatch):
    archive = zip_folder(raw, ws / "in" / "CelebAMask-HQ.zip")
    out = dest_of(ws)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_UNPACK, "download", "--source",
                           "archive", "--archive", str(archive), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    half = [p for p in (out / A.STAGING_NAME).rglob("*") if p.is_file() and p.stat().st_size == 5]
    assert len(half) == 1  # the kill really left a half-written member behind
    assert D.find_dataset_root(out) is None and not (out / D.MARKER_NAME).exists()

    if tight_disk:
        fake_small_disk(monkeypatch, out, capacity=sum(map(len, members.values())) + 2)
    result = download(archive, out)
    assert result.code == 0, str(result)
    assert sorted(p.name for p in out.iterdir()) == [D.MARKER_NAME, TOP]
    assert tree_digest(out / TOP) == tree_digest(raw)  # nothing missing, extra or half-written
    check_clean(result, ws)


@pytest.mark.reliability("archives", "Ctrl-C (KeyboardInterrupt) while unpacking",
                         "exit 130 with a one-line error; `--out` left without dataset or staging")
def test_interrupt_during_unpacking_leaves_nothing(ws, raw, monkeypatch):
    archive = zip_folder(raw, ws / "in" / "CelebAMask-HQ.zip")
    real, count = A._copy_stream, [0]

    def copy(src, dest, bar):
        count[0] += 1
        if count[0] == 3:
            raise KeyboardInterrupt
        real(src, dest, bar)

    monkeypatch.setattr(A, "_copy_stream", copy)
    before = tree_digest(ws)
    result = download(archive, dest_of(ws))
    assert_user_error(result, "interrupted", code=130)
    check_clean(result, ws)
    assert tree_digest(ws) == before and list(dest_of(ws).iterdir()) == []


@pytest.mark.reliability("archives", "`--out` is an existing file",
                         "one-line error naming it and asking for a folder, exit 2; file unchanged")
def test_destination_is_a_file(ws, raw):
    archive = zip_folder(raw, ws / "in" / "CelebAMask-HQ.zip")
    dest_of(ws).write_bytes(b"my notes")
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, str(dest_of(ws)), "is a file",
                  "folder")


@pytest.mark.reliability("archives", "`--out` inside an existing file (`notes.txt/data`)",
                         "one-line error naming the file and asking for a folder, exit 2; "
                         "nothing written")
def test_destination_below_a_file(ws, raw):
    archive = zip_folder(raw, ws / "in" / "CelebAMask-HQ.zip")
    notes = ws / "work" / "notes.txt"
    notes.write_bytes(b"my notes")
    before = tree_digest(ws)
    check_refused(download(archive, notes / "data"), ws, before, str(notes), "is a file", "folder")


@pytest.mark.reliability("archives", "`celebseg download` run again on a completed download",
                         "exit 0, says nothing to do; every file's digest and mtime unchanged")
def test_rerun_of_completed_download_is_a_noop(ws, raw):
    archive = zip_folder(raw, ws / "in" / "CelebAMask-HQ.zip")
    out = dest_of(ws)
    assert download(archive, out).code == 0
    digests = tree_digest(ws)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    result = download(archive, out)
    assert result.code == 0, str(result)
    assert "nothing to do" in result.err and result.out.strip() == str(out / TOP)
    assert tree_digest(ws) == digests
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes
    check_clean(result, ws)


@pytest.mark.reliability("archives", "the zip saved inside `--out` itself",
                         "success: dataset unpacked beside the zip, zip unchanged, verified")
def test_archive_inside_destination(tmp_path, raw):
    out = tmp_path / "data"
    out.mkdir()
    archive = zip_folder(raw, out / "CelebAMask-HQ.zip")
    zipped = archive.read_bytes()
    result = download(archive, out)
    assert result.code == 0, str(result)
    assert archive.read_bytes() == zipped
    assert tree_digest(out / TOP) == tree_digest(raw)
    assert (out / D.MARKER_NAME).is_file()
    check_clean(result, tmp_path)


@pytest.mark.reliability("archives", "the disk fills up (ENOSPC) while unpacking into an `--out` "
                         "holding the user's own files",
                         "one-line error saying to free space, exit 2; the user's files unchanged, "
                         "nothing else kept")
def test_disk_full_while_unpacking(ws, raw, monkeypatch):
    archive = zip_folder(raw, ws / "in" / "CelebAMask-HQ.zip")
    (dest_of(ws)).mkdir()
    (dest_of(ws) / "notes.txt").write_text("mine")
    real, count = A._copy_stream, [0]

    def copy(src, dest, bar):
        count[0] += 1
        if count[0] == 3:  # what a write on a full disk does: some bytes, then ENOSPC
            dest.write_bytes(src.read(3))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest))
        real(src, dest, bar)

    monkeypatch.setattr(A, "_copy_stream", copy)
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, "ran out of disk space",
                  "CelebAMask-HQ.zip", "free some space")
    assert sorted(p.name for p in dest_of(ws).iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("packed", [
    pytest.param(D.MARKER_NAME, id="marker", marks=pytest.mark.reliability(
        "archives", "an incomplete dataset zipped with a matching `.celebseg_verified.json` marker",
        "the packed marker is not unpacked: one-line error naming the missing mask folder; "
        "a re-run refuses too")),
    pytest.param(A.STAGING_NAME, id="staging", marks=pytest.mark.reliability(
        "archives", "an incomplete dataset zipped with a `.celebseg_extract/` (unpacker's "
        "staging) folder", "one-line error naming the missing mask folder, not an OS error; "
        "staging not unpacked")),
])
def test_packed_bookkeeping_cannot_vouch_for_a_copy(ws, raw, members, packed):
    kept = {k: v for k, v in members.items() if not k.startswith(f"{TOP}/{layout.MASK_DIR}/1/")}
    mapping = members[f"{TOP}/{layout.MAPPING_FILE}"]
    # Exactly what the marker of this (incomplete) copy would say, had it been verified.
    forged = {"root": TOP, "images": 3, "mapping_rows": 3, "mask_folders": [0], "mask_files": 4,
              "mapping_bytes": len(mapping), "image_dir_entries": 3}
    extra = ({D.MARKER_NAME: json.dumps(forged).encode()} if packed == D.MARKER_NAME
             else {f"{A.STAGING_NAME}/stale.txt": b"x"})
    archive = write_zip(ws / "in" / "CelebAMask-HQ.zip", {**kept, **extra})
    before = tree_digest(ws)
    check_incomplete(download(archive, dest_of(ws)), ws, before, archive, "is incomplete",
                     "mask folder(s) 1 of")
    assert sorted(p.name for p in dest_of(ws).iterdir()) == [TOP]


@pytest.mark.reliability("archives", "`--out` holding a half unzip made by hand (images only, "
                         "then interrupted)",
                         "one-line error naming what is missing and to delete the folder; the "
                         "user's files unchanged, unmarked")
def test_half_unzip_by_hand_is_not_taken_for_a_dataset(ws, raw):
    archive = zip_folder(raw, ws / "in" / "CelebAMask-HQ.zip")
    shutil.copytree(raw / layout.IMAGE_DIR, dest_of(ws) / TOP / layout.IMAGE_DIR)
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before, str(dest_of(ws) / TOP),
                  "is incomplete", layout.MAPPING_FILE, "delete the folder")


@pytest.mark.reliability("archives", "an unpacked folder given to `--archive` that holds a "
                         "symlink to a file outside it",
                         "one-line error naming the link, exit 2; nothing copied")
def test_folder_source_with_symlink_is_refused(ws, raw):
    src = ws / "in" / "unpacked"
    shutil.copytree(raw, src / TOP)
    os.symlink(ws / "in", src / TOP / layout.IMAGE_DIR / "evil_link")
    before = tree_digest(ws)
    result = download(src, dest_of(ws))
    assert_user_error(result, f"{TOP}/{layout.IMAGE_DIR}/evil_link' is a link")
    assert tree_digest(ws) == before and not dest_of(ws).exists()
    assert SECRET not in result.out + result.err
    os.unlink(src / TOP / layout.IMAGE_DIR / "evil_link")
    assert evil_files(ws) == []


@pytest.mark.reliability("archives", "`--archive /dev/null` (a device, not a file)",
                         "one-line error saying it is not a regular file, exit 2; nothing written")
def test_device_as_archive(ws):
    before = tree_digest(ws)
    check_refused(download("/dev/null", dest_of(ws)), ws, before, "/dev/null",
                  "not a regular file")


@pytest.mark.reliability("archives", "a zip that unpacks to more than the free disk space",
                         "one-line error giving both sizes, exit 2, before anything is written")
def test_archive_larger_than_free_space(ws, members, monkeypatch):
    archive = write_zip(ws / "in" / "CelebAMask-HQ.zip", members)
    total = sum(map(len, members.values()))
    fake_small_disk(monkeypatch, dest_of(ws), capacity=total - 1)
    before = tree_digest(ws)
    check_refused(download(archive, dest_of(ws)), ws, before,
                  f"has {total / 1e3:.1f} kB free but CelebAMask-HQ.zip unpacks to "
                  f"{total / 1e3:.1f} kB: free 1 byte more")
    assert 1000 < total < 9950  # so that both sizes print in kB


@pytest.mark.parametrize("option", [
    pytest.param("--archive", id="archive", marks=pytest.mark.reliability(
        "archives", "`--archive \"\"` (an unset shell variable)",
        "one-line error naming `--archive`, exit 2; the current folder is not copied")),
    pytest.param("--out", id="out", marks=pytest.mark.reliability(
        "archives", "`--out \"\"` (an unset shell variable)",
        "one-line error naming `--out`, exit 2; nothing unpacked into the current folder")),
])
def test_empty_path_is_not_the_current_folder(ws, raw, monkeypatch, option):
    archive = zip_folder(raw, ws / "in" / "CelebAMask-HQ.zip")
    monkeypatch.chdir(ws / "work")  # the folder an empty path would silently mean
    args = {"--archive": str(archive), "--out": str(dest_of(ws)), option: ""}
    before = tree_digest(ws)
    result = run_cli(["download", "--source", "archive", *[x for kv in args.items() for x in kv]])
    check_refused(result, ws, before, f"{option} is empty")
    assert sorted(p.name for p in (ws / "work").iterdir()) == []
