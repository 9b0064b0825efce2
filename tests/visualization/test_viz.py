import numpy as np
from PIL import Image

from celebseg_utils import labels as L
from celebseg_utils.visualization import viz


def test_colorize_uses_palette_and_hides_classes():
    label = np.array([[0, 1], [13, 18]], dtype=np.uint8)
    rgb = viz.colorize(label)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1].tolist() == [204, 0, 0]
    assert rgb[1, 1].tolist() == [255, 0, 128]  # cloth in the overlay palette
    assert viz.colorize(label, palette=L.PALETTE)[1, 1].tolist() == [0, 204, 0]  # official
    hidden = viz.colorize(label[..., None], hidden_classes=[13])
    assert hidden[1, 0].tolist() == [0, 0, 0] and hidden[0, 1].tolist() == [204, 0, 0]


def test_overlay_palette_tells_neighbouring_parts_apart_and_the_official_one_does_not():
    official, overlay = viz.palette_contrast(L.PALETTE), viz.palette_contrast(L.OVERLAY_PALETTE)
    # hair, lower lip and left eye: three blues in the official palette
    hair, lip, eye = (L.class_id(c) for c in ("hair", "l_lip", "l_eye"))
    assert all(L.PALETTE[i][2] > 150 and L.PALETTE[i][0] < 60 for i in (hair, lip, eye))
    assert len({tuple(L.OVERLAY_PALETTE[i]) for i in (hair, lip, eye)}) == 3
    assert round(official["neighbours"]) == 19 and round(official["any"]) == 15
    assert round(overlay["neighbours"]) == 75 and round(overlay["any"]) == 31
    assert len({tuple(c) for c in L.OVERLAY_PALETTE.tolist()}) == 19
    # skin and hair keep their official colours, so the overlays still read familiarly
    assert (L.OVERLAY_PALETTE[[1, 13]] == L.PALETTE[[1, 13]]).all()


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


def _two_class_label():
    """4x4: 8 background, 6 hair (blue in the palette), 2 lower lip (another blue)."""
    label = np.zeros((4, 4), dtype=np.uint8)
    label[:2, :3] = L.class_id("hair")
    label[3, :2] = L.class_id("l_lip")
    return label


def test_class_shares_and_format_share():
    assert viz.class_shares(_two_class_label()) == {0: 0.5, 12: 0.125, 13: 0.375}
    assert [viz.format_share(x) for x in (0.375, 0.125, 0.0042, 0.0)] == ["38%", "12%", "0.42%", "0%"]


def test_legend_entries_list_exactly_the_classes_present_with_their_shares():
    truth = _two_class_label()
    pred = truth.copy()
    pred[3, :2] = L.class_id("hair")  # the lower lip predicted as hair
    pred[3, 3] = L.class_id("r_ear")  # and a stray right-ear pixel
    assert viz.legend_entries([truth]) == [(12, "lower lip 12%"), (13, "hair 38%")]
    assert viz.legend_entries([truth], background=True)[0] == (0, "background 50%")
    assert viz.legend_entries([truth, pred]) == [(9, "right ear 0% / 6.2%"), (12, "lower lip 12% / 0%"),
                                                 (13, "hair 38% / 50%")]
    # more than two maps: the first map's share only, "–" where the first map lacks the class
    assert viz.legend_entries([truth, pred, pred])[0] == (9, "right ear –")


def test_highlight_paints_exactly_the_chosen_class():
    photo = np.zeros((4, 4, 3), dtype=np.uint8)
    photo[..., 0] = 200  # a red photo: luminance 0.299 * 200 = 59.8
    label = _two_class_label()
    out = viz.highlight(photo, label, L.class_id("l_lip"), alpha=1.0)
    lip = label == L.class_id("l_lip")
    assert (out[lip] == viz.HIGHLIGHT).all()
    # everything else, hair included, is the same pale grey: 0.5 * 59.8 + 127.5 = 157.4
    assert (out[~lip] == 157).all()
    half = viz.highlight(photo, label, L.class_id("l_lip"), alpha=0.5)
    assert half[3, 0].tolist() == [206, 79, 206]  # (157.4 + 255) / 2, 157.4 / 2
    # a label map half the size of the photo is scaled to it
    big = viz.highlight(np.zeros((8, 8, 3), np.uint8), label, L.class_id("hair"), alpha=1.0)
    assert (big[:4, :6] == viz.HIGHLIGHT).all() and (big[4:, :] != viz.HIGHLIGHT).any(axis=-1).all()


def test_class_grid_has_one_panel_per_class_present():
    import matplotlib.pyplot as plt

    photo = np.full((4, 4, 3), 100, dtype=np.uint8)
    fig = viz.class_grid(photo, _two_class_label())
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["lower lip 12%", "hair 38%"]
    hair = np.asarray(shown[1].images[0].get_array())
    # grey 0.5 * 100 + 127.5 = 177.5 everywhere but hair, which is 80% magenta over it
    coloured = np.any(hair != 178, axis=-1)
    assert (coloured == (_two_class_label() == L.class_id("hair"))).all()
    assert hair[0, 0].tolist() == [240, 36, 240]  # 0.2 * 177.5 + 0.8 * (255, 0, 255)
    plt.close(fig)


def test_plot_grid_gives_each_row_a_legend_of_its_own_classes():
    import matplotlib.pyplot as plt

    photo = np.zeros((4, 4, 3), dtype=np.uint8)
    other = np.zeros((4, 4), dtype=np.uint8)
    other[0, 0] = L.class_id("ear_r")
    fig = viz.plot_grid([[photo, _two_class_label()], [photo, other]], ["photo", "truth"])
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert [[t.get_text() for t in lg.get_texts()] for lg in legends] == [
        ["lower lip 12%", "hair 38%"], ["earring 6.2%"]]
    assert legends[0].get_title().get_text() == "pixels: truth"
    # the legend patches carry the colours the pictures are drawn in
    assert [tuple(np.round(np.array(h.get_facecolor()[:3]) * 255).astype(int)) for h in
            legends[0].legend_handles] == [tuple(L.OVERLAY_PALETTE[12]), tuple(L.OVERLAY_PALETTE[13])]
    no_legend = viz.plot_grid([[photo, other]], ["photo", "truth"], legend=False)
    assert all(ax.get_legend() is None for ax in no_legend.axes)
    plt.close("all")
