"""demo: the smoke workspace is rebuilt, not mixed, when its settings change."""

import numpy as np
from PIL import Image

from celebseg_utils.data import layout
from celebseg_utils.demo import smoke_workspace
from celebseg_utils.data.masks import fuse_masks


def _labels_match_masks(ws):
    ids = [int(p.stem) for p in (ws["prepared"] / "labels").glob("*.png")]
    assert ids
    for k in ids:
        label = np.asarray(Image.open(layout.label_path(ws["prepared"], k)))
        np.testing.assert_array_equal(label, fuse_masks(ws["data_root"], k))


def test_smoke_workspace_is_reused_then_rebuilt_for_other_settings(tmp_path):
    ws = smoke_workspace(tmp_path, count=6, image_size=32, seed=0)
    _labels_match_masks(ws)
    stamp = (tmp_path / "prepared" / "prepare.json").stat().st_mtime_ns
    assert smoke_workspace(tmp_path, count=6, image_size=32, seed=0) == ws
    assert (tmp_path / "prepared" / "prepare.json").stat().st_mtime_ns == stamp  # reused as is
    ws = smoke_workspace(tmp_path, count=6, image_size=32, seed=1)  # other faces, same ids
    _labels_match_masks(ws)
