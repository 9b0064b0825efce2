import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from celebseg_utils.data import archive as A
from celebseg_utils.errors import CelebsegError

GOOD = {"top/a.txt": b"alpha", "top/sub/b.bin": bytes(range(256)) * 3}


def _zip(path, members, extra=()):
    """``members``: name -> bytes; ``extra``: ZipInfo objects with their payload."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for info, data in extra:
            zf.writestr(info, data)
    return path


def _tree(root: Path) -> dict:
    """Every path under ``root`` (files and folders, links included) -> bytes or None."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            plain = p.is_file() and not p.is_symlink()
            out[p.relative_to(root).as_posix()] = p.read_bytes() if plain else None
    return out


def _symlink_info(name, target_text="../../outside.txt"):
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so the mode bits below are meaningful
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target_text.encode()


@pytest.mark.parametrize("bad_name, why", [
    ("top/../../escaped.txt", "outside"),
    ("../escaped.txt", "outside"),
    ("/tmp/celebseg_abs_escape.txt", "outside"),
    ("top\\..\\..\\escaped.txt", "outside"),
    ("C:/escaped.txt", "outside"),
])
def test_zip_with_escaping_entry_is_refused_before_writing_anything(tmp_path, bad_name, why):
    archive = _zip(tmp_path / "evil.zip", {**GOOD, bad_name: b"pwned"})
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out"
    before = _tree(tmp_path)
    with pytest.raises(CelebsegError, match=why) as info:
        A.safe_extract(archive, out, progress=False)
    assert "evil.zip" in str(info.value) and "Nothing was written" in str(info.value)
    assert _tree(tmp_path) == before  # nothing inside --out (not even the folder), nothing beside it
    assert not out.exists()
    assert not Path("/tmp/celebseg_abs_escape.txt").exists()


def test_zip_with_symlink_entry_is_refused(tmp_path):
    archive = _zip(tmp_path / "link.zip", GOOD, extra=[_symlink_info("top/link")])
    assert [e.kind for e in A.list_entries(archive)] == ["file", "file", "link"]
    before = _tree(tmp_path)
    with pytest.raises(CelebsegError, match="'top/link' is a link"):
        A.safe_extract(archive, tmp_path / "out", progress=False)
    assert _tree(tmp_path) == before


def _tar(path, files, links=()):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tf.addfile(info)
    return path


@pytest.mark.parametrize("link_type", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_with_link_is_refused(tmp_path, link_type):
    archive = _tar(tmp_path / "evil.tar.gz", GOOD, links=[("top/passwd", "/etc/passwd", link_type)])
    before = _tree(tmp_path)
    with pytest.raises(CelebsegError, match="is a link"):
        A.safe_extract(archive, tmp_path / "out", progress=False)
    assert _tree(tmp_path) == before


def test_tar_with_dotdot_is_refused_and_good_tar_unpacks(tmp_path):
    evil = _tar(tmp_path / "evil.tar.gz", {**GOOD, "top/../../x": b"1"})
    with pytest.raises(CelebsegError, match="outside"):
        A.safe_extract(evil, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "x").exists()
    good = _tar(tmp_path / "good.tar.gz", GOOD)
    assert A.safe_extract(good, tmp_path / "out", progress=False) == ["top"]
    assert _tree(tmp_path / "out") == {"top": None, "top/a.txt": b"alpha", "top/sub": None,
                                       "top/sub/b.bin": GOOD["top/sub/b.bin"]}


def test_folder_with_symlink_is_refused(tmp_path):
    src = tmp_path / "src"
    (src / "top").mkdir(parents=True)
    (src / "top" / "a.txt").write_bytes(b"alpha")
    os.symlink("/etc/passwd", src / "top" / "passwd")
    with pytest.raises(CelebsegError, match="'top/passwd' is a link"):
        A.safe_extract(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_good_zip_unpacks_byte_identical_and_never_overwrites(tmp_path):
    archive = _zip(tmp_path / "good.zip", GOOD)
    out = tmp_path / "out"
    assert A.safe_extract(archive, out, progress=False) == ["top"]
    assert _tree(out) == {"top": None, "top/a.txt": b"alpha", "top/sub": None,
                          "top/sub/b.bin": GOOD["top/sub/b.bin"]}
    (out / "top" / "a.txt").write_bytes(b"mine")
    with pytest.raises(CelebsegError, match="already exists"):
        A.safe_extract(archive, out, progress=False)
    assert (out / "top" / "a.txt").read_bytes() == b"mine"
    assert not (out / A.STAGING_NAME).exists()


def test_corrupt_member_names_the_file_and_leaves_nothing(tmp_path):
    archive = _zip(tmp_path / "bad.zip", {"top/a.txt": b"x" * 5000})
    raw = bytearray(archive.read_bytes())
    # The stored (deflated) data starts after the 30-byte local header and the name.
    start = 30 + len("top/a.txt")
    raw[start + 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    out = tmp_path / "out"
    with pytest.raises(CelebsegError, match=r"bad\.zip is corrupt"):
        A.safe_extract(archive, out, progress=False)
    assert list(out.iterdir()) == []  # the staging folder is gone, nothing half-written


def test_truncated_or_foreign_file_names_the_file(tmp_path):
    archive = _zip(tmp_path / "cut.zip", GOOD)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(CelebsegError, match=r"cut\.zip is a truncated or corrupt zip"):
        A.safe_extract(archive, tmp_path / "out", progress=False)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CelebsegError, match="notes.txt is neither a zip nor a tar"):
        A.list_entries(text)
    with pytest.raises(CelebsegError, match="does not exist"):
        A.list_entries(tmp_path / "nope.zip")
    assert not (tmp_path / "out").exists()


def test_entry_parts():
    assert A.entry_parts("./a//b/") == ("a", "b")
    assert A.entry_parts("a\\b.txt") == ("a", "b.txt")
    assert A.entry_parts("a/../b") is None
    assert A.entry_parts("\\\\server\\share") is None
    assert A.entry_parts("a\x00b") is None


def test_control_characters_and_file_folder_clashes_are_refused(tmp_path):
    entries = [A.Entry("top/a\nb.txt", 1, "file"), A.Entry("top/x", 1, "file"),
               A.Entry("top/x/y.txt", 1, "file"), A.Entry("top/ok.txt", 1, "file")]
    with pytest.raises(CelebsegError) as info:
        A.check_entries(entries, tmp_path / "a.zip")
    assert str(info.value) == (
        f"refusing to unpack {tmp_path / 'a.zip'}: 'top/a\\nb.txt' has control characters in "
        f"its name; 'top/x' is both a file and a folder. Nothing was written; use an archive "
        f"from the official source")
    A.check_entries([A.Entry("top/", 0, "dir"), A.Entry("top/é ü.txt", 1, "file")], tmp_path)


def test_sizes_for_people():
    assert [A._size(n) for n in (0, 1, 999, 1000, 2_500_000, 3_210_000_000)] == [
        "0 bytes", "1 byte", "999 bytes", "1.0 kB", "2.5 MB", "3.2 GB"]
