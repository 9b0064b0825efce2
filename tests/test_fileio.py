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
