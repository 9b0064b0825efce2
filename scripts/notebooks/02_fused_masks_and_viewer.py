"""Notebook 02 · Fused masks and the mask viewer: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import code, header, install_cells, md, notebook, parameters_cells


def build() -> nbformat.NotebookNode:
    file = "02_fused_masks_and_viewer.ipynb"
    cells = header(file, "02 · Fused masks and the mask viewer", """
CelebAMask-HQ annotates each face with one binary PNG *per attribute* (`00000_skin.png`,
`00000_hair.png`, ...), and only for the attributes present. A segmentation network wants a
single **label map** per image: one class id (0..18) per pixel. This notebook fuses the
masks, writes the official train/val/test split, and opens an interactive viewer to check
the result.
""")
    cells += install_cells()
    cells += parameters_cells("""
SMOKE = False                      # True: synthetic faces, tiny sizes, CPU (what CI runs)
DATA_DIR = "data/CelebAMask-HQ"    # the raw dataset (notebook 01; unpacked again if missing)
PREPARED_DIR = "data/prepared"     # fused label maps and splits go here (and kept on Drive)
WORKERS = None                     # processes for fusing; None: all cores
TFRECORDS = False                  # also write TFRecord shards (faster input on TPUs / big GPUs)
SHOW_IDS = [0, 1, 2, 3]            # images for the picture grid (the first: one class at a time)
VIEWER_SPLIT = "val"               # the split the mask viewer browses: "train", "val" or "test"
""")
    cells += [
        code("""
from celebseg_utils.interface import workspace

if SMOKE:  # the same flow on the synthetic archive of notebook 01, kept apart from real data
    DATA_DIR = f"{workspace.SMOKE_DIR}/data/CelebAMask-HQ"
    PREPARED_DIR = f"{workspace.SMOKE_DIR}/data/prepared"
"""),
        md("""
## Fusing the masks

The masks overlap (hair over skin, eyes inside eyeglasses, a hat over hair), so the order
matters. The fused map follows the dataset authors' own preprocessing: attributes are
painted in the official order (skin, nose, eyeglasses, eyes, brows, ears, mouth, lips,
hair, hat, earring, necklace, neck, cloth), each later one overwriting the earlier ones,
and masks are brought to 512×512. Our label maps are byte-identical to theirs.

The split follows CelebA's official partition through the mapping file: an image is
*val* or *test* when its CelebA original is, which gives 24,183 / 2,993 / 2,824 images.
Preparing the full dataset takes a few minutes; it is done once.

`ensure_data` finds the raw dataset where notebook 01 left it (on this runtime's disk, or
the archive it kept on Drive, unpacked again on a fresh runtime; on Kaggle, a dataset
attached to the notebook), prepares it, and keeps the result on Drive as **one file**,
`prepared.tar` (photos included): notebooks 03-07 restore it from there in a fraction of
the time many small files would take. Already prepared or kept: nothing is done again.
"""),
        code("""
from celebseg_utils.interface import notebook

ready = workspace.ensure_data(PREPARED_DIR, DATA_DIR, smoke=SMOKE, workers=WORKERS,
                              tfrecords=TFRECORDS)
notebook.prepare_summary(ready.summary) if ready.summary else ready
"""),
        md("""
## Photo, label map, overlay

Each row is one image: the photo, its fused label map in the official palette, and the
two blended. The legend beside each row lists the classes in that image with their share
of its pixels. Small parts (the eyes, the brows, an earring) are a fraction of a percent,
a few hundred pixels out of 262,144: keep that in mind for notebook 03.
"""),
        code("""
from celebseg_utils.interface import notebook_figures as figures
from celebseg_utils.visualization import viz

rows = figures.sample_rows(PREPARED_DIR, SHOW_IDS)
viz.plot_grid(rows, titles=["photo", "fused label map", "overlay"],
              row_labels=[f"image {k}" for k in SHOW_IDS]);
"""),
        md("""
## One class at a time

We keep the dataset authors' palette so that our pictures match theirs, but it was not
made for reading: hair, lower lip and left eye are three blues, skin and right ear two
reds. To check a single class, draw each one on its own, in one strong colour over the
greyed photo: is the left eye really the person's left eye, does the earring mask cover
the whole earring?
"""),
        code("""
figures.plot_class_grid(PREPARED_DIR, SHOW_IDS[0]);
"""),
        md("""
## The mask viewer

The viewer browses one split, `VIEWER_SPLIT` (the **validation** split unless you change
it). Step through its images with the slider (or type the index), switch classes on and
off ("none", then tick one, shows a single class), and change the opacity to see the
boundaries against the photo. The viewer is an ipywidgets panel: it needs a live kernel,
so a static rendering of this notebook (GitHub, HTML) leaves it out; the cell after it
draws what it shows, titled with the split and the image.
"""),
        code("""
from celebseg_utils import MaskViewer

viewer = MaskViewer(PREPARED_DIR, split=VIEWER_SPLIT)
viewer
"""),
        code("""
figures.plot_viewer(viewer);
"""),
        md("""
Next: **03 · Class imbalance** counts how many pixels each class gets.
"""),
    ]
    return notebook(file, cells)
