import numpy as np
from PIL import Image

from celebseg_utils import labels as L
from celebseg_utils.visualization import viz


def test_colorize_uses_palette_and_hides_classes():
    label = np.array([[0, 1], [13, 18]], dtype=np.uint8)
    rgb = viz.colorize(label)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1].tolist() == [204, 0, 0]
    assert rgb[1, 1].tolist() == [0, 204, 0]
    hidden = viz.colorize(label[..., None], hidden_classes=[13])
    assert hidden[1, 0].tolist() == [0, 0, 0] and hidden[0, 1].tolist() == [204, 0, 0]


def test_overlay_blends_only_foreground_and_scales_label():
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    label = np.array([[0, 1], [0, 0]], dtype=np.uint8)  # 2x2 label over a 4x4 photo
    out = viz.overlay(image, label, alpha=0.5)
    # skin (204,0,0) blended half with 100: (152, 50, 50) on the top-right 2x2 block only
    assert out[0, 2].tolist() == [152, 50, 50] and out[1, 3].tolist() == [152, 50, 50]
    assert out[0, 0].tolist() == [100, 100, 100] and out[3, 3].tolist() == [100, 100, 100]
    assert viz.overlay(image, label, alpha=0.5, hidden_classes=[1])[0, 2].tolist() == [100, 100, 100]


def test_resize_label_is_nearest_neighbour():
    label = np.arange(4, dtype=np.uint8).reshape(2, 2)
    assert viz.resize_label(label, (4, 4)).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert set(np.unique(viz.resize_label(np.full((8, 8), 13), (3, 5)))) == {13}


def test_plot_grid_writes_png(tmp_path):
    label = np.zeros((16, 16), dtype=np.uint8)
    label[4:12, 4:12] = L.class_id("hair")
    photo = np.zeros((16, 16, 3), dtype=np.uint8)
    path = tmp_path / "grid.png"
    viz.plot_grid([[photo, label], [photo, label]], ["photo", "truth"], path=path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temp file left
