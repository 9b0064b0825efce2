"""The one table of loss recipes, and everything that reads it."""

from __future__ import annotations

import doctest

from celebseg_utils.models import losses, recipes


def test_every_recipe_names_a_loss_and_every_loss_has_a_recipe():
    assert set(recipes.LOSS_NAMES) == set(losses.LOSSES)
    for recipe in recipes.RECIPES.values():
        assert recipe.loss in losses.LOSSES


def test_the_study_the_config_the_presets_and_the_notebooks_read_the_table():
    from celebseg_utils.engine import config
    from celebseg_utils.interface import workspace
    from celebseg_utils.study import runner

    assert config.LOSSES == recipes.LOSS_NAMES
    assert runner.ARMS == {n: r.overrides() for n, r in recipes.RECIPES.items()}
    assert runner.SEED_ARMS == ("sparse_ce", "ce_onehot", "pixel_weighted_ce", "weighted_ce",
                                "dice", "jaccard")
    assert workspace.RUN_LOSSES["weighted_ce"] == ("loss.name=weighted_ce",
                                                  "loss.class_weights=median_freq")
    onehot = config.preset_config("study-categorical_ce")
    assert onehot.data.encoding == "onehot" and onehot.loss.name == "categorical_ce"
    for name, recipe in recipes.RECIPES.items():  # each recipe resolves to a valid config
        cfg = config.resolve_config(preset="cpu-real", overrides=recipe.overrides())
        assert cfg.loss.name == recipe.loss and cfg.data.encoding == recipe.encoding
        assert cfg.data.sample_weights == recipe.sample_weights


def test_module_examples_run():
    assert doctest.testmod(recipes).failed == 0
