"""The machinery of the notebook generator: cell builders, the cells every notebook shares
(title and badge, install, parameters, the data cell) and the writing of a notebook
without outputs. What each notebook says lives in its own story file beside this one
(``NN_name.py``, one per notebook); ``scripts/make_notebooks.py`` writes them all.
"""

from __future__ import annotations

import nbformat
from nbformat import v4

from celebseg_utils.interface import notebook as nbh
from celebseg_utils.interface import workspace as ws

#: GitHub owner/name the badges and the install cell point at (a placeholder until the
#: project has its public home; change it in celebseg_utils/interface/notebook.py), and the
#: branch or tag (None: the default branch). ``make_notebooks.py --repository/--ref`` set them.
REPOSITORY = nbh.REPOSITORY
REF: str | None = None


# --------------------------------------------------------------------------- cell builders

def md(text: str) -> dict:
    return v4.new_markdown_cell(text.strip("\n"))


def code(text: str, tags: tuple[str, ...] = ()) -> dict:
    cell = v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def header(file: str, title: str, intro: str) -> list[dict]:
    return [md(f"# {title}\n\n{nbh.colab_badge(file, REPOSITORY, REF or nbh.BRANCH)}\n\n{intro.strip()}")]


def install_cells(gpu: bool = False) -> list[dict]:
    """The install cell. ``gpu``: a training notebook's, which then says at once, on Colab
    or Kaggle, when the runtime has no GPU and how to switch."""
    spec = nbh.package_spec(("download",), REPOSITORY, REF)
    # Plain Python: the package is not importable before this cell has installed it. The
    # advice is the package's (workspace.GPU_HOWTO), written in when the notebook is made.
    gpu_check = "" if not gpu else f"""
    # A training run on a CPU runtime would spend its whole time budget on a few steps.
    import shutil

    if not (os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi")):
        howto = {ws.GPU_HOWTO['colab']!r} if IN_COLAB else {ws.GPU_HOWTO['kaggle']!r}
        print(f"No GPU on this runtime: {{howto}} (SMOKE = True needs none).")"""
    return [
        md(f"""
## Install

Colab and Kaggle already ship TensorFlow, Keras and the Jupyter widget stack built for
them, so the cell below installs only `celebseg` and what the runtime lacks, and changes
none of the packages it ships (CI checks this against both runtimes' manifests). On your
own machine it does nothing; there `make setup` has already installed everything.
{"This notebook trains: it says at once when the runtime has no GPU, and how to switch." if gpu else ""}

To install a fork, a branch or a tag instead, set `CELEBSEG_SPEC` before running it, e.g.
`%env {nbh.SPEC_VARIABLE}=celebseg[download] @ git+https://github.com/you/celebseg@your-branch`
(or regenerate all seven notebooks once: `python scripts/make_notebooks.py --repository you/celebseg --ref v0.2`).
"""),
        code(f"""
# Colab / Kaggle only: install celebseg, keeping everything the runtime ships.
import os
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
IN_KAGGLE = bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE"))
CELEBSEG_SPEC = os.environ.get("{nbh.SPEC_VARIABLE}", "{spec}")
if IN_COLAB or IN_KAGGLE:
    print("installing", CELEBSEG_SPEC)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", CELEBSEG_SPEC], check=True){gpu_check}
"""),
    ]


def parameters_cells(lines: str, explain: str = "") -> list[dict]:
    return [
        md(f"""
## Parameters

`SMOKE = True` swaps the real download for a small archive of synthetic faces at 64 px
and shrinks every size, so the whole notebook runs on a CPU in about a minute; the flow
stays the same (the data is kept and found as for real, in `celebseg-smoke` folders, apart
from real data). CI runs every notebook that way. Leave it `False` for the real thing.
{explain.strip()}
"""),
        code(lines, tags=("parameters",)),
    ]


#: The SMOKE half of every data cell from notebook 02 on: the same flow, toy data kept apart
#: from real data (``celebseg-smoke/`` here, ``celebseg-smoke`` on Drive).
SMOKE_PREPARED = 'PREPARED_DIR = f"{workspace.SMOKE_DIR}/data/prepared"'

DATA_EXPLAIN = """
## The data

`ensure_data` makes the prepared dataset ready on this runtime, whatever it holds: already
on its disk, nothing to do; kept on Google Drive (Colab) or in `/kaggle/working` (Kaggle) by
notebook 02, restored from there (one file, with a progress bar and the time left); only
the archive kept by notebook 01, prepared again. With nothing kept it stops with one line
naming the notebook to run first. So this notebook can be opened first, or again after a
disconnect.
"""


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


def render(nb: nbformat.NotebookNode) -> str:
    """The notebook's JSON text exactly as written to disk (validated; no outputs)."""
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"
