"""Notebook 04 · Train DeepLabV3+ with sparse cross-entropy: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import DATA_EXPLAIN, code, header, install_cells, md, notebook, parameters_cells
from nb_teach import model_cells, skip_cells
from nb_training import TRAIN_EXPLAIN, TRAIN_PARAMS, TRAIN_SMOKE, training_cells


def build() -> nbformat.NotebookNode:
    file = "04_train_sparse_ce.ipynb"
    cells = header(file, "04 · Train DeepLabV3+ with sparse cross-entropy", """
The baseline. Pixel-wise cross-entropy treats every pixel alike, so its gradient is
dominated by the classes with the most pixels: background, skin and hair. It trains
quickly and reaches a high pixel accuracy; how well it does on the small and rare parts is
the question that notebook 07 answers.

Use a GPU runtime (*Runtime → Change runtime type*). The default preset, `colab-t4-quick`
(256 px, 40 minutes a run), fits this notebook's run and those of 05 and 06 in one free Colab
session on a T4; `colab-t4` is the full-quality 512 px run (up to 4 hours), `kaggle-2xt4`
uses Kaggle's two T4s, `colab-a100` an A100.
""")
    cells += install_cells(gpu=True)
    cells += parameters_cells(TRAIN_PARAMS, TRAIN_EXPLAIN)
    cells += [md(DATA_EXPLAIN), code(TRAIN_SMOKE)]
    cells += model_cells()  # DeepLabV3+ explained before it is trained
    cells += training_cells(["sparse_ce"])
    cells += skip_cells()  # the skip ablation, repeated on the model just trained
    cells += [md("Next: **05 · Weighted cross-entropy** gives the rare classes more say in the loss.")]
    return notebook(file, cells, gpu=True)
