import json
from pathlib import Path

import pytest

from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError


def test_raw_paths_follow_the_official_layout():
    root = Path("/data")
    assert layout.image_path(root, 7) == Path("/data/CelebA-HQ-img/7.jpg")
    assert layout.mask_path(root, 1999, "l_eye") == Path("/data/CelebAMask-HQ-mask-anno/0/01999_l_eye.png")
    assert layout.mask_path(root, 29999, "cloth") == Path("/data/CelebAMask-HQ-mask-anno/14/29999_cloth.png")
    assert layout.mapping_path(root).name == "CelebA-HQ-to-CelebA-mapping.txt"


def test_prepared_folder_reading(tmp_path):
    with pytest.raises(CelebsegError, match="celebseg prepare"):
        layout.read_prepare_info(tmp_path)
    (tmp_path / "prepare.json").write_text(json.dumps({"data_root": "/raw", "label_size": 64}))
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("3\n10\n")
    assert layout.read_split(tmp_path, "val") == [3, 10]
    assert layout.photo_path(tmp_path, 10) == Path("/raw/CelebA-HQ-img/10.jpg")
    with pytest.raises(CelebsegError, match="unknown split"):
        layout.read_split(tmp_path, "dev")
    with pytest.raises(CelebsegError, match="missing"):
        layout.read_split(tmp_path, "test")
