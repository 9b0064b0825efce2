"""Notebook 05 · Train with class-weighted cross-entropy: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import code, header, install_cells, md, notebook, parameters_cells
from nb_training import TRAIN_EXPLAIN, TRAIN_PARAMS, TRAIN_SMOKE, training_cells


def build() -> nbformat.NotebookNode:
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
