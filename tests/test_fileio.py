import json

import pytest

from celebseg_utils import fileio


def test_atomic_writes_leave_only_the_final_file(tmp_path):
    fileio.atomic_write_text(tmp_path / "sub" / "a.txt", "hi")
    fileio.atomic_write_json(tmp_path / "b.json", {"x": 1})
    assert (tmp_path / "sub" / "a.txt").read_text() == "hi"
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.txt", "b.json"]


def test_failed_write_keeps_previous_content(tmp_path):
    target = tmp_path / "c.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["c.txt"]


def test_temp_name_keeps_suffix(tmp_path):
    with fileio.atomic_path(tmp_path / "fig.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")


def test_failed_write_names_the_final_file_in_one_line(tmp_path):
    target = tmp_path / "best.keras"
    target.write_text("old")
    # h5py reports a full disk as errno 28 with no file name and a multi-line strerror
    with pytest.raises(OSError) as info:
        with fileio.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(28, "Unable to create file (file write failed:\nerrno = 28, ...)")
    assert (info.value.errno, info.value.strerror, info.value.filename) == (
        28, "No space left on device", str(target))
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["best.keras"]
    # an error about the temporary file itself is reported against the final file too
    with pytest.raises(PermissionError) as info:
        with fileio.atomic_path(target) as tmp:
            raise PermissionError(13, "Permission denied", str(tmp))
    assert info.value.filename == str(target)


def test_errors_about_other_files_pass_through(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        with fileio.atomic_path(tmp_path / "out.txt"):
            open(tmp_path / "missing-input.txt")
    assert info.value.filename == str(tmp_path / "missing-input.txt")
    # an unnamed error that is not about storage (a closed pipe) is not renamed either
    with pytest.raises(BrokenPipeError) as info:
        with fileio.naming_write_errors(tmp_path / "out.txt"):
            raise BrokenPipeError(32, "Broken pipe")
    assert info.value.filename is None
    assert not list(tmp_path.iterdir())
