"""The one table of loss recipes: name -> loss, label encoding, pixel weights, description.

A *recipe* is what the loss study calls an arm and the notebooks call a run: a loss of
:data:`celebseg_utils.models.losses.LOSSES` together with the label encoding and the
per-pixel weights its batches need. The config's validation, the ``study-<name>`` presets,
the study's arms and the notebooks' runs all read this table, so adding a loss is one
entry here plus its class in ``losses.LOSSES``. Plain data: importing it imports no Keras.

>>> RECIPES["pixel_weighted_ce"].overrides()
['loss.name=sparse_ce', 'data.sample_weights=per_image']
>>> [r.name for r in RECIPES.values() if r.seed_experiment]
['sparse_ce', 'ce_onehot', 'pixel_weighted_ce', 'weighted_ce', 'dice', 'jaccard']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class LossRecipe:
    """One recipe; :meth:`overrides` gives its ``--set`` lines."""

    name: str
    #: A name of ``losses.LOSSES``.
    loss: str
    description: str
    #: Label encoding of the training batches: "int" (B,H,W,1) or "onehot" (B,H,W,19).
    encoding: str = "int"
    #: ``data.sample_weights``: None, "per_image" (the seed's generator) or a class scheme.
    sample_weights: Optional[str] = None
    #: ``loss.class_weights`` set explicitly (None: the config's "auto").
    class_weights: Optional[str] = None
    #: One of the six arms of the experiment this project grew from.
    seed_experiment: bool = False

    def overrides(self) -> list[str]:
        out = [f"loss.name={self.loss}"]
        if self.encoding != "int":
            out.append(f"data.encoding={self.encoding}")
        if self.sample_weights is not None:
            out.append(f"data.sample_weights={self.sample_weights}")
        if self.class_weights is not None:
            out.append(f"loss.class_weights={self.class_weights}")
        return out

    def config_data(self) -> dict:
        """The same as a partial config mapping (for presets)."""
        data: dict = {"loss": {"name": self.loss}}
        if self.class_weights is not None:
            data["loss"]["class_weights"] = self.class_weights
        if self.encoding != "int" or self.sample_weights is not None:
            data["data"] = {"encoding": self.encoding, "sample_weights": self.sample_weights}
        return data


_ALL = [
    LossRecipe("sparse_ce", "sparse_ce", "cross-entropy on integer labels (the baseline)",
               seed_experiment=True),
    LossRecipe("ce_onehot", "categorical_ce", "cross-entropy on one-hot labels (Keras's "
               "CategoricalCrossentropy): the same loss as the baseline, a cross-check",
               encoding="onehot", seed_experiment=True),
    LossRecipe("pixel_weighted_ce", "sparse_ce", "cross-entropy with the seed's per-image pixel "
               "weights: each pixel weighted by the inverse of its class's pixel count in its "
               "image", sample_weights="per_image", seed_experiment=True),
    LossRecipe("weighted_ce", "weighted_ce", "cross-entropy with median-frequency class weights "
               "(stats.json of the train split)", class_weights="median_freq",
               seed_experiment=True),
    LossRecipe("dice", "dice", "soft Dice, averaged over classes", seed_experiment=True),
    LossRecipe("jaccard", "jaccard", "soft Jaccard (IoU), averaged over classes",
               seed_experiment=True),
    LossRecipe("ce_dice", "ce_dice", "cross-entropy + soft Dice (the cpu-real recipe's loss)"),
    LossRecipe("lovasz", "lovasz", "Lovasz-softmax, a surrogate of the IoU"),
    LossRecipe("focal", "focal", "focal cross-entropy"),
]
#: Recipe name -> recipe, in the study's canonical order (baseline first).
RECIPES: dict[str, LossRecipe] = {r.name: r for r in _ALL}
#: The loss names the recipes use: what ``loss.name`` accepts.
LOSS_NAMES: tuple[str, ...] = tuple(dict.fromkeys(r.loss for r in _ALL))
#: The six arms of the experiment the project grew from, and its baseline.
SEED_RECIPES: tuple[str, ...] = tuple(r.name for r in _ALL if r.seed_experiment)
BASELINE = "sparse_ce"
